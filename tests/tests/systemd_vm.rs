//! Culvert's .deb on a Debian VM booted with systemd: what no namespace can show. The hardened unit runs culvertd
//! under a real PID 1 (its capabilities, its sandbox, the directories systemd makes); an overlay leases its subnet
//! from an etcd on the host and writes flannel's subnet file; a tunnel enabled with a kill switch carries traffic
//! to a wireguard-go peer on the host, comes back after culvertd is killed and after a reboot; with lockdown on, a
//! capture on the VM's link from before the reboot sees nothing leave the guest while a probe unit sends from the
//! moment the network is configured; and a purge with lockdown still on leaves the guest online and nothing of
//! Culvert behind.
//!
//! Needs the package built first (`packaging/build`) and its path in CULVERT_DEB; scripts/test does both. The
//! image is built once (debootstrap, 3-5 minutes) and kept under target/vm/.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use culvert_tests::capture::Capture;
use culvert_tests::overlay;
use culvert_tests::vm::{self, GUEST_ADDR, HOST_ADDR, Vm};
use culvert_tests::{Lab, WireguardGo, wait_until, wg_keypair};

/// The tunnel's name, its interface and its file's name in the guest.
const TUNNEL: &str = "wgvm";
const PEER_PORT: u16 = 51820;
/// What the guest may send on its link when it is blocked: ARP, and IPv6 neighbour discovery (ICMPv6 133 to 136).
const BLOCKED_ALLOWED: &str = "arp or (icmp6 and ip6[40] >= 133 and ip6[40] <= 136)";

/// Sends a ping and a UDP datagram to the host every 100 ms from the moment it starts: ordered after the network
/// and before culvertd, so that a block that comes only with culvertd lets its first packets out.
const PROBE_UNIT: &str = "[Unit]
Description=Culvert test: probes that try to leave the machine
After=systemd-networkd.service
Before=culvertd.service
[Service]
ExecStart=/bin/bash -c 'while true; do ping -n -c 1 -W 0.1 10.88.0.1 >/dev/null 2>&1; \
  echo probe 2>/dev/null >/dev/udp/10.88.0.1/9; sleep 0.1; done'
[Install]
WantedBy=multi-user.target
";

fn guest_pings(vm: &mut Vm, dst: &str) -> bool {
    vm.try_sh(&format!("ping -n -c 1 -W 2 {dst}"), Duration::from_secs(30)).is_ok_and(|(rc, _)| rc == 0)
}

fn tunnel_status(vm: &mut Vm) -> serde_json::Value {
    let text = vm.sh("culvert status --json");
    let all: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("status --json: {e}: {text}"));
    let tunnels = all.get("tunnels").cloned().unwrap_or(all);
    tunnels.as_array().and_then(|t| t.iter().find(|t| t["name"] == TUNNEL).cloned()).unwrap_or_default()
}

#[test]
fn the_vm_runs_the_unit_keeps_an_enabled_tunnel_across_crash_and_reboot_and_blocks_from_boot() {
    let deb = PathBuf::from(std::env::var("CULVERT_DEB").expect("CULVERT_DEB: the .deb to test (packaging/build)"));
    assert!(deb.exists(), "{} does not exist: build it with packaging/build", deb.display());
    let image = vm::image(&vm::depends_of(&deb)).unwrap();
    let mut lab = Lab::new();
    let ns = lab.netns();

    // The peer: wireguard-go on the host's end of the VM's link.
    let wgo = WireguardGo::start(&mut lab, &ns, PEER_PORT, "10.99.0.1/24");
    let (private, public) = wg_keypair();
    wgo.wg(&["set", &wgo.iface, "peer", &public, "allowed-ips", "10.99.0.2/32"]);
    let share = lab.dir.join("share");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::copy(&deb, share.join("culvert.deb")).unwrap();
    let conf = format!(
        "[Interface]\nPrivateKey = {private}\nAddress = 10.99.0.2/24\n\n[Peer]\nPublicKey = {}\n\
         Endpoint = {HOST_ADDR}:{PEER_PORT}\nAllowedIPs = 0.0.0.0/0\n",
        wgo.public_key
    );
    std::fs::write(share.join(format!("{TUNNEL}.conf")), conf).unwrap();
    std::fs::write(share.join("culvert-test-probe.service"), PROBE_UNIT).unwrap();
    let overlay_profile = format!(
        "kind = \"overlay\"\netcd = [\"http://{HOST_ADDR}:2379\"]\npublic_ip = \"{GUEST_ADDR}\"\nip_masq = true\n"
    );
    std::fs::write(share.join("ov.toml"), overlay_profile).unwrap();

    let mut vm = Vm::boot(&image, &ns, &share).unwrap();
    assert!(guest_pings(&mut vm, HOST_ADDR), "the guest cannot reach the host before anything is installed");

    // Installed as an administrator installs it: apt, with systemd running, starts the unit.
    let out = vm.sh("DEBIAN_FRONTEND=noninteractive apt-get install -y /mnt/host/culvert.deb 2>&1");
    eprintln!("apt-get install: {}", out.lines().rev().take(3).collect::<Vec<_>>().join(" | "));
    assert!(
        wait_until(Duration::from_secs(30), || vm.sh("systemctl is-active culvertd || true").trim() == "active"),
        "culvertd is not active after install: {}",
        vm.sh("systemctl status culvertd --no-pager -l 2>&1 || true")
    );
    // Only CAP_NET_ADMIN (bit 12), in every set that matters, and no way to gain more.
    let status = vm.sh("cat /proc/$(systemctl show -p MainPID --value culvertd)/status");
    for field in ["CapEff:\t0000000000001000", "CapPrm:\t0000000000001000", "CapBnd:\t0000000000001000"] {
        assert!(status.contains(field), "culvertd's {field:?} is not so: {status}");
    }
    assert!(status.contains("NoNewPrivs:\t1"), "culvertd may gain privileges: {status}");
    assert_eq!(vm.sh("stat -c '%a %U %G' /run/culvert/culvertd.sock").trim(), "660 root culvert");
    let security = vm.sh("systemd-analyze security culvertd.service --no-pager 2>&1 | tail -n 1");
    eprintln!("systemd-analyze security culvertd: {}", security.trim());

    // An overlay from an etcd on the host: under the sandbox, culvertd leases a subnet, writes flannel's subnet
    // file into /run/flannel (a RuntimeDirectory of the unit), makes the kernel VXLAN link (its module loaded on
    // demand, although the unit may not load modules itself) and the ip_masq NAT through /usr/sbin/nft.
    let etcd = overlay::etcd_at(&lab, &ns, HOST_ADDR);
    etcd.ctl(&[
        "put",
        "/coreos.com/network/config",
        r#"{"Network":"10.5.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}"#,
    ]);
    vm.sh("culvert up /mnt/host/ov.toml");
    let env = vm.sh("cat /run/flannel/subnet.env");
    assert!(env.contains("FLANNEL_NETWORK=10.5.0.0/16") && env.contains("FLANNEL_SUBNET=10.5."), "{env}");
    let leases = etcd.ctl(&["get", "--prefix", "/coreos.com/network/subnets/"]);
    assert!(leases.contains(&format!("\"PublicIP\":\"{GUEST_ADDR}\"")), "no lease of the guest's in etcd: {leases}");
    assert!(!vm.sh("ip -d -o link show type vxlan").trim().is_empty(), "no VXLAN link in the guest");
    assert!(vm.sh("nft list ruleset").contains("masquerade"), "no ip_masq NAT in the guest");
    vm.sh("culvert down ov");
    // The subnet file stays, as flanneld leaves it: the next `up` asks etcd for the same subnet again.
    assert!(vm.sh("ip -d -o link show type vxlan").trim().is_empty(), "the VXLAN link outlived down");
    assert!(!vm.sh("nft list ruleset").contains("masquerade"), "the NAT outlived down");
    drop(etcd);

    // An always-on full tunnel with a kill switch: its file root's own in /etc/culvert (the sandbox lets culvertd
    // write there), its table from /usr/sbin/nft run inside the sandbox, its traffic to the peer.
    vm.sh(&format!("culvert enable /mnt/host/{TUNNEL}.conf --kill-switch"));
    assert!(wait_until(Duration::from_secs(20), || guest_pings(&mut vm, "10.99.0.1")), "no traffic");
    assert_eq!(vm.sh(&format!("stat -c '%a %U' /etc/culvert/tunnels/{TUNNEL}.conf")).trim(), "600 root");
    assert!(vm.sh("nft list table inet culvert").contains(TUNNEL), "the kill switch does not let the tunnel out");
    assert!(wgo.peers().iter().any(|p| p.0 == public && p.3 > 0), "wireguard-go received nothing");
    assert_eq!(tunnel_status(&mut vm)["system"], true);

    // The exporter's unit, off until started: a dynamic user in group culvert-monitor reads the tunnel's counters
    // on culvertd's monitor socket and serves them.
    assert_eq!(vm.sh("stat -c '%a %U %G' /run/culvert-monitor/culvertd.sock").trim(), "660 root culvert-monitor");
    assert_eq!(vm.sh("systemctl is-enabled culvert-exporter || true").trim(), "disabled");
    vm.sh("systemctl start culvert-exporter");
    let scrape = "bash -c 'exec 3<>/dev/tcp/127.0.0.1/19586 && printf \"GET /metrics HTTP/1.0\\r\\n\\r\\n\" >&3 && cat <&3' \
                  2>/dev/null || true";
    let mut page = String::new();
    let served = wait_until(Duration::from_secs(20), || {
        page = vm.sh(scrape);
        page.contains("culvert_helper_up 1")
    });
    assert!(
        served,
        "the exporter unit serves nothing: {page}\n{}",
        vm.sh("systemctl status culvert-exporter --no-pager -l 2>&1 || true")
    );
    assert!(page.contains(&format!("culvert_tunnel_up{{tunnel=\"{TUNNEL}\"")), "{page}");
    vm.sh("systemctl stop culvert-exporter");

    // culvert-wg, from the same package, beside culvertd: its API socket is in /run/wireguard, which tmpfiles.d
    // makes and no unit owns, so restarting culvertd (an upgrade does) leaves it and its device alone (culvert-wg
    // ends when its socket is removed, as wireguard-go does).
    assert_eq!(vm.sh("stat -c '%a %U' /run/wireguard").trim(), "755 root");
    vm.sh("culvert-wg cwgvm");
    vm.sh("systemctl restart culvertd");
    assert!(
        wait_until(Duration::from_secs(30), || vm.sh("systemctl is-active culvertd || true").trim() == "active"),
        "culvertd is not active after a restart"
    );
    std::thread::sleep(Duration::from_secs(1));
    let still = vm.sh("test -S /run/wireguard/cwgvm.sock && pgrep -x culvert-wg && ip -o link show cwgvm || true");
    assert!(still.contains("cwgvm"), "restarting culvertd ended culvert-wg's device: {still:?}");
    vm.sh("ip link del cwgvm");

    // A crash: systemd restarts culvertd (Restart=on-failure), which brings the system tunnel back.
    vm.sh("systemctl kill -s KILL culvertd");
    let back = Instant::now();
    assert!(
        wait_until(Duration::from_secs(60), || guest_pings(&mut vm, "10.99.0.1")),
        "the tunnel did not come back after culvertd was killed: {}",
        vm.sh("journalctl -u culvertd --no-pager -n 30 2>&1")
    );
    eprintln!("vm: traffic again {:.1?} after culvertd was killed", back.elapsed());

    // A reboot: the enabled tunnel comes up with the machine.
    vm.reboot().unwrap();
    let booted = Instant::now();
    assert!(
        wait_until(Duration::from_secs(60), || guest_pings(&mut vm, "10.99.0.1")),
        "the enabled tunnel is not up after a reboot: {}",
        vm.sh("journalctl -b -u culvertd --no-pager -n 30 2>&1")
    );
    eprintln!("vm: tunnel traffic {:.1?} after the agent answered", booted.elapsed());
    eprintln!("vm: {}", vm.sh("systemd-analyze time | head -n 1").trim());
    assert_eq!(tunnel_status(&mut vm)["system"], true, "the tunnel is not a system tunnel after the reboot");

    // Disabled, the tunnel and its kill switch go; the guest reaches the host directly again.
    vm.sh(&format!("culvert disable {TUNNEL}"));
    assert!(wait_until(Duration::from_secs(10), || guest_pings(&mut vm, HOST_ADDR)), "blocked after disable");

    // The probe leaks while nothing blocks it: the capture and the probe work.
    vm.sh("cp /mnt/host/culvert-test-probe.service /etc/systemd/system/ && systemctl daemon-reload");
    let capture = Capture::start(&lab.dir, &ns, "tapvm", "control");
    vm.sh("systemctl start culvert-test-probe && sleep 2 && systemctl stop culvert-test-probe");
    let leaked = capture.leaked(BLOCKED_ALLOWED);
    assert!(leaked.iter().any(|p| p.contains(&format!("{GUEST_ADDR} > {HOST_ADDR}"))), "the probe sent nothing");
    eprintln!("vm: control run, nothing blocking: {} probe packets left the guest", leaked.len());

    // Lockdown, then a reboot with the probe starting as soon as the network is configured.
    vm.sh("culvert lockdown on && systemctl enable culvert-test-probe 2>&1");
    assert!(!guest_pings(&mut vm, HOST_ADDR), "lockdown lets the guest out");
    let capture = Capture::start(&lab.dir, &ns, "tapvm", "lockdown-boot");
    vm.reboot().unwrap();
    // The agent may answer before multi-user.target has started the probe.
    let probing = wait_until(Duration::from_secs(60), || {
        vm.try_sh("systemctl is-active culvert-test-probe", Duration::from_secs(10))
            .is_ok_and(|(_, out)| out.trim() == "active")
    });
    assert!(probing, "the probe unit: {}", vm.sh("systemctl status culvert-test-probe --no-pager 2>&1 || true"));
    let early = vm.sh("systemctl show culvertd-early-block -p Result -p ExecMainStatus -p ActiveState");
    assert!(early.contains("Result=success") && early.contains("ExecMainStatus=0"), "the early block: {early}");
    // Ordered before the network: its start precedes systemd-networkd's.
    let started = |vm: &mut Vm, unit: &str| -> u64 {
        let v = vm.sh(&format!("systemctl show {unit} -p ExecMainStartTimestampMonotonic --value"));
        v.trim().parse().unwrap_or(u64::MAX)
    };
    let (block_at, network_at) = (started(&mut vm, "culvertd-early-block"), started(&mut vm, "systemd-networkd"));
    assert!(block_at < network_at, "the early block started at {block_at} us, networkd at {network_at} us");
    let exited = vm.sh("systemctl show culvertd-early-block -p ExecMainExitTimestampMonotonic --value");
    let took = exited.trim().parse::<u64>().unwrap_or(0).saturating_sub(block_at);
    eprintln!("vm: the early block took {} ms, {} ms after boot", took / 1000, block_at / 1000);
    std::thread::sleep(Duration::from_secs(2));
    vm.sh("systemctl stop culvert-test-probe");
    let leaked = capture.leaked(BLOCKED_ALLOWED);
    assert!(leaked.is_empty(), "{} packets left the guest in lockdown from boot: {leaked:#?}", leaked.len());
    assert!(vm.sh("culvert lockdown").starts_with("lockdown is on"), "lockdown did not survive the reboot");

    // A purge with lockdown on leaves the machine online and nothing of Culvert behind.
    vm.sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y culvert 2>&1");
    assert!(guest_pings(&mut vm, HOST_ADDR), "the guest is offline after the package was purged");
    let left = vm.sh(&format!(
        "nft list table inet culvert >/dev/null 2>&1 && echo table; getent group culvert; \
         ls -d /etc/culvert /var/lib/culvert /run/culvert /usr/bin/culvertd 2>/dev/null; \
         systemctl list-unit-files 'culvertd*' --no-legend; ip -o link show {TUNNEL} 2>/dev/null; true"
    ));
    assert!(left.trim().is_empty(), "the purge left: {left}");
}
