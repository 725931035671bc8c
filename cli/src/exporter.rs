//! `culvert exporter`: a Prometheus exporter, a process of its own that asks culvertd over its socket at each
//! scrape, so that culvertd grows no HTTP listener. By default it reads on the monitor socket, where members of
//! the monitor group see every tunnel's status and counters and may change nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use culvert_cli::metrics;
use culvert_core::client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request's head may be this long at most: Prometheus sends a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// A scraper must send its request this soon, and culvertd answer this soon.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once; more wait for the kernel's backlog.
const MAX_CONCURRENT: usize = 16;

pub async fn serve(listen: SocketAddr, socket: PathBuf) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}; choose another with --listen ADDRESS:PORT"))?;
    eprintln!("culvert: exporter serving http://{listen}/metrics from culvertd on {}", socket.display());
    let socket = Arc::new(socket);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors, say: the next accept may succeed; do not spin meanwhile.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().acquire_owned().await else { return Ok(()) };
        let socket = socket.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, answer(stream, &socket)).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, socket: &Path) -> std::io::Result<()> {
    let Some(head) = read_head(&mut stream).await? else {
        return respond(&mut stream, "400 Bad Request", "text/plain", "a request's head is at most 8 KiB\n").await;
    };
    let mut words = head.split_ascii_whitespace();
    match (words.next(), words.next().map(|path| path.split('?').next().unwrap_or(path))) {
        (Some("GET"), Some("/metrics")) => {
            let page = metrics::render(scrape(socket).await.as_deref(), now());
            respond(&mut stream, "200 OK", metrics::CONTENT_TYPE, &page).await
        }
        (Some("GET"), Some("/")) => {
            respond(&mut stream, "200 OK", "text/plain", "Culvert's exporter: the metrics are at /metrics\n").await
        }
        (Some("GET"), _) => respond(&mut stream, "404 Not Found", "text/plain", "the metrics are at /metrics\n").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", "only GET\n").await,
    }
}

/// The request line and headers, up to the blank line; `None` when they are too long.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(REQUEST_TIMEOUT, stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        if buf.len() > MAX_REQUEST {
            return Ok(None);
        }
    }
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Every tunnel culvertd shows this exporter, or `None` when it does not answer.
async fn scrape(socket: &Path) -> Option<Vec<culvert_core::stats::TunnelView>> {
    let ask = async {
        let mut client = Client::connect(socket).await.ok()?;
        client.status(None).await.ok()
    };
    tokio::time::timeout(REQUEST_TIMEOUT, ask).await.ok().flatten()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
