//! The end-to-end harness: network namespaces joined by veth, real `culvertd` helpers inside them, the real
//! `culvert` CLI, and real peers. Everything a [`Lab`] creates is removed when it is dropped, also when the test
//! fails, and only processes the lab started are ever signalled.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

pub mod capture;
pub mod overlay;
pub mod vm;
pub mod webdriver;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call, usable in interface names (at most 15 bytes).
pub fn unique(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}{n}", std::process::id() % 100_000)
}

/// Where the workspace's binaries are: `$CULVERT_BIN_DIR`, else the target directory of this test binary.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("CULVERT_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("test binary path");
        exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: build it first with `cargo build --workspace`", path.display());
    path
}

pub fn require_root() {
    // SAFETY-free check: the effective uid from /proc avoids a libc call.
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2));
    assert_eq!(euid, Some("0"), "end-to-end tests need root (network namespaces, TUN devices)");
}

/// Runs a command, returning its output whatever its exit status.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// What a command wrote to its standard error, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must succeed; returns its stdout.
pub fn check(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ip(args: &[&str]) -> String {
    check(Command::new("ip").args(args))
}

/// A command run inside network namespace `ns`.
pub fn in_ns(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    c
}

/// Polls `f` until it returns true or `within` passes.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A running `culvertd` in a namespace.
#[derive(Debug)]
pub struct Helper {
    pub ns: String,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Helper {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `culvert --socket <this helper's socket> args...`, run in the root namespace (the socket is a path).
    pub fn culvert(&self, args: &[&str]) -> Output {
        run(Command::new(bin("culvert")).arg("--socket").arg(&self.socket).args(args))
    }

    /// `culvert` run as another user: `uid`/`gid` with no supplementary groups (no account needed: a process
    /// whose group is the helper's is a member).
    pub fn culvert_as(&self, uid: u32, gid: u32, args: &[&str]) -> Output {
        run(Command::new("setpriv")
            .args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into()])
            .arg(bin("culvert"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args))
    }

    /// The names of the records in the helper's state directory: one per tunnel it holds (or failed to undo).
    pub fn records(&self) -> Vec<String> {
        fs::read_dir(self.state_dir.join("tunnels"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }

    /// The helper's resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = self.pid().and_then(|p| fs::read_to_string(format!("/proc/{p}/status")).ok()).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time the helper has used, in clock ticks (user and system), from /proc.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = self.pid().and_then(|p| fs::read_to_string(format!("/proc/{p}/stat")).ok()).unwrap_or_default();
        // Fields after the command (which may hold spaces) begin after its closing parenthesis.
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, f)| f.split_whitespace().collect()).unwrap_or_default();
        let n = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        n(11) + n(12)
    }

    /// Like [`Helper::culvert`], but must succeed; returns stdout.
    pub fn culvert_ok(&self, args: &[&str]) -> String {
        let out = self.culvert(args);
        assert!(
            out.status.success(),
            "culvert {args:?} failed: {}\nhelper log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `status --json` of one tunnel.
    pub fn status(&self, name: &str) -> serde_json::Value {
        let out = self.culvert_ok(&["status", name, "--json"]);
        let mut all: Vec<serde_json::Value> = serde_json::from_str(&out).expect("status --json is a JSON array");
        assert_eq!(all.len(), 1, "status {name} should list one tunnel: {out}");
        all.remove(0)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` and waits for the helper to exit; returns whether it exited by itself in time.
    pub fn stop_with(&mut self, signal: i32) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let pid = child.id().to_string();
        let _ = run(Command::new("kill").arg(format!("-{signal}")).arg(&pid));
        let exited = wait_until(Duration::from_secs(10), || matches!(child.try_wait(), Ok(Some(_))));
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
        }
        exited
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop_with(15);
        }
        if std::thread::panicking() {
            eprintln!("--- culvertd log ({}) ---\n{}", self.ns, self.log_text());
        }
    }
}

/// Namespaces joined by veth, a scratch directory, and the helpers started in them.
#[derive(Debug)]
pub struct Lab {
    pub dir: PathBuf,
    pub namespaces: Vec<String>,
    pub helpers: Vec<Helper>,
    /// Other processes the lab started (peers such as socat), ended by PID when the lab is dropped.
    pub children: Vec<Child>,
    /// Files outside the lab's directory to remove when it is dropped (sockets of killed peers).
    pub stray_files: Vec<PathBuf>,
    /// Environment every helper started from now on gets (a private system bus, say).
    pub helper_env: Vec<(String, String)>,
}

impl Lab {
    pub fn new() -> Self {
        require_root();
        let dir = std::env::temp_dir().join(unique("culvert-e2e-"));
        fs::create_dir_all(&dir).expect("scratch dir");
        // Callers of other uids must reach sockets in here.
        check(Command::new("chmod").arg("755").arg(&dir));
        Self {
            dir,
            namespaces: Vec::new(),
            helpers: Vec::new(),
            children: Vec::new(),
            stray_files: Vec::new(),
            helper_env: Vec::new(),
        }
    }

    pub fn netns(&mut self) -> String {
        let name = unique("cvt");
        ip(&["netns", "add", &name]);
        self.namespaces.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// Joins `a` and `b` with a veth pair with the given addresses (with prefix lengths) on each end.
    pub fn veth(&self, a: &str, a_addrs: &[&str], b: &str, b_addrs: &[&str]) {
        let (va, vb) = (unique("va"), unique("vb"));
        ip(&["link", "add", &va, "netns", a, "type", "veth", "peer", "name", &vb, "netns", b]);
        for (ns, dev, addrs) in [(a, &va, a_addrs), (b, &vb, b_addrs)] {
            for addr in addrs {
                // No duplicate address detection: the address is usable at once.
                let nodad: &[&str] = if addr.contains(':') { &["nodad"] } else { &[] };
                ip(&[&["-n", ns, "addr", "add", addr, "dev", dev][..], nodad].concat());
            }
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
    }

    /// The name of the one veth device in `ns`.
    pub fn veth_in(ns: &str) -> String {
        let links = ip(&["-n", ns, "-o", "link", "show", "type", "veth"]);
        let name = links.split(':').nth(1).map(|d| d.trim().split('@').next().unwrap_or_default().to_owned());
        name.expect("a veth device in the namespace")
    }

    /// Two namespaces joined by veth: A is 172.31.0.1/24 and fd00:31::1/64, B 172.31.0.2/24 and fd00:31::2/64.
    pub fn two_hosts(&mut self) -> (String, String) {
        let (a, b) = (self.netns(), self.netns());
        self.veth(&a, &["172.31.0.1/24", "fd00:31::1/64"], &b, &["172.31.0.2/24", "fd00:31::2/64"]);
        (a, b)
    }

    /// Starts a helper in `ns`, with its own socket and state directory named after `tag`.
    pub fn start_helper(&mut self, ns: &str, tag: &str, extra: &[&str]) -> &mut Helper {
        let h = self.spawn_helper(ns, tag, extra).expect("start culvertd");
        self.helpers.push(h);
        self.helpers.last_mut().expect("just pushed")
    }

    /// Starts a helper and waits until it answers; fails with its log if it exits instead.
    pub fn spawn_helper(&self, ns: &str, tag: &str, extra: &[&str]) -> Result<Helper> {
        self.spawn_helper_with_binds(ns, tag, extra, &[])
    }

    /// Like [`Lab::spawn_helper`]; with `binds` (file, system path), the helper runs in a private mount namespace
    /// in which each file is bind-mounted over its system path (/etc/resolv.conf, /etc/hosts), so the machine's
    /// own files are never touched.
    pub fn spawn_helper_with_binds(
        &self,
        ns: &str,
        tag: &str,
        extra: &[&str],
        binds: &[(&Path, &str)],
    ) -> Result<Helper> {
        self.spawn_helper_with(ns, tag, extra, binds, &[])
    }

    /// Like [`Lab::spawn_helper_with_binds`], with culvertd run by `wrapper` (such as `prlimit --nofile=256`).
    pub fn spawn_helper_with(
        &self,
        ns: &str,
        tag: &str,
        extra: &[&str],
        binds: &[(&Path, &str)],
        wrapper: &[&str],
    ) -> Result<Helper> {
        let socket = self.dir.join(format!("{tag}.sock"));
        let state_dir = self.dir.join(format!("{tag}-state"));
        // Each helper its own monitor socket, should the host have a monitor group.
        let monitor = self.dir.join(format!("{tag}-monitor.sock")).into_os_string();
        let log = self.dir.join(format!("{tag}-{}.log", unique("")));
        let log_file = fs::File::create(&log)?;
        let mut cmd = if binds.is_empty() && wrapper.is_empty() {
            in_ns(ns, bin("culvertd"))
        } else if binds.is_empty() {
            let mut c = in_ns(ns, wrapper[0]);
            c.args(&wrapper[1..]).arg(bin("culvertd"));
            c
        } else {
            let mut c = in_ns(ns, "unshare");
            let script = r#"set -e; while [ "$1" != -- ]; do mount --bind "$1" "$2"; shift 2; done; shift; exec "$@""#;
            c.args(["-m", "--", "sh", "-c", script, "sh"]);
            for (file, target) in binds {
                c.arg(file).arg(target);
            }
            c.arg("--").args(wrapper).arg(bin("culvertd"));
            c
        };
        let child = cmd
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(&state_dir)
            .arg("--config-dir")
            .arg(self.dir.join(format!("{tag}-config")))
            .args(if extra.contains(&"--monitor-socket") { vec![] } else { vec!["--monitor-socket".into(), monitor] })
            .args(extra)
            .envs(self.helper_env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("spawning culvertd")?;
        let mut helper = Helper { ns: ns.into(), socket, state_dir, log, child: Some(child) };
        // Ready once it says it listens (a socket that answers may belong to another helper).
        let ready = wait_until(Duration::from_secs(10), || {
            matches!(helper.child.as_mut().map(Child::try_wait), Some(Ok(Some(_))))
                || helper.log_text().contains("listening on")
        });
        if let Some(Ok(Some(status))) = helper.child.as_mut().map(Child::try_wait) {
            helper.child = None;
            bail!("culvertd exited with {status}: {}", helper.log_text());
        }
        ensure!(ready, "culvertd did not answer within 10 s: {}", helper.log_text());
        Ok(helper)
    }

    /// Writes a profile file named `<name>.toml` into the lab's directory.
    pub fn profile(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.toml"));
        fs::write(&path, text).expect("write profile");
        path
    }

    /// Writes a wg-quick file named `<name>.conf` into the lab's directory.
    pub fn conf(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.conf"));
        fs::write(&path, text).expect("write wg-quick file");
        path
    }

    /// Starts a process the lab will end by PID when dropped.
    pub fn spawn(&mut self, cmd: &mut Command) -> &mut Child {
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
        self.children.push(child);
        self.children.last_mut().expect("just pushed")
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // SIGTERM first, so that peers with children of their own (tauri-driver's WebKitWebDriver) end them.
        for child in &self.children {
            let _ = run(Command::new("kill").arg("-TERM").arg(child.id().to_string()));
        }
        for mut child in self.children.drain(..) {
            if !wait_until(Duration::from_secs(3), || matches!(child.try_wait(), Ok(Some(_)))) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.helpers.clear();
        for ns in self.namespaces.drain(..) {
            let _ = run(Command::new("ip").args(["netns", "del", &ns]));
        }
        for path in self.stray_files.drain(..) {
            let _ = fs::remove_file(path);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A udp profile for one side of a two-host lab.
pub fn udp_profile(address: &str, port: u16, interface: &str, endpoint: &str, allowed: &str, mtu: u16) -> String {
    format!(
        "kind = \"udp\"\naddress = [\"{address}\"]\nlisten_port = {port}\nmtu = {mtu}\ninterface = \"{interface}\"\n\
         [[peer]]\nendpoint = \"{endpoint}\"\nallowed_ips = [\"{allowed}\"]\n"
    )
}

/// Pings `dst` from `ns`; true if replies came back.
pub fn ping(ns: &str, dst: &str, count: u32) -> bool {
    run(in_ns(ns, "ping").args(["-c", &count.to_string(), "-i", "0.2", "-W", "2", dst])).status.success()
}

/// Sends `bytes` random bytes over TCP from `from` to `to_addr` inside namespace `to`, and returns (sent, received).
pub fn tcp_transfer(lab: &mut Lab, from: &str, to: &str, to_addr: &str, port: u16, bytes: usize) -> (Vec<u8>, Vec<u8>) {
    let tag = unique("xfer");
    let src = lab.dir.join(format!("{tag}.in"));
    let dst = lab.dir.join(format!("{tag}.out"));
    let mut data = vec![0u8; bytes];
    fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut data)).expect("random data");
    fs::write(&src, &data).expect("write source");
    let mut server = in_ns(to, "socat")
        .args(["-u", &format!("TCP-LISTEN:{port},reuseaddr"), &format!("CREATE:{}", dst.display())])
        .stdin(Stdio::null())
        .spawn()
        .expect("socat server");
    let listening = wait_until(Duration::from_secs(5), || {
        let ss = run(in_ns(to, "ss").args(["-Hltn", &format!("sport = :{port}")]));
        !ss.stdout.is_empty()
    });
    assert!(listening, "the receiving socat did not listen");
    let sent = run(in_ns(from, "socat").args([
        "-u",
        &format!("OPEN:{}", src.display()),
        &format!("TCP:{to_addr}:{port},connect-timeout=5"),
    ]));
    let received_in_time = wait_until(Duration::from_secs(30), || matches!(server.try_wait(), Ok(Some(_))));
    if !received_in_time {
        let _ = server.kill();
    }
    let _ = server.wait();
    assert!(sent.status.success(), "sending socat failed: {}", String::from_utf8_lossy(&sent.stderr));
    let got = fs::read(&dst).unwrap_or_default();
    (data, got)
}

/// A key pair made with the reference tool: (private, public).
pub fn wg_keypair() -> (String, String) {
    let private = check(Command::new("wg").arg("genkey")).trim().to_owned();
    let mut child =
        Command::new("wg").arg("pubkey").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("wg pubkey");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), private.as_bytes()).expect("write key");
    let out = child.wait_with_output().expect("wg pubkey");
    (private, String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A wireguard-go device in a namespace, configured with `wg`.
#[derive(Debug)]
pub struct WireguardGo {
    pub ns: String,
    pub iface: String,
    pub public_key: String,
    key_file: PathBuf,
}

impl WireguardGo {
    /// Starts `wireguard-go -f` (in the foreground, so the lab can end it by PID) with a new key, listening on
    /// `port`, with `address` on its interface.
    pub fn start(lab: &mut Lab, ns: &str, port: u16, address: &str) -> Self {
        let iface = unique("wgo");
        let (private, public_key) = wg_keypair();
        let key_file = lab.dir.join(format!("{iface}.key"));
        fs::write(&key_file, &private).expect("key file");
        lab.spawn(in_ns(ns, "wireguard-go").args(["-f", &iface]));
        let sock = PathBuf::from(format!("/var/run/wireguard/{iface}.sock"));
        // Killed peers leave their API sockets behind.
        lab.stray_files.push(sock.clone());
        assert!(wait_until(Duration::from_secs(5), || sock.exists()), "wireguard-go did not start");
        let wg = Self { ns: ns.into(), iface, public_key, key_file };
        wg.wg(&[
            "set",
            &wg.iface,
            "private-key",
            wg.key_file.to_str().expect("path"),
            "listen-port",
            &port.to_string(),
        ]);
        ip(&["-n", ns, "addr", "add", address, "dev", &wg.iface]);
        ip(&["-n", ns, "link", "set", &wg.iface, "up"]);
        wg
    }

    /// Runs `wg ARGS` in the device's namespace; must succeed.
    pub fn wg(&self, args: &[&str]) -> String {
        check(in_ns(&self.ns, "wg").args(args))
    }

    /// `wg show IFACE dump`'s peer lines as (public key, endpoint, latest handshake, rx bytes, tx bytes).
    pub fn peers(&self) -> Vec<(String, String, u64, u64, u64)> {
        self.wg(&["show", &self.iface, "dump"])
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let n = |i: usize| f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
                (f[0].to_owned(), f[2].to_owned(), n(4), n(5), n(6))
            })
            .collect()
    }
}

/// Generates a key pair with `culvert genkey` and `culvert pubkey`: (private, public).
pub fn culvert_keypair() -> (String, String) {
    let private = check(Command::new(bin("culvert")).arg("genkey")).trim().to_owned();
    let mut child = Command::new(bin("culvert"))
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("culvert pubkey");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), private.as_bytes()).expect("write key");
    let out = child.wait_with_output().expect("culvert pubkey");
    (private, String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A desktop session's keyring for the CLI: a private D-Bus session bus and an unlocked gnome-keyring-daemon
/// holding a throw-away login keyring under a throw-away HOME. Both end with the lab.
#[derive(Debug)]
pub struct SessionKeyring {
    pub home: PathBuf,
    pub bus: String,
}

impl SessionKeyring {
    pub fn start(lab: &mut Lab) -> Self {
        let home = lab.dir.join(unique("home"));
        fs::create_dir_all(home.join(".local/share")).expect("home");
        let socket = home.join("bus");
        let bus = format!("unix:path={}", socket.display());
        lab.spawn(Command::new("dbus-daemon").args([
            "--session",
            "--nofork",
            "--nopidfile",
            &format!("--address={bus}"),
        ]));
        assert!(wait_until(Duration::from_secs(5), || socket.exists()), "the session bus did not start");
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("DBUS_SESSION_BUS_ADDRESS", &bus)
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon");
        // The login keyring's password, then end of input.
        let _ = std::io::Write::write_all(&mut keyring.stdin.take().expect("stdin"), b"culvert-test\n");
        lab.children.push(keyring);
        let s = Self { home, bus };
        let ready = wait_until(Duration::from_secs(10), || {
            let out = run(s.env(&mut Command::new("dbus-send")).args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ]));
            String::from_utf8_lossy(&out.stdout).contains("boolean true")
        });
        assert!(ready, "gnome-keyring-daemon did not take the Secret Service name");
        s
    }

    /// Gives `cmd` this session: its HOME, config directory and bus.
    pub fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
    }

    /// `culvert ARGS` as the session's user would run it.
    pub fn culvert(&self, socket: &Path, args: &[&str]) -> Output {
        run(self.env(&mut Command::new(bin("culvert"))).arg("--socket").arg(socket).args(args))
    }

    /// What the Secret Service holds for `account` of service `culvert`, read with libsecret's own tool.
    pub fn lookup(&self, account: &str) -> Option<String> {
        let out =
            run(self.env(&mut Command::new("secret-tool")).args(["lookup", "service", "culvert", "username", account]));
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

/// A raw connection to a helper that has exchanged hellos and then does only what the test makes it do: send
/// requests and never read, say, as a stalled client would.
#[derive(Debug)]
pub struct RawClient {
    pub stream: std::os::unix::net::UnixStream,
}

impl RawClient {
    /// Connects and sends the hello; with `wait`, reads the helper's answer (which must be its hello).
    pub fn connect(socket: &Path, wait: bool) -> Result<Self> {
        let stream = std::os::unix::net::UnixStream::connect(socket)?;
        let mut c = Self { stream };
        c.send(&serde_json::json!({"type": "hello", "protocol_version": culvert_core::ipc::PROTOCOL_VERSION}))?;
        if wait {
            c.stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let hello = c.read()?;
            ensure!(hello["type"] == "hello", "the helper answered {hello}");
        }
        Ok(c)
    }

    pub fn send(&mut self, message: &serde_json::Value) -> Result<()> {
        use std::io::Write;
        let body = serde_json::to_vec(message)?;
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend(body);
        self.stream.write_all(&frame)?;
        Ok(())
    }

    pub fn read(&mut self) -> Result<serde_json::Value> {
        use std::io::Read;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body)?;
        Ok(serde_json::from_slice(&body)?)
    }
}

/// Runs `f` with a client of the helper on `socket`, on a runtime of its own: for requests the CLI would refuse
/// before sending them (the helper must refuse them itself).
pub fn with_client<T>(socket: &Path, f: impl AsyncFnOnce(&mut culvert_core::client::Client) -> T) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut client = culvert_core::client::Client::connect(socket).await?;
        Ok(f(&mut client).await)
    })
}

/// Raises this process's soft limit on open files to its hard one, for tests that hold many connections.
pub fn raise_open_files() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Reads back a QR code drawn in a terminal (`culvert export --qr`: half blocks, ink for light modules, ANSI
/// colours around each line) with rqrr, a decoder Culvert does not use, as a phone's camera would see it.
pub fn decode_terminal_qr(drawn: &str) -> Result<String> {
    let mut rows: Vec<Vec<bool>> = Vec::new();
    for line in drawn.lines() {
        let mut plain = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                chars.by_ref().find(|c| *c == 'm');
            } else {
                plain.push(c);
            }
        }
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for c in plain.chars() {
            let (t, b) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                ' ' => (false, false),
                other => bail!("{other:?} is not part of a drawn QR code"),
            };
            top.push(t);
            bottom.push(b);
        }
        rows.push(top);
        rows.push(bottom);
    }
    decode_qr_bitmap(&rows)
}

/// Reads back a QR code given as rows of modules (true for a light one, the quiet zone included) with rqrr.
pub fn decode_qr_bitmap(rows: &[Vec<bool>]) -> Result<String> {
    /// Pixels per module each way: a decoder wants more than one.
    const SCALE: usize = 4;
    let width = rows.first().map_or(0, Vec::len);
    let height = rows.len();
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width * SCALE, height * SCALE, |x, y| {
        if rows[y / SCALE].get(x / SCALE).copied().unwrap_or(true) { 255 } else { 0 }
    });
    let grids = image.detect_grids();
    let grid = grids.first().context("no QR code found")?;
    let (_, content) = grid.decode().map_err(|e| anyhow::anyhow!("the QR code does not decode: {e}"))?;
    Ok(content)
}

/// What bash offers for `words` (the last one being completed) through culvert's completion function, loaded by
/// `load` (`source <(COMPLETE=bash culvert)`, or an installed completion file), with `culvert_dir` first on the
/// PATH, in `dir`, with the environment `env`.
pub fn bash_completions(
    load: &str,
    culvert_dir: &Path,
    dir: &Path,
    env: &[(&str, &Path)],
    words: &[&str],
) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "{load}\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMP_TYPE=9\n\
         _clap_complete_culvert culvert {current} {previous}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" "),
        cword = words.len() - 1,
        current = quoted[words.len() - 1],
        previous = quoted[words.len().saturating_sub(2)],
    );
    let path = format!("{}:{}", culvert_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).current_dir(dir).env("PATH", path);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = check(&mut cmd);
    out.lines().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect()
}
