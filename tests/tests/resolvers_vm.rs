//! Culvert's .deb on Debian VMs with the network stacks people run it beside, which this machine cannot have
//! (installing them here would change every other test's resolver): a desktop's NetworkManager with
//! systemd-resolved, and a server's resolvconf. In each, a WireGuard tunnel to a wireguard-go peer on the host
//! sets its DNS (a name server at the far end of the tunnel, a search domain), the guest resolves a name only
//! that server knows, and after `down` and after culvertd is killed the guest's resolver is as it was.
//! NetworkManager must leave Culvert's links alone, through its reloads and restarts, when it starts after them,
//! and from boot on.
//!
//! Needs the package built first (`packaging/build`) and its path in CULVERT_DEB; scripts/test does both. Each
//! image is built once (debootstrap, 3-5 minutes) and kept under target/vm/.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use culvert_tests::vm::{self, HOST_ADDR, Vm};
use culvert_tests::{Lab, WireguardGo, in_ns, wait_until, wg_keypair};

const TUNNEL: &str = "wgvm";
const PEER_PORT: u16 = 51820;
/// The peer's end of the tunnel, where the tunnel's name server listens.
const NAME_SERVER: &str = "10.99.0.1";
/// The name only that server knows, and its address.
const NAME: &str = "portal.corp.test";
const NAME_ADDR: &str = "10.99.0.77";

/// NetworkManager leaves the VM's own link to systemd-networkd, as a desktop's wired link would be NetworkManager's
/// own: the test's control of the guest does not depend on it either way.
const NM_CONF: (&str, &str) =
    ("/etc/NetworkManager/conf.d/90-culvert-test.conf", "[keyfile]\nunmanaged-devices=interface-name:eth0\n");

/// The guest's side of it all: the VM, the host's peer and name server, and the package.
struct Setup {
    vm: Vm,
    /// Held for what it removes when dropped (after the VM): the namespace, the peer, the name server.
    _lab: Lab,
    wgo: WireguardGo,
    dns_log: PathBuf,
}

fn deb() -> PathBuf {
    let deb = PathBuf::from(std::env::var("CULVERT_DEB").expect("CULVERT_DEB: the .deb to test (packaging/build)"));
    assert!(deb.exists(), "{} does not exist: build it with packaging/build", deb.display());
    deb
}

/// Boots `image` with the package, a tunnel profile whose DNS is the far end's server, and that server running.
fn setup(image: &vm::Image, deb: &Path) -> Setup {
    let mut lab = Lab::new();
    let ns = lab.netns();
    let wgo = WireguardGo::start(&mut lab, &ns, PEER_PORT, &format!("{NAME_SERVER}/24"));
    let (private, public) = wg_keypair();
    wgo.wg(&["set", &wgo.iface, "peer", &public, "allowed-ips", "10.99.0.2/32"]);
    let dns_log = lab.dir.join("dns.log");
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("probes/dns_server.py");
    lab.spawn(in_ns(&ns, "python3").arg(server).args([NAME_SERVER, NAME, NAME_ADDR]).arg(&dns_log));
    let listening = || std::fs::read_to_string(&dns_log).unwrap_or_default().contains("listening");
    assert!(wait_until(Duration::from_secs(5), listening), "the name server did not start");

    let share = lab.dir.join("share");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::copy(deb, share.join("culvert.deb")).unwrap();
    // A split tunnel: only the far network goes through it, and names under corp.test are asked of its server.
    let conf = format!(
        "[Interface]\nPrivateKey = {private}\nAddress = 10.99.0.2/24\nDNS = {NAME_SERVER}, corp.test\n\n[Peer]\n\
         PublicKey = {}\nEndpoint = {HOST_ADDR}:{PEER_PORT}\nAllowedIPs = 10.99.0.0/24\n",
        wgo.public_key
    );
    std::fs::write(share.join(format!("{TUNNEL}.conf")), conf).unwrap();
    let mut vm = Vm::boot(image, &ns, &share).unwrap();
    vm.sh("DEBIAN_FRONTEND=noninteractive apt-get install -y /mnt/host/culvert.deb 2>&1");
    assert!(
        wait_until(Duration::from_secs(30), || vm.sh("systemctl is-active culvertd || true").trim() == "active"),
        "culvertd is not active after install: {}",
        vm.sh("systemctl status culvertd --no-pager -l 2>&1 || true")
    );
    Setup { vm, _lab: lab, wgo, dns_log }
}

impl Setup {
    fn questions(&self) -> usize {
        std::fs::read_to_string(&self.dns_log).unwrap_or_default().matches(NAME).count()
    }

    fn pings_peer(&mut self) -> bool {
        let ping = format!("ping -n -c 1 -W 2 {NAME_SERVER}");
        self.vm.try_sh(&ping, Duration::from_secs(30)).is_ok_and(|(rc, _)| rc == 0)
    }

    /// Brings the tunnel up, and says how long `culvert up` took.
    fn up(&mut self) {
        let started = Instant::now();
        self.vm.sh(&format!("culvert up /mnt/host/{TUNNEL}.conf"));
        eprintln!("vm: culvert up took {:.0?}", started.elapsed());
        assert!(wait_until(Duration::from_secs(20), || self.pings_peer()), "no traffic through the tunnel");
    }

    /// Resolves the far end's name as an application does (glibc, through /etc/resolv.conf), and checks that
    /// the tunnel's name server was asked.
    fn resolves_through_the_tunnel(&mut self, how: &str) {
        let before = self.questions();
        let answer = self.vm.sh(&format!("getent ahostsv4 {NAME} | head -n 1"));
        assert!(answer.starts_with(NAME_ADDR), "{how}: {NAME} resolved to {answer:?}");
        assert!(self.questions() > before, "{how}: the tunnel's name server was not asked");
    }

    /// Kills culvertd as a crash would, and waits until systemd has started it again.
    fn crash_culvertd(&mut self) {
        let before = self.vm.sh("systemctl show -p MainPID --value culvertd");
        self.vm.sh("systemctl kill -s KILL culvertd");
        let restarted = wait_until(Duration::from_secs(60), || {
            let now = self.vm.sh("systemctl show -p MainPID --value culvertd");
            now.trim() != before.trim()
                && now.trim() != "0"
                && self.vm.sh("systemctl is-active culvertd || true").trim() == "active"
        });
        assert!(restarted, "systemd did not restart culvertd: {}", self.vm.sh("journalctl -u culvertd -n 20 2>&1"));
    }
}

fn nm_state(vm: &mut Vm, device: &str) -> String {
    vm.sh(&format!("nmcli -g GENERAL.STATE device show {device} 2>&1 || true")).trim().to_owned()
}

/// What systemd-resolved holds, every link's servers and domains, without the link numbers (a tunnel brought
/// up again gets a new one).
fn resolved_config(vm: &mut Vm) -> String {
    vm.sh("resolvectl dns; resolvectl domain")
}

#[test]
fn the_vm_with_network_manager_and_resolved_leaves_tunnels_alone_and_resolves_through_them() {
    let deb = deb();
    let mut packages = vm::depends_of(&deb);
    packages.extend(["network-manager", "systemd-resolved"].map(String::from));
    let image = vm::image_with(&packages, &[NM_CONF]).unwrap();
    let mut s = setup(&image, &deb);
    let vm = &mut s.vm;
    for unit in ["NetworkManager", "systemd-resolved"] {
        assert_eq!(vm.sh(&format!("systemctl is-active {unit} || true")).trim(), "active", "{unit} does not run");
    }
    assert!(
        vm.sh("readlink /etc/resolv.conf").contains("systemd/resolve/"),
        "applications do not ask systemd-resolved"
    );

    // NetworkManager takes in a TUN device someone else configured: without Culvert's mark it would manage
    // Culvert's too.
    vm.sh("ip tuntap add mode tun name ctltun && ip addr add 10.98.0.1/24 dev ctltun && ip link set ctltun up");
    let mut control = String::new();
    wait_until(Duration::from_secs(10), || {
        control = nm_state(vm, "ctltun");
        control.starts_with("100") || control.starts_with("30")
    });
    vm.sh("ip link del ctltun");
    assert!(!control.contains("unmanaged"), "NetworkManager leaves a foreign TUN device alone by itself: {control}");
    eprintln!("vm: NetworkManager's state of a TUN device configured outside it: {control}");

    let baseline = resolved_config(&mut s.vm);
    s.up();
    let vm = &mut s.vm;
    assert_eq!(nm_state(vm, TUNNEL), "10 (unmanaged)", "NetworkManager manages the tunnel");
    let dns = vm.sh(&format!("resolvectl dns {TUNNEL}; resolvectl domain {TUNNEL}"));
    assert!(dns.contains(NAME_SERVER) && dns.contains("corp.test"), "systemd-resolved has not the tunnel's DNS: {dns}");
    s.resolves_through_the_tunnel("with the tunnel up");

    // NetworkManager reloaded and restarted: it leaves the tunnel's link and its address as they are.
    let vm = &mut s.vm;
    vm.sh("nmcli general reload && systemctl restart NetworkManager");
    assert!(
        wait_until(Duration::from_secs(30), || vm.sh("nmcli -t -f RUNNING general 2>&1 || true").trim() == "running"),
        "NetworkManager did not come back"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(nm_state(vm, TUNNEL), "10 (unmanaged)", "NetworkManager took the tunnel over after a restart");
    let address = vm.sh(&format!("ip -o -4 addr show dev {TUNNEL}"));
    assert!(address.contains("10.99.0.2/24"), "the tunnel lost its address to NetworkManager: {address:?}");
    assert!(s.pings_peer(), "no traffic after NetworkManager's restart");

    // A NetworkManager that starts after the tunnel came up (by hand, or installed later) finds its link marked
    // too: culvertd marks its links again whenever NetworkManager takes its name on the bus.
    s.vm.sh("systemctl stop NetworkManager");
    s.vm.sh(&format!("culvert down {TUNNEL}"));
    s.up();
    // The control: a TUN device configured while NetworkManager was away is taken in when it starts.
    s.vm.sh("ip tuntap add mode tun name ctltun && ip addr add 10.98.0.1/24 dev ctltun && ip link set ctltun up");
    s.vm.sh("systemctl start NetworkManager");
    let mut control = String::new();
    wait_until(Duration::from_secs(30), || {
        control = nm_state(&mut s.vm, "ctltun");
        control.starts_with("100") || control.starts_with("30")
    });
    s.vm.sh("ip link del ctltun");
    assert!(!control.contains("unmanaged"), "NetworkManager started leaves a foreign TUN device alone: {control}");
    let mut state = String::new();
    let marked = wait_until(Duration::from_secs(30), || {
        state = nm_state(&mut s.vm, TUNNEL);
        state == "10 (unmanaged)"
    });
    assert!(marked, "NetworkManager, started after the tunnel, manages it: {state}");
    let address = s.vm.sh(&format!("ip -o -4 addr show dev {TUNNEL}"));
    assert!(address.contains("10.99.0.2/24"), "the tunnel lost its address to NetworkManager: {address:?}");
    assert!(s.pings_peer(), "no traffic after NetworkManager started");

    // Down, and after a crash: systemd-resolved holds what it held before the tunnel.
    s.vm.sh(&format!("culvert down {TUNNEL}"));
    assert_eq!(resolved_config(&mut s.vm), baseline, "the tunnel's DNS outlived down");
    s.up();
    s.crash_culvertd();
    let settled = wait_until(Duration::from_secs(10), || resolved_config(&mut s.vm) == baseline);
    assert!(settled, "after the crash systemd-resolved holds {}", resolved_config(&mut s.vm));
    assert!(s.vm.sh(&format!("ip -o link show {TUNNEL} 2>/dev/null || true")).trim().is_empty());

    // From boot: culvertd comes up after NetworkManager and systemd-resolved, marks the enabled tunnel's link and
    // gives systemd-resolved its DNS.
    s.vm.sh(&format!("culvert enable /mnt/host/{TUNNEL}.conf"));
    s.vm.reboot().unwrap();
    assert!(wait_until(Duration::from_secs(60), || s.pings_peer()), "the enabled tunnel is not up after the reboot");
    // The agent may answer before NetworkManager has taken in every link of the boot.
    let mut state = String::new();
    let marked = wait_until(Duration::from_secs(30), || {
        state = nm_state(&mut s.vm, TUNNEL);
        state == "10 (unmanaged)"
    });
    assert!(
        marked,
        "NetworkManager's state of the tunnel after a reboot: {state}\n{}\n{}",
        s.vm.sh("nmcli device 2>&1; systemctl status NetworkManager --no-pager 2>&1 | tail -n 20"),
        s.vm.sh("journalctl -b -u culvertd -o short-monotonic --no-pager 2>&1 | tail -n 20")
    );
    let said = s.vm.sh("journalctl -b -u culvertd -o short-monotonic --no-pager | grep -i networkmanager || true");
    eprintln!("vm: culvertd on NetworkManager after the reboot: {}", said.trim());
    s.resolves_through_the_tunnel("after a reboot");
    s.vm.sh(&format!("culvert disable {TUNNEL}"));
    assert_eq!(resolved_config(&mut s.vm), baseline, "the tunnel's DNS outlived disable");
    assert!(s.wgo.peers().iter().any(|p| p.3 > 0), "wireguard-go received nothing");
}

#[test]
fn the_vm_with_resolvconf_puts_the_tunnels_servers_first_and_back_after_down_and_a_crash() {
    let deb = deb();
    let mut packages = vm::depends_of(&deb);
    packages.push("resolvconf".into());
    let image = vm::image(&packages).unwrap();
    let mut s = setup(&image, &deb);
    let vm = &mut s.vm;
    assert!(vm.sh("readlink /etc/resolv.conf").contains("/run/resolvconf/"), "resolvconf does not own resolv.conf");
    // The LAN's DNS, as ifupdown or a DHCP client gives it to resolvconf.
    vm.sh("printf 'nameserver 10.88.0.1\\nsearch lan.test\\n' | resolvconf -a eth0.inet");
    let baseline = vm.sh("cat /etc/resolv.conf");
    assert!(baseline.contains("nameserver 10.88.0.1"), "{baseline}");

    s.up();
    let during = s.vm.sh("cat /etc/resolv.conf");
    let servers: Vec<&str> = during.lines().filter_map(|l| l.strip_prefix("nameserver ")).collect();
    assert_eq!(servers.first(), Some(&NAME_SERVER), "the tunnel's server is not asked first: {during}");
    assert!(during.contains("corp.test"), "no search domain of the tunnel's: {during}");
    s.resolves_through_the_tunnel("with the tunnel up");

    s.vm.sh(&format!("culvert down {TUNNEL}"));
    assert_eq!(s.vm.sh("cat /etc/resolv.conf"), baseline, "the tunnel's DNS outlived down");

    // A crash leaves resolvconf's record behind; the restarted culvertd takes it out.
    s.up();
    assert_ne!(s.vm.sh("cat /etc/resolv.conf"), baseline);
    s.crash_culvertd();
    let settled = wait_until(Duration::from_secs(10), || s.vm.sh("cat /etc/resolv.conf") == baseline);
    assert!(settled, "after the crash resolv.conf reads:\n{}", s.vm.sh("cat /etc/resolv.conf"));
    assert_eq!(s.vm.sh("ls /run/resolvconf/interface").trim(), "eth0.inet", "a record of the tunnel's is left");
    assert!(s.wgo.peers().iter().any(|p| p.3 > 0), "wireguard-go received nothing");
}
