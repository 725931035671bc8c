//! What idle tunnels cost: culvertd takes a userspace tunnel's large buffers when traffic comes and gives them
//! back when it stops, so that many tunnels that carry nothing hold little, and tunnels that go down give back
//! what they held: bringing them up and down again does not make culvertd grow.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use culvert_tests::{Lab, ping, udp_profile};

/// Tunnels between the two helpers.
const TUNNELS: u32 = 16;

/// Brings up the tunnels between helper 0 and helper 1.
fn up_all(lab: &Lab) {
    for i in 1..=TUNNELS {
        let port = 20_000 + i as u16;
        let side = |me: u8, peer: u8| {
            udp_profile(
                &format!("10.60.{i}.{me}/24"),
                port,
                &format!("cvmem{i}"),
                &format!("172.31.0.{peer}:{port}"),
                &format!("10.60.{i}.0/24"),
                1400,
            )
        };
        let (pa, pb) = (lab.profile(&format!("mem{i}"), &side(1, 2)), lab.profile(&format!("mempeer{i}"), &side(2, 1)));
        lab.helpers[0].culvert_ok(&["up", pa.to_str().unwrap()]);
        lab.helpers[1].culvert_ok(&["up", pb.to_str().unwrap()]);
    }
}

/// Traffic both ways through every `step`th tunnel.
fn traffic(a: &str, step: usize) {
    for i in (1..=TUNNELS).step_by(step) {
        assert!(ping(a, &format!("10.60.{i}.2"), 2), "no traffic through tunnel {i}");
    }
}

fn down_all(lab: &Lab) {
    for h in &lab.helpers {
        h.culvert_ok(&["down", "--all"]);
    }
}

#[test]
fn idle_tunnels_hold_under_a_mebibyte_each_and_going_down_gives_it_back() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    lab.start_helper(&a, "a", &[]);
    lab.start_helper(&b, "b", &[]);
    let rss = |lab: &Lab| lab.helpers[0].rss_kib();
    let before = rss(&lab);
    up_all(&lab);
    let never_used = rss(&lab);
    // Half of them carry traffic both ways, then fall silent.
    traffic(&a, 2);
    let busy = rss(&lab);
    std::thread::sleep(Duration::from_secs(11));
    let idle = rss(&lab);
    down_all(&lab);
    std::thread::sleep(Duration::from_secs(3));
    let first_down = rss(&lab);
    // Up, traffic through all of them, down, twice: what the first such round leaves is reused by the next,
    // which keeps nothing more.
    let round = |lab: &Lab| {
        up_all(lab);
        traffic(&a, 1);
        down_all(lab);
        std::thread::sleep(Duration::from_secs(3));
        rss(lab)
    };
    let (first_round, second_down) = (round(&lab), round(&lab));
    let per = |total: u64| total.saturating_sub(before) / u64::from(TUNNELS);
    eprintln!(
        "culvertd RSS: {before} KiB with no tunnel; {TUNNELS} tunnels never used: {never_used} KiB ({} KiB each); \
         after traffic through half: {busy} KiB; 11 s later: {idle} KiB ({} KiB each); all down: {first_down} KiB; \
         up, busy and down again: {first_round} KiB, and once more: {second_down} KiB",
        per(never_used),
        per(idle)
    );
    assert!(per(never_used) < 1024, "{} KiB per tunnel that never carried traffic", per(never_used));
    assert!(per(idle) < 1024, "{} KiB per tunnel idle for 10 s", per(idle));
    assert!(busy > idle + 1024, "nothing was given back when traffic stopped ({busy} KiB, then {idle} KiB)");
    assert!(first_down < idle, "going down gave nothing back ({idle} KiB, then {first_down} KiB)");
    assert!(
        second_down < first_round + 512,
        "a second round kept {} KiB more",
        second_down.saturating_sub(first_round)
    );
}
