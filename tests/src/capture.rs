//! tcpdump on one end of a link, for tests that count what crossed it (leaks past a kill switch).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{in_ns, run, wait_until};

/// A capture of what arrives on `dev` in `ns` (`-Q in`: what the other end sent), running until it is asked for
/// its packets.
#[derive(Debug)]
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Starts tcpdump and waits until it listens; its files go in `dir`, named after `tag`.
    pub fn start(dir: &Path, ns: &str, dev: &str, tag: &str) -> Self {
        let file = dir.join(format!("{tag}.pcap"));
        let log = dir.join(format!("{tag}.tcpdump.log"));
        let child = in_ns(ns, "tcpdump")
            .args(["-i", dev, "-Q", "in", "-n", "-U", "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("tcpdump's log"))
            .spawn()
            .expect("start tcpdump");
        let listening = wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(&log).unwrap_or_default().contains("listening on")
        });
        assert!(listening, "tcpdump did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
        Self { child, file }
    }

    /// Ends the capture (by its PID) and returns the packets that `allowed` does not match, one line each.
    pub fn leaked(mut self, allowed: &str) -> Vec<String> {
        let _ = run(Command::new("kill").arg("-INT").arg(self.child.id().to_string()));
        let _ = self.child.wait();
        packets(&self.file, &format!("not ({allowed})"))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The packets of a capture file that `filter` matches, as tcpdump prints them.
pub fn packets(file: &Path, filter: &str) -> Vec<String> {
    let out = run(Command::new("tcpdump").args(["-n", "-r"]).arg(file).arg(filter));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}
