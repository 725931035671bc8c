//! The .deb on this machine, as a user would meet it: dpkg installs it, every file lands with its owner and mode,
//! the unit verifies, the installed culvertd runs the way the unit's ExecStart runs it (only CAP_NET_ADMIN, group
//! culvert, no new privileges, readiness over NOTIFY_SOCKET), a member of group culvert brings a udp tunnel up
//! between two namespaces with the installed CLI, and removal then purge leave nothing behind.
//!
//! Needs the package built first (`packaging/build`) and its path in CULVERT_DEB; scripts/test does both.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use culvert_tests::{Lab, check, in_ns, run, udp_profile, wait_until};

const PACKAGE: &str = "culvert";
const UNIT: &str = "/usr/lib/systemd/system/culvertd.service";
const EARLY_UNIT: &str = "/usr/lib/systemd/system/culvertd-early-block.service";
const EXPORTER_UNIT: &str = "/usr/lib/systemd/system/culvert-exporter.service";

fn dpkg(args: &[&str]) -> std::process::Output {
    run(Command::new("dpkg").args(args).env("DEBIAN_FRONTEND", "noninteractive"))
}

fn installed() -> bool {
    String::from_utf8_lossy(&dpkg(&["-s", PACKAGE]).stdout).contains("Status: install ok installed")
}

fn group_gid(name: &str) -> Option<u32> {
    let out = run(Command::new("getent").args(["group", name]));
    String::from_utf8_lossy(&out.stdout).split(':').nth(2).and_then(|g| g.trim().parse().ok())
}

/// Purges the package however the test ends, so a failure never leaves it installed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if installed() || dpkg(&["-s", PACKAGE]).status.success() {
            let out = dpkg(&["--purge", PACKAGE]);
            eprintln!("cleanup: dpkg --purge {PACKAGE}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// The command line of the unit's ExecStart.
fn exec_start() -> Vec<String> {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let line = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("the unit has an ExecStart");
    line.split_whitespace().map(str::to_owned).collect()
}

fn mode_and_owner(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

#[test]
fn the_package_installs_runs_a_tunnel_as_a_group_member_and_purges_clean() {
    let deb = PathBuf::from(std::env::var("CULVERT_DEB").expect("CULVERT_DEB: the .deb to test (packaging/build)"));
    assert!(deb.exists(), "{} does not exist: build it with packaging/build", deb.display());
    assert!(!installed(), "the culvert package is already installed here: the install test needs a machine without it");
    let depends = check(Command::new("dpkg-deb").args(["--field"]).arg(&deb).arg("Depends"));
    for lib in ["libc6 (>= 2.34)", "libwebkit2gtk-4.1-0", "libayatana-appindicator3-1", "nftables"] {
        assert!(depends.contains(lib), "the .deb does not depend on {lib}: {depends}");
    }
    let group_before = group_gid("culvert");
    let monitor_group_before = group_gid("culvert-monitor");
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let guard = Installed;

    // Install, as `sudo dpkg -i` from a user's shell.
    let out = run(Command::new("dpkg").arg("-i").arg(&deb).env("SUDO_USER", "nobody"));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "dpkg -i failed: {said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("sudo usermod -aG culvert nobody"), "the installing user was not told how to join: {said}");
    let gid = group_gid("culvert").expect("install did not create group culvert");
    let monitor_gid = group_gid("culvert-monitor").expect("install did not create group culvert-monitor");

    // Every file with its mode and owner.
    let files: Vec<String> =
        String::from_utf8_lossy(&dpkg(&["-L", PACKAGE]).stdout).lines().map(str::to_owned).collect();
    for (path, mode) in [
        ("/usr/bin/culvert-app", 0o755),
        ("/usr/bin/culvertd", 0o755),
        ("/usr/bin/culvert", 0o755),
        ("/usr/bin/culvert-wg", 0o755),
        (UNIT, 0o644),
        (EARLY_UNIT, 0o644),
        (EXPORTER_UNIT, 0o644),
        ("/usr/lib/sysusers.d/culvert.conf", 0o644),
        ("/usr/lib/tmpfiles.d/culvert.conf", 0o644),
        ("/usr/share/applications/Culvert.desktop", 0o644),
        ("/usr/share/icons/hicolor/16x16/apps/culvert-app.png", 0o644),
        ("/usr/share/icons/hicolor/48x48/apps/culvert-app.png", 0o644),
        ("/usr/share/icons/hicolor/128x128/apps/culvert-app.png", 0o644),
        ("/usr/share/icons/hicolor/256x256/apps/culvert-app.png", 0o644),
        ("/usr/share/man/man1/culvert.1.gz", 0o644),
        ("/usr/share/man/man1/culvert-up.1.gz", 0o644),
        ("/usr/share/man/man8/culvertd.8.gz", 0o644),
        ("/usr/share/man/man8/culvert-wg.8.gz", 0o644),
        ("/usr/share/bash-completion/completions/culvert", 0o644),
        ("/usr/share/zsh/vendor-completions/_culvert", 0o644),
        ("/usr/share/fish/vendor_completions.d/culvert.fish", 0o644),
    ] {
        assert!(files.iter().any(|f| f == path), "{path} is not in the package: {files:?}");
        assert_eq!(mode_and_owner(Path::new(path)), (mode, 0, 0), "{path}: mode, uid, gid");
    }
    for f in &files {
        let (_, uid, gid) = mode_and_owner(Path::new(f));
        assert_eq!((uid, gid), (0, 0), "{f} is not root's");
    }
    // man finds each page where it looks, and renders what the binary's own --help says.
    for (page, says) in [
        ("culvert", "culvert-watch(1)"),
        ("culvert-up", "stored profile"),
        ("culvertd", "--config-dir"),
        ("culvert-wg", "WG_QUICK_USERSPACE_IMPLEMENTATION"),
    ] {
        let found = check(Command::new("man").args(["-w", page]));
        assert!(found.trim().starts_with("/usr/share/man/man"), "man -w {page}: {found}");
        let text = check(Command::new("man").arg(page).env("MANWIDTH", "200"));
        assert!(text.contains(says), "man {page} does not say {says:?}: {text}");
    }
    let desktop = std::fs::read_to_string("/usr/share/applications/Culvert.desktop").unwrap();
    assert!(desktop.contains("Exec=culvert-app"), "{desktop}");
    for link in [
        "/etc/systemd/system/multi-user.target.wants/culvertd.service",
        "/etc/systemd/system/sysinit.target.wants/culvertd-early-block.service",
    ] {
        assert!(Path::new(link).exists(), "install did not enable the unit: no {link}");
    }

    // The units as systemd reads them.
    let verify = run(Command::new("systemd-analyze").args(["verify", UNIT, EARLY_UNIT, EXPORTER_UNIT]));
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    // The installed culvertd, started as the unit starts it: the directories systemd would make, then ExecStart
    // with the unit's capabilities and group, and a NOTIFY_SOCKET to hear READY=1 on.
    for (dir, mode, group) in [
        ("/run/culvert", 0o750, gid),
        ("/run/culvert-monitor", 0o750, gid),
        ("/run/wireguard", 0o755, 0),
        ("/var/lib/culvert", 0o700, gid),
    ] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(dir, Some(0), Some(group)).unwrap();
    }
    let notify_path = lab.dir.join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let log = lab.dir.join("installed-culvertd.log");
    let mut helper = in_ns(&a, "setpriv");
    helper
        .args(["--reuid=0", &format!("--regid={gid}"), &format!("--groups={monitor_gid}"), "--no-new-privs"])
        .args(["--bounding-set=-all,+net_admin", "--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin", "--"])
        .args(exec_start())
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    lab.spawn(&mut helper);
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap_or_else(|e| {
        panic!("no readiness from the installed culvertd ({e}): {}", std::fs::read_to_string(&log).unwrap())
    });
    assert_eq!(&buf[..n], b"READY=1");
    let socket = mode_and_owner(Path::new("/run/culvert/culvertd.sock"));
    assert_eq!(socket, (0o660, 0, gid), "the socket's mode and owner");
    let monitor = mode_and_owner(Path::new("/run/culvert-monitor/culvertd.sock"));
    assert_eq!(monitor, (0o660, 0, monitor_gid), "the monitor socket's mode and owner");
    assert_eq!(mode_and_owner(Path::new("/run/culvert-monitor")).0, 0o755, "monitors cannot reach their socket");

    // The peer: the installed culvertd again, as a plain root process in the other namespace.
    let peer_socket = lab.dir.join("peer.sock");
    lab.spawn(
        in_ns(&b, "/usr/bin/culvertd")
            .arg("--socket")
            .arg(&peer_socket)
            .arg("--state-dir")
            .arg(lab.dir.join("peer-state"))
            .arg("--config-dir")
            .arg(lab.dir.join("peer-config"))
            .arg("--monitor-socket")
            .arg(lab.dir.join("peer-monitor.sock"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(wait_until(Duration::from_secs(10), || peer_socket.exists()), "the peer culvertd did not start");
    let peer =
        lab.profile("pkgpeer", &udp_profile("10.9.0.2/24", 8285, "cv-pkgpeer", "172.31.0.1:8285", "10.9.0.0/24", 1400));
    check(Command::new("/usr/bin/culvert").arg("--socket").arg(&peer_socket).arg("up").arg(&peer));

    // A member of group culvert (here: nobody with culvert as its group) uses the installed CLI on the default socket.
    let mine =
        lab.profile("pkgtest", &udp_profile("10.9.0.1/24", 8285, "cv-pkgtest", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let as_member = |args: &[&str]| {
        run(Command::new("setpriv")
            .args(["--reuid=65534", &format!("--regid={gid}"), "--clear-groups", "--", "/usr/bin/culvert"])
            .args(args))
    };
    let up = as_member(&["up", mine.to_str().unwrap()]);
    assert!(
        up.status.success(),
        "culvert up as a group member: {}\n{}",
        String::from_utf8_lossy(&up.stderr),
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(culvert_tests::ping(&a, "10.9.0.2", 3), "no traffic through the installed helper's tunnel");
    let status = as_member(&["status", "pkgtest"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("pkgtest"), "{status:?}");

    // The exporter, as its unit runs it (a user in group culvert-monitor only), serves the tunnel's counters.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    lab.spawn(
        Command::new("setpriv")
            .args(["--reuid=65534", &format!("--regid={monitor_gid}"), "--clear-groups", "--", "/usr/bin/culvert"])
            .args(["exporter", "--listen", &listen])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(&listen).is_ok()), "no exporter");
    let mut scrape = std::net::TcpStream::connect(&listen).unwrap();
    std::io::Write::write_all(&mut scrape, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut page = String::new();
    std::io::Read::read_to_string(&mut scrape, &mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK") && page.contains("culvert_helper_up 1"), "{page}");
    assert!(page.contains(r#"culvert_tunnel_receive_bytes_total{tunnel="pkgtest"}"#), "{page}");

    // The installed bash completions offer the stored profiles and the tunnels that are up.
    let home = lab.dir.join("completing");
    let config = home.join("config");
    let env: [(&str, &Path); 2] = [("HOME", &home), ("XDG_CONFIG_HOME", &config)];
    check(Command::new("/usr/bin/culvert").envs(env).arg("import").arg(&peer));
    let load = "source /usr/share/bash-completion/completions/culvert";
    // In a directory without profile files, which `up` would offer too.
    let empty = home.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let complete = |words: &[&str]| culvert_tests::bash_completions(load, Path::new("/usr/bin"), &empty, &env, words);
    assert_eq!(complete(&["culvert", "up", "pkgp"]), ["pkgpeer"], "up does not offer the stored profile");
    assert_eq!(complete(&["culvert", "down", "pkgt"]), ["pkgtest"], "down does not offer the tunnel that is up");
    let outsider = run(Command::new("setpriv").args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        "/usr/bin/culvert",
        "status",
    ]));
    assert!(!outsider.status.success(), "a user outside group culvert reached the helper");

    // Removal with the tunnel up: prerm takes it down through the helper (no systemd here to stop it).
    let out = dpkg(&["--remove", PACKAGE]);
    assert!(out.status.success(), "dpkg --remove: {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        wait_until(Duration::from_secs(10), || !check(in_ns(&a, "ip").args(["-o", "link"])).contains("cv-pkgtest")),
        "removal left the tunnel's link"
    );
    let left: Vec<&String> = files.iter().filter(|f| Path::new(f).is_file()).collect();
    assert!(left.is_empty(), "files outlived removal: {left:?}");
    assert!(!Path::new("/etc/systemd/system/multi-user.target.wants/culvertd.service").exists(), "still enabled");
    assert!(
        !Path::new("/etc/systemd/system/sysinit.target.wants/culvertd-early-block.service").exists(),
        "the early block is still enabled"
    );
    assert!(
        group_gid("culvert").is_some() && Path::new("/var/lib/culvert").exists(),
        "remove (not purge) keeps group and state"
    );

    // The helpers we started end by SIGTERM, as systemd stops them; then purge.
    for child in &mut lab.children {
        let _ = run(Command::new("kill").arg("-TERM").arg(child.id().to_string()));
        let _ = child.wait();
    }
    let out = dpkg(&["--purge", PACKAGE]);
    assert!(out.status.success(), "dpkg --purge: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!dpkg(&["-s", PACKAGE]).status.success(), "dpkg still knows the package");
    assert_eq!(group_gid("culvert"), group_before, "purge must leave groups as they were");
    assert_eq!(group_gid("culvert-monitor"), monitor_group_before, "purge must leave groups as they were");
    for dir in ["/var/lib/culvert", "/run/culvert", "/run/culvert-monitor"] {
        assert!(!Path::new(dir).exists(), "{dir} outlived purge");
    }
    let _ = std::fs::remove_dir("/run/wireguard");
    drop(guard);
}

/// The .rpm cannot be installed here (Debian), so it is read: the same files as the .deb, the maintainer scripts
/// in rpm's three places, and the desktop's libraries among its requirements.
#[test]
fn the_package_rpm_holds_the_files_the_scripts_and_the_dependencies() {
    let rpm = PathBuf::from(std::env::var("CULVERT_RPM").expect("CULVERT_RPM: the .rpm to read (packaging/build)"));
    let query = |args: &[&str]| check(Command::new("rpm").arg("-qp").args(args).arg(&rpm));
    let files = query(&["--list"]);
    for path in [
        "/usr/bin/culvert-app",
        "/usr/bin/culvertd",
        "/usr/bin/culvert",
        "/usr/bin/culvert-wg",
        UNIT,
        EARLY_UNIT,
        EXPORTER_UNIT,
        "/usr/lib/sysusers.d/culvert.conf",
        "/usr/lib/tmpfiles.d/culvert.conf",
        "/usr/share/applications/Culvert.desktop",
        "/usr/share/icons/hicolor/48x48/apps/culvert-app.png",
        "/usr/share/man/man1/culvert.1.gz",
        "/usr/share/man/man8/culvertd.8.gz",
        "/usr/share/man/man8/culvert-wg.8.gz",
        "/usr/share/bash-completion/completions/culvert",
        "/usr/share/zsh/site-functions/_culvert",
        "/usr/share/fish/vendor_completions.d/culvert.fish",
    ] {
        assert!(files.lines().any(|l| l == path), "{path} is not in the rpm: {files}");
    }
    let scripts = query(&["--scripts"]);
    for (scriptlet, text) in [
        ("postinstall", "systemctl start culvertd.service"),
        ("preuninstall", "culvert down --all"),
        ("postuninstall", "groupdel culvert"),
    ] {
        assert!(
            scripts.contains(&format!("{scriptlet} scriptlet")) && scripts.contains(text),
            "no {scriptlet} scriptlet with `{text}`: {scripts}"
        );
    }
    let requires = query(&["--requires"]);
    for lib in ["webkit2gtk", "glibc >= 2.34", "nftables"] {
        assert!(requires.contains(lib), "the rpm does not require {lib}: {requires}");
    }
}
