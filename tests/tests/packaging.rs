//! The maintainer scripts in isolation: each runs with a scratch root (CULVERT_ROOT) and stub commands that record
//! how they were called, for the deb and the rpm conventions, with and without a running systemd.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Commands the scripts may run that the stubs stand in for; everything else they use comes from coreutils.
const STUBBED: &[&str] =
    &["getent", "systemd-sysusers", "systemd-tmpfiles", "groupadd", "groupdel", "systemctl", "id", "culvert"];
const REAL: &[&str] = &["basename", "mkdir", "dirname", "chmod", "tr", "grep", "cut", "rm", "rmdir"];

/// Records each call in $CALLS; answers as a machine where group culvert exists when $GROUP_EXISTS is set, group
/// culvert-monitor when $MONITOR_GROUP_EXISTS is, uid 1001 is bob (in group culvert), alice is in no group, and
/// culvertd is active when $ACTIVE is set.
const STUB: &str = r#"#!/bin/sh
call="$(basename "$0") $*"
echo "$call" >>"$CALLS"
case "$call" in
  "getent group culvert") [ -n "$GROUP_EXISTS" ] ;;
  "getent group culvert-monitor") [ -n "$MONITOR_GROUP_EXISTS" ] ;;
  "getent passwd 1001") echo "bob:x:1001:1001::/home/bob:/bin/sh" ;;
  "id -nG bob") echo "bob culvert" ;;
  "id -nG alice") echo "alice" ;;
  "systemctl is-active --quiet culvertd.service") [ -n "$ACTIVE" ] ;;
  *) true ;;
esac
"#;

struct Machine {
    dir: PathBuf,
    root: PathBuf,
    bin: PathBuf,
    env: Vec<(&'static str, String)>,
}

struct Ran {
    calls: Vec<String>,
    stdout: String,
}

impl Machine {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(culvert_tests::unique(&format!("culvert-scripts-{tag}-")));
        let (root, bin) = (dir.join("root"), dir.join("bin"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        for name in STUBBED {
            let path = bin.join(name);
            std::fs::write(&path, STUB).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        for name in REAL {
            let real = ["/usr/bin", "/bin"].iter().map(|d| Path::new(d).join(name)).find(|p| p.exists()).unwrap();
            std::os::unix::fs::symlink(real, bin.join(name)).unwrap();
        }
        Self { dir, root, bin, env: vec![] }
    }

    fn with_systemd(self) -> Self {
        std::fs::create_dir_all(self.root.join("run/systemd/system")).unwrap();
        self
    }

    fn without(self, command: &str) -> Self {
        std::fs::remove_file(self.bin.join(command)).unwrap();
        self
    }

    fn env(mut self, key: &'static str, value: &str) -> Self {
        self.env.push((key, value.into()));
        self
    }

    fn run(&self, script: &str, args: &[&str]) -> Ran {
        let calls = self.dir.join("calls");
        let _ = std::fs::remove_file(&calls);
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/scripts").join(script);
        let mut cmd = Command::new("/bin/sh");
        cmd.arg(&path)
            .args(args)
            .env_clear()
            .env("PATH", &self.bin)
            .env("CULVERT_ROOT", &self.root)
            .env("CALLS", &calls);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{script} {args:?} failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        let calls = std::fs::read_to_string(&calls).unwrap_or_default().lines().map(str::to_owned).collect();
        Ran { calls, stdout }
    }

    fn marker(&self) -> PathBuf {
        self.root.join("var/lib/culvert/package-created-group")
    }

    fn monitor_marker(&self) -> PathBuf {
        self.root.join("var/lib/culvert/package-created-monitor-group")
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn has(ran: &Ran, call: &str) -> bool {
    ran.calls.iter().any(|c| c == call)
}

#[test]
fn a_first_deb_install_creates_the_group_enables_and_starts_the_helper_and_tells_the_user() {
    let m = Machine::new("install").with_systemd().env("SUDO_USER", "alice");
    let ran = m.run("postinst", &["configure", ""]);
    for call in [
        "systemd-sysusers culvert.conf",
        "systemd-tmpfiles --create culvert.conf",
        "systemctl enable culvertd.service culvertd-early-block.service",
        "systemctl daemon-reload",
        "systemctl start culvertd.service",
    ] {
        assert!(has(&ran, call), "no `{call}` in {:?}", ran.calls);
    }
    assert!(m.marker().exists(), "install does not remember that it created the group");
    assert!(m.monitor_marker().exists(), "install does not remember that it created the monitor group");
    assert!(
        !ran.calls.iter().any(|c| c.contains("culvert-exporter")),
        "the exporter is off by default: {:?}",
        ran.calls
    );
    assert!(ran.stdout.contains("sudo usermod -aG culvert alice"), "{}", ran.stdout);
}

#[test]
fn an_upgrade_restarts_a_running_helper_and_creates_nothing() {
    let m = Machine::new("upgrade")
        .with_systemd()
        .env("GROUP_EXISTS", "1")
        .env("MONITOR_GROUP_EXISTS", "1")
        .env("ACTIVE", "1");
    for args in [&["configure", "0.0.9"][..], &["2"][..]] {
        let ran = m.run("postinst", args);
        assert!(has(&ran, "systemctl try-restart culvertd.service"), "{args:?}: {:?}", ran.calls);
        assert!(!has(&ran, "systemctl start culvertd.service"), "{args:?}: {:?}", ran.calls);
        assert!(!ran.calls.iter().any(|c| c.starts_with("groupadd") || c.starts_with("systemd-sysusers")));
        assert!(ran.stdout.contains("connect your tunnels again"), "{}", ran.stdout);
        assert!(!ran.stdout.contains("usermod"), "an upgrade does not repeat the access hint: {}", ran.stdout);
    }
    assert!(!m.marker().exists(), "the group existed before: purge must leave it");
}

/// Upgrading from a version without the monitor group creates it (and only it), and remembers that.
#[test]
fn an_upgrade_from_before_the_monitor_group_creates_it() {
    let m = Machine::new("upgrade-monitor").without("systemd-sysusers").env("GROUP_EXISTS", "1");
    let ran = m.run("postinst", &["configure", "0.0.9"]);
    assert!(has(&ran, "groupadd --system culvert-monitor"), "{:?}", ran.calls);
    assert!(!has(&ran, "groupadd --system culvert"), "{:?}", ran.calls);
    assert!(m.monitor_marker().exists() && !m.marker().exists());
}

#[test]
fn without_systemd_an_rpm_install_succeeds_with_a_message_and_groupadd() {
    let m = Machine::new("nosystemd").without("systemd-sysusers");
    let ran = m.run("postinst", &["1"]);
    assert!(has(&ran, "groupadd --system culvert"), "{:?}", ran.calls);
    assert!(has(&ran, "systemctl enable culvertd.service culvertd-early-block.service"), "{:?}", ran.calls);
    assert!(!ran.calls.iter().any(|c| c.contains("start") || c.contains("daemon-reload")), "{:?}", ran.calls);
    assert!(ran.stdout.contains("systemd is not running"), "{}", ran.stdout);
    assert!(ran.stdout.contains("sudo usermod -aG culvert USER"), "no user known: {}", ran.stdout);
}

#[test]
fn a_pkexec_install_names_the_user_behind_it() {
    let m = Machine::new("pkexec").with_systemd().env("GROUP_EXISTS", "1").env("PKEXEC_UID", "1001");
    let ran = m.run("postinst", &["configure"]);
    assert!(ran.stdout.contains("bob is in group culvert"), "{}", ran.stdout);
}

#[test]
fn removal_stops_and_disables_the_helper_but_an_upgrade_does_not() {
    let m = Machine::new("prerm").with_systemd();
    for args in [&["upgrade", "0.2.0"][..], &["1"][..], &["failed-upgrade", "0.0.9"][..]] {
        assert!(m.run("prerm", args).calls.is_empty(), "{args:?} must leave the helper running");
    }
    for args in [&["remove"][..], &["0"][..]] {
        let ran = m.run("prerm", args);
        let stop = "systemctl stop culvert-exporter.service culvertd.service";
        let disable = "systemctl disable culvertd.service culvertd-early-block.service culvert-exporter.service";
        assert_eq!(ran.calls, [stop, disable], "{args:?}");
    }
}

#[test]
fn removal_without_systemd_takes_a_hand_started_helpers_tunnels_down() {
    let m = Machine::new("prerm-hand");
    std::fs::create_dir_all(m.root.join("run/culvert")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(m.root.join("run/culvert/culvertd.sock")).unwrap();
    let ran = m.run("prerm", &["remove"]);
    assert!(has(&ran, "culvert down --all"), "{:?}", ran.calls);
    assert!(ran.stdout.contains("culvertd still runs"), "{}", ran.stdout);
}

#[test]
fn purge_removes_the_state_and_only_a_group_that_install_created() {
    let m = Machine::new("purge").env("GROUP_EXISTS", "1").env("MONITOR_GROUP_EXISTS", "1");
    let state = m.root.join("var/lib/culvert");
    let config = m.root.join("etc/culvert");
    std::fs::create_dir_all(state.join("tunnels")).unwrap();
    std::fs::create_dir_all(config.join("tunnels")).unwrap();
    std::fs::write(config.join("lockdown"), "on\n").unwrap();
    std::fs::write(m.marker(), "").unwrap();
    std::fs::write(m.monitor_marker(), "").unwrap();

    let ran = m.run("postrm", &["remove"]);
    assert!(state.exists() && ran.calls.is_empty(), "remove keeps state and group: {:?}", ran.calls);
    assert!(config.join("lockdown").exists(), "remove keeps the system tunnels and lockdown");
    assert!(m.run("postrm", &["upgrade", "0.2.0"]).calls.is_empty());
    assert!(m.run("postrm", &["1"]).calls.is_empty(), "an rpm upgrade removes nothing");

    let ran = m.run("postrm", &["purge"]);
    assert!(has(&ran, "groupdel culvert"), "{:?}", ran.calls);
    assert!(has(&ran, "groupdel culvert-monitor"), "{:?}", ran.calls);
    assert!(!state.exists(), "purge left {}", state.display());
    assert!(!config.exists(), "purge left {}: a later install would come up in lockdown", config.display());

    // An admin's own group culvert outlives the package, on an rpm erase as on a purge.
    std::fs::create_dir_all(&state).unwrap();
    let ran = m.run("postrm", &["0"]);
    assert!(!ran.calls.iter().any(|c| c.starts_with("groupdel")), "{:?}", ran.calls);
    assert!(!state.exists());
}
