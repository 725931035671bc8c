//! System tunnels: `culvert enable` has culvertd keep a profile in its config directory, root-only with its keys
//! inline, and bring it up whenever it starts, after a crash too; `disable` brings it down and forgets it. The
//! user who enabled it owns it; root may disable any; nobody else touches it.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use culvert_tests::{Lab, ping, stderr, udp_profile, wait_until};

const USER: (u32, u32) = (4242, 65534);
const OTHER: (u32, u32) = (4343, 65534);

#[test]
fn an_enabled_tunnel_comes_back_after_a_crash_and_disable_forgets_it() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let mine = lab.profile("on", &udp_profile("10.9.0.1/24", 8285, "cv-on", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let peer =
        lab.profile("onpeer", &udp_profile("10.9.0.2/24", 8285, "cv-on", "172.31.0.1:8285", "10.9.0.0/24", 1400));
    // Members of the helper's group may enable: here, nogroup.
    lab.start_helper(&a, "a", &["--group", "nogroup"]);
    lab.start_helper(&b, "b", &[]);
    lab.helpers[1].culvert_ok(&["up", peer.to_str().unwrap()]);

    let out = lab.helpers[0].culvert_as(USER.0, USER.1, &["enable", mine.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("enabled"), "{out:?}");
    let kept = lab.dir.join("a-config/tunnels/on.toml");
    let text = std::fs::read_to_string(&kept).unwrap();
    assert!(text.starts_with(&format!("# culvert: enabled by uid {}\n", USER.0)), "{text}");
    assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(ping(&a, "10.9.0.2", 2));
    let s = lab.helpers[0].status("on");
    assert_eq!((s["system"].as_bool(), s["owner_uid"].as_u64()), (Some(true), Some(u64::from(USER.0))), "{s}");

    // Its owner sees it among the system tunnels; another user does not, and may neither take the name nor
    // disable it.
    let listed = lab.helpers[0].culvert_as(USER.0, USER.1, &["enabled", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["name"], "on", "{listed}");
    assert_eq!((listed[0]["state"].as_str(), listed[0]["kind"].as_str()), (Some("up"), Some("udp")), "{listed}");
    let others = lab.helpers[0].culvert_as(OTHER.0, OTHER.1, &["enabled"]);
    assert!(String::from_utf8_lossy(&others.stdout).contains("no system tunnel"), "{others:?}");
    let theirs = lab.helpers[0].culvert_as(OTHER.0, OTHER.1, &["disable", "on"]);
    assert!(!theirs.status.success() && stderr(&theirs).contains("on"), "{}", stderr(&theirs));
    assert!(kept.exists());

    // culvertd dies; the next one removes what it left and brings the system tunnel up again, as its owner.
    assert!(lab.helpers[0].stop_with(9), "culvertd outlived SIGKILL");
    let restarted = lab.spawn_helper(&a, "a", &["--group", "nogroup"]).unwrap();
    assert!(wait_until(Duration::from_secs(5), || ping(&a, "10.9.0.2", 1)), "the system tunnel did not come back");
    let s = restarted.status("on");
    assert_eq!((s["system"].as_bool(), s["owner_uid"].as_u64()), (Some(true), Some(u64::from(USER.0))), "{s}");
    assert!(restarted.log_text().contains("brought up 1 system tunnel"), "{}", restarted.log_text());

    // A plain `down` leaves it enabled; `disable` by root brings it down and forgets it.
    restarted.culvert_ok(&["down", "on"]);
    assert!(kept.exists());
    assert!(restarted.culvert_ok(&["enabled"]).contains(&format!("on: udp down, enabled by uid {}", USER.0)));
    // While it is down its name stays its owner's; brought up again by hand, it is still a system tunnel.
    let taken = restarted.culvert_as(OTHER.0, OTHER.1, &["up", mine.to_str().unwrap()]);
    assert!(!taken.status.success() && stderr(&taken).contains(&USER.0.to_string()), "{}", stderr(&taken));
    let again = restarted.culvert_as(USER.0, USER.1, &["up", mine.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(restarted.status("on")["system"], true);
    restarted.culvert_ok(&["disable", "on"]);
    assert!(!kept.exists(), "disable left the file");
    let missing = restarted.culvert(&["disable", "on"]);
    assert!(!missing.status.success(), "disabling twice must say there is no such tunnel");
    drop(restarted);
    let again = lab.spawn_helper(&a, "a", &["--group", "nogroup"]).unwrap();
    assert!(!again.log_text().contains("system tunnel"), "{}", again.log_text());
    assert!(!ping(&a, "10.9.0.2", 1), "a disabled tunnel came back");
}

/// An `enable` whose tunnel cannot come up keeps nothing.
#[test]
fn an_enable_that_cannot_come_up_keeps_nothing() {
    let mut lab = Lab::new();
    let (a, _b) = lab.two_hosts();
    // No interface holds the local address: the link cannot be made.
    let bad =
        lab.profile("bad", "kind = \"vxlan\"\nvni = 9\nlocal = \"192.0.2.77\"\n[[peer]]\nvtep = \"172.31.0.2\"\n");
    lab.start_helper(&a, "a", &[]);
    let out = lab.helpers[0].culvert(&["enable", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("192.0.2.77"), "{}", stderr(&out));
    let dir = lab.dir.join("a-config/tunnels");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "a failed enable kept a file");
}
