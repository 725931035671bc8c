//! Looking up endpoints' host names, also while the kill switch holds.
//!
//! Without the kill switch's table, names go through the system's resolver (getaddrinfo: nsswitch, the hosts
//! file, systemd-resolved). While the table is in place it refuses every lookup that does not go into a tunnel,
//! the system resolver's and a local stub's forwarding among them, and a tunnel that is blocked must still find
//! its peer. So culvertd then asks itself: the hosts file, then the DNS servers of the host's own network over
//! sockets carrying [`CONTROL_MARK`], which the table lets out to port 53 and a policy rule routes through the
//! main table, past any full tunnel.
//!
//! The host's own servers are those the system names, less what Culvert's tunnels set: a tunnel's DNS is
//! reachable only through that tunnel, which may be the one that is down.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::CONTROL_MARK;
use super::dns_wire::{self, RecordType, WireError};

/// How long one server has to answer one question before the next server is asked. glibc waits 5 s by
/// default; endpoints are looked up while a request or a reconnect waits, and a second server deserves a turn
/// well within the request's 30 s.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// At most this many servers are asked, in order (glibc's MAXNS).
const MAX_SERVERS: usize = 3;
/// Datagrams that are not the answer (late answers to an earlier question, strays) before a server is given up.
const MAX_STRAYS: usize = 8;
/// The resolver files are small; a larger one is not read past this.
const MAX_FILE: u64 = 64 * 1024;
/// systemd-resolved's stub listeners, which forward with their own unmarked sockets.
const RESOLVED_STUBS: [IpAddr; 2] =
    [IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 53)), IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 54))];

/// Where the resolver reads the host's names and servers; only tests point it elsewhere.
#[derive(Debug, Clone)]
pub struct Files {
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    /// systemd-resolved's list of the servers it forwards to.
    pub resolved_upstream: PathBuf,
    /// Where Culvert keeps the original resolver file while a tunnel has rewritten it
    /// ([`super::Records::dns_originals`]).
    pub originals: PathBuf,
}

impl Files {
    pub fn system(originals: PathBuf) -> Self {
        Self {
            hosts: "/etc/hosts".into(),
            resolv_conf: super::dns::RESOLV_CONF.into(),
            resolved_upstream: "/run/systemd/resolve/resolv.conf".into(),
            originals,
        }
    }
}

/// The helper's one resolver of endpoint names, shared by every tunnel.
#[derive(Debug, Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    files: Files,
    /// The kill switch's table is in place: look up with marked sockets.
    marked: AtomicBool,
    /// The DNS servers each tunnel set, never asked for an endpoint.
    tunnels_dns: Mutex<BTreeMap<String, Vec<IpAddr>>>,
}

impl Resolver {
    pub fn new(files: Files) -> Self {
        Self {
            inner: Arc::new(Inner { files, marked: AtomicBool::new(false), tunnels_dns: Mutex::new(BTreeMap::new()) }),
        }
    }

    /// Whether lookups go around the system's resolver with marked sockets (the kill switch's table is there).
    pub fn set_marked(&self, on: bool) {
        self.inner.marked.store(on, Ordering::Relaxed);
    }

    pub fn marked(&self) -> bool {
        self.inner.marked.load(Ordering::Relaxed)
    }

    /// The DNS servers tunnel `name` sets while it is up (none: it sets none, or it is down).
    pub fn set_tunnel_dns(&self, name: &str, servers: &[IpAddr]) {
        let mut all = self.inner.tunnels_dns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if servers.is_empty() {
            all.remove(name);
        } else {
            all.insert(name.to_owned(), servers.to_vec());
        }
    }

    /// The address `host` has, IPv4 first when it has both (as `wg` prefers); `None` when it has none.
    pub async fn lookup(&self, host: &str, port: u16) -> Result<Option<SocketAddr>, String> {
        if !self.marked() {
            let all: Vec<SocketAddr> =
                tokio::net::lookup_host((host, port)).await.map_err(|e| e.to_string())?.collect();
            return Ok(all.iter().find(|a| a.is_ipv4()).or(all.first()).copied());
        }
        if let Some(ip) = in_hosts_file(&self.inner.files.hosts, host) {
            return Ok(Some(SocketAddr::new(ip, port)));
        }
        let servers = self.servers()?;
        let ip = ask_servers(&servers, host).await?;
        Ok(Some(SocketAddr::new(ip, port)))
    }

    /// The host's own DNS servers, in the order the system lists them.
    fn servers(&self) -> Result<Vec<IpAddr>, String> {
        let files = &self.inner.files;
        let listed = host_servers(files);
        let avoid: Vec<IpAddr> = {
            let all = self.inner.tunnels_dns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            all.values().flatten().copied().collect()
        };
        let servers: Vec<IpAddr> =
            listed.iter().copied().filter(|s| !s.is_loopback() && !avoid.contains(s)).take(MAX_SERVERS).collect();
        if servers.is_empty() {
            return Err(format!(
                "the kill switch lets no lookup through the system's resolver, and {} names no DNS server of the \
                 host's own network to ask directly{}",
                files.resolv_conf.display(),
                if listed.is_empty() { String::new() } else { format!(" (only {})", list(&listed)) }
            ));
        }
        Ok(servers)
    }
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
}

fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path).ok()?.take(MAX_FILE).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The servers of the host's own network: from the original resolver file when a tunnel rewrote it, from
/// systemd-resolved's upstream list when the file names only its stub, else from the file.
fn host_servers(files: &Files) -> Vec<IpAddr> {
    let text = read_small(&files.resolv_conf).unwrap_or_default();
    if text.starts_with(super::dns::MARKER) {
        let mut originals: Vec<PathBuf> = std::fs::read_dir(&files.originals)
            .map(|dir| dir.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        originals.sort();
        return originals.iter().filter_map(|p| read_small(p)).flat_map(|t| nameservers(&t)).collect();
    }
    let listed = nameservers(&text);
    if !listed.is_empty() && listed.iter().all(|s| RESOLVED_STUBS.contains(s)) {
        return nameservers(&read_small(&files.resolved_upstream).unwrap_or_default());
    }
    listed
}

/// The `nameserver` lines of a resolver file.
fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()).flatten()
        })
        // A link-local server's scope (`fe80::1%eth0`) is not kept: such a server is skipped.
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// `host`'s address in a hosts file, IPv4 first.
fn in_hosts_file(path: &Path, host: &str) -> Option<IpAddr> {
    let text = read_small(path)?;
    let host = host.strip_suffix('.').unwrap_or(host);
    let mut found: Vec<IpAddr> = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else { continue };
        if words.any(|name| name.eq_ignore_ascii_case(host)) {
            found.push(ip);
        }
    }
    found.iter().find(|ip| ip.is_ipv4()).or(found.first()).copied()
}

/// Asks each server in turn for `host`'s A records, then its AAAA records; the first server that answers
/// decides.
async fn ask_servers(servers: &[IpAddr], host: &str) -> Result<IpAddr, String> {
    let mut failures = Vec::new();
    'servers: for &server in servers {
        let server = SocketAddr::new(server, 53);
        for kind in [RecordType::A, RecordType::Aaaa] {
            match ask(server, host, kind).await {
                Ok(found) => {
                    if let Some(ip) = found.first() {
                        return Ok(*ip);
                    }
                }
                Err(Failure::Answer(WireError::NoSuchName)) => {
                    return Err(format!("{} says the name does not exist", server.ip()));
                }
                Err(e @ Failure::Answer(WireError::BadName(_))) => return Err(e.to_string()),
                Err(e) => {
                    failures.push(format!("{}: {e}", server.ip()));
                    continue 'servers;
                }
            }
        }
        return Err(format!("{} knows no address of it", server.ip()));
    }
    Err(format!("no DNS server answered ({})", failures.join("; ")))
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Answer(#[from] WireError),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("no answer within {} s", ANSWER_WITHIN.as_secs())]
    Silent,
}

/// One question: its id, the name and type asked, and its bytes.
struct Question<'a> {
    id: u16,
    host: &'a str,
    kind: RecordType,
    wire: Vec<u8>,
}

impl<'a> Question<'a> {
    fn new(host: &'a str, kind: RecordType) -> Result<Self, WireError> {
        use rand_core::RngCore;
        // A random id, and the kernel's random source port: what an off-path spoofer must guess.
        let id = (rand_core::OsRng.next_u32() & 0xffff) as u16;
        Ok(Self { id, host, kind, wire: dns_wire::query(id, host, kind)? })
    }

    fn answer(&self, message: &[u8]) -> Result<Vec<IpAddr>, WireError> {
        dns_wire::addresses(message, self.id, self.host, self.kind)
    }
}

/// One question to one server: over UDP, and again over TCP when the answer comes truncated.
async fn ask(server: SocketAddr, host: &str, kind: RecordType) -> Result<Vec<IpAddr>, Failure> {
    let question = Question::new(host, kind)?;
    let over_udp = tokio::time::timeout(ANSWER_WITHIN, ask_udp(server, &question)).await;
    match over_udp.map_err(|_| Failure::Silent)? {
        Err(Failure::Answer(WireError::Truncated)) => {
            tokio::time::timeout(ANSWER_WITHIN, ask_tcp(server, &question)).await.map_err(|_| Failure::Silent)?
        }
        other => other,
    }
}

/// A socket whose packets carry the control mark, so that the kill switch lets them out and the policy rule
/// routes them by the main table.
fn marked_socket(server: SocketAddr, kind: socket2::Type) -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(server), kind, None)?;
    socket.set_mark(CONTROL_MARK)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

async fn ask_udp(server: SocketAddr, question: &Question<'_>) -> Result<Vec<IpAddr>, Failure> {
    let socket = marked_socket(server, socket2::Type::DGRAM)?;
    let socket = tokio::net::UdpSocket::from_std(socket.into())?;
    // Connected: the kernel drops datagrams from anyone but the server.
    socket.connect(server).await?;
    socket.send(&question.wire).await?;
    let mut buf = [0u8; dns_wire::MAX_UDP_MESSAGE];
    for _ in 0..MAX_STRAYS {
        let n = socket.recv(&mut buf).await?;
        match question.answer(&buf[..n]) {
            Err(WireError::OtherQuestion | WireError::Malformed(_)) => continue,
            answer => return Ok(answer?),
        }
    }
    Err(Failure::Silent)
}

async fn ask_tcp(server: SocketAddr, question: &Question<'_>) -> Result<Vec<IpAddr>, Failure> {
    let socket = marked_socket(server, socket2::Type::STREAM)?;
    let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
    let mut stream = socket.connect(server).await?;
    // A query is at most a header and a 255-byte name.
    let length = u16::try_from(question.wire.len()).unwrap_or(u16::MAX);
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(&question.wire);
    stream.write_all(&framed).await?;
    let length = usize::from(stream.read_u16().await?);
    let mut answer = vec![0u8; length];
    stream.read_exact(&mut answer).await?;
    Ok(question.answer(&answer)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn files(name: &str) -> (Dir, Files) {
        let dir = std::env::temp_dir().join(format!("culvert-resolver-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("dns")).unwrap();
        let files = Files {
            hosts: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
            resolved_upstream: dir.join("upstream.conf"),
            originals: dir.join("dns"),
        };
        (Dir(dir), files)
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn the_hosts_file_answers_first_ipv4_before_ipv6() {
        let (_dir, f) = files("hosts");
        std::fs::write(
            &f.hosts,
            "# comment\n2001:db8::7 peer.example\n127.0.0.1 localhost\n192.0.2.7 other Peer.Example # x\n",
        )
        .unwrap();
        assert_eq!(in_hosts_file(&f.hosts, "peer.example."), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(in_hosts_file(&f.hosts, "absent.example"), None);
    }

    #[test]
    fn the_servers_asked_are_the_host_networks_not_a_tunnels_nor_a_stub() {
        let (_dir, f) = files("servers");
        let resolver = Resolver::new(f.clone());
        std::fs::write(&f.resolv_conf, "search lan\nnameserver 10.64.0.1\nnameserver 192.168.1.1\nnameserver ::1\n")
            .unwrap();
        // The tunnel's own server is reachable only through it, and loopback forwards unmarked.
        resolver.set_tunnel_dns("wg0", &ips(&["10.64.0.1"]));
        assert_eq!(resolver.servers().unwrap(), ips(&["192.168.1.1"]));
        resolver.set_tunnel_dns("wg0", &[]);
        assert_eq!(resolver.servers().unwrap(), ips(&["10.64.0.1", "192.168.1.1"]));

        // systemd-resolved's stub: its upstream servers.
        std::fs::write(&f.resolv_conf, "nameserver 127.0.0.53\noptions edns0\n").unwrap();
        std::fs::write(&f.resolved_upstream, "nameserver 192.168.1.1\nnameserver 2001:db8::53\n").unwrap();
        assert_eq!(resolver.servers().unwrap(), ips(&["192.168.1.1", "2001:db8::53"]));

        // A file Culvert rewrote: the original it keeps.
        std::fs::write(&f.resolv_conf, format!("{} for tunnel wg0\nnameserver 10.64.0.1\n", super::super::dns::MARKER))
            .unwrap();
        std::fs::write(f.originals.join("wg0.resolv.conf"), "nameserver 192.168.7.1\n").unwrap();
        assert_eq!(resolver.servers().unwrap(), ips(&["192.168.7.1"]));

        // Nothing to ask says so, naming what there was.
        std::fs::write(&f.resolv_conf, "nameserver 127.0.0.1\n").unwrap();
        let e = resolver.servers().unwrap_err();
        assert!(e.contains("names no DNS server") && e.contains("only 127.0.0.1"), "{e}");
    }

    /// A server on loopback that answers the first question with an address, for the marked path's sockets:
    /// the mark changes nothing on a host with no rule for it.
    #[tokio::test]
    async fn a_marked_question_is_answered_by_the_server() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: setting SO_MARK needs CAP_NET_ADMIN");
            return;
        }
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let at = server.local_addr().unwrap();
        let answering = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80;
            reply[7] = 1;
            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 99]);
            server.send_to(&reply, from).await.unwrap();
        });
        let got = ask_udp(at, &Question::new("peer.example", RecordType::A).unwrap()).await.unwrap();
        assert_eq!(got, ips(&["192.0.2.99"]));
        answering.await.unwrap();
    }
}
