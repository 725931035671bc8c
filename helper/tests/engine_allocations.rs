//! The packet path allocates nothing in steady state: two real engines (udp, then WireGuard), each with a real
//! TUN device and UDP socket in a network namespace of its own, carry a TCP stream between the namespaces, and a
//! counting allocator counts every allocation made on their threads. After a warm-up (buffers, the handshake,
//! tables grown to their size), a further stretch of traffic must make none.
//!
//! Needs root (namespaces, TUN devices); without it the test says so and passes.

// GlobalAlloc is an unsafe trait: the counting allocator forwards every call to the system's unchanged.
#![allow(unsafe_code)]
// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use culvert_core::keys::SecretKey;
use culvert_core::profile::{Endpoint, Table, UdpPeer, UdpTunnel, WireguardPeer, WireguardTunnel};
use culvert_helper::dataplane::counters::TunnelCounters;
use culvert_helper::dataplane::engine;
use culvert_helper::dataplane::live::Live;
use culvert_helper::dataplane::protocol::Protocol;
use culvert_helper::dataplane::sampler::Sampler;
use culvert_helper::dataplane::tun_io::{self, DeviceReader, DeviceWriter};
use culvert_helper::dataplane::udp_core::UdpCore;
use culvert_helper::dataplane::udp_io::{self, SocketReader, SocketWriter};
use culvert_helper::dataplane::wait::Stop;
use culvert_helper::dataplane::wg_core::WgCore;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the engines' threads: only their allocations count.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method calls the system allocator with the caller's own arguments; counting touches only an
// atomic and a thread-local flag, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds GlobalAlloc::alloc's contract, which System's shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for alloc.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: ptr came from this allocator, which is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from this allocator, which is System's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Two namespaces joined by veth (172.31.77.1 and .2), removed when dropped.
struct Namespaces([String; 2]);

impl Namespaces {
    fn new() -> Self {
        let names = [format!("cvt-alloc-a-{}", std::process::id()), format!("cvt-alloc-b-{}", std::process::id())];
        for n in &names {
            ip(&["netns", "add", n]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link",
            "add",
            "cvallocva",
            "netns",
            &names[0],
            "type",
            "veth",
            "peer",
            "name",
            "cvallocvb",
            "netns",
            &names[1],
        ]);
        for (n, dev, addr) in [(&names[0], "cvallocva", "172.31.77.1/24"), (&names[1], "cvallocvb", "172.31.77.2/24")] {
            ip(&["-n", n, "addr", "add", addr, "dev", dev]);
            ip(&["-n", n, "link", "set", dev, "up"]);
        }
        Self(names)
    }

    /// Moves the calling thread into namespace `i`: what it creates (devices, sockets) is that namespace's.
    fn enter(&self, i: usize) {
        let file = std::fs::File::open(format!("/var/run/netns/{}", self.0[i])).unwrap();
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Runs `f` on a thread of its own whose allocations count.
fn counted(f: impl FnOnce() -> io::Result<()> + Send + 'static) -> JoinHandle<io::Result<()>> {
    std::thread::spawn(move || {
        COUNTED.with(|c| c.set(true));
        f()
    })
}

/// One side: a TUN device `cvalloc<side>` with 10.78.0.<side+1>/24 in namespace `side`, an engine of protocol
/// `proto` on it and on a UDP socket at `port`, on counted threads.
fn side<P: Protocol>(
    ns: &Namespaces,
    side: usize,
    proto: P,
    port: u16,
    stop: &Arc<Stop>,
) -> Vec<JoinHandle<io::Result<()>>> {
    let name = format!("cvalloc{side}");
    let (device, socket) = std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter(side);
            let device = tun_io::create(&name, 1400, false).unwrap();
            let socket = udp_io::bind(port, false, None).unwrap();
            (device, socket)
        })
        .join()
        .unwrap()
    });
    ip(&["-n", &ns.0[side], "addr", "add", &format!("10.78.0.{}/24", side + 1), "dev", &name]);
    ip(&["-n", &ns.0[side], "link", "set", &name, "up"]);
    let live = Arc::new(Live::new(proto));
    let counters = Arc::new(TunnelCounters::default());
    let sampler = Arc::new(Sampler::new(false, || 0));
    let mut threads = Vec::new();
    let (l, c, s) = (live.clone(), counters.clone(), sampler.clone());
    let (reader, writer) =
        (DeviceReader::new(device.clone(), stop.clone()), SocketWriter::new(socket.clone(), stop.clone()));
    threads.push(counted(move || engine::outbound(l, c, s, reader, writer, 1400)));
    let (l, c, s) = (live.clone(), counters.clone(), sampler);
    let (reader, replies) =
        (SocketReader::new(socket.clone(), stop.clone()), SocketWriter::new(socket.clone(), stop.clone()));
    let writer = DeviceWriter::new(device, engine::TUN_BATCH);
    threads.push(counted(move || engine::inbound(l, c, s, reader, writer, replies, 1400)));
    if P::TIMERS {
        let (stop, writer) = (stop.clone(), SocketWriter::new(socket, stop.clone()));
        threads.push(counted(move || engine::timers(live, counters, writer, 1400, &stop)));
    }
    threads
}

/// Streams TCP from namespace 0 to namespace 1 through the tunnel until `done`; returns the bytes received.
fn stream(ns: &Arc<Namespaces>, done: &Arc<AtomicBool>) -> (JoinHandle<u64>, JoinHandle<()>) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = {
        let ns = ns.clone();
        std::thread::spawn(move || {
            ns.enter(1);
            let listener = TcpListener::bind("10.78.0.2:5001").unwrap();
            ready_tx.send(()).unwrap();
            let (mut conn, _) = listener.accept().unwrap();
            // Bounded, so that a tunnel that stops carrying the client's close cannot hang the test.
            conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0u64;
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            total
        })
    };
    ready_rx.recv().unwrap();
    let client = {
        let (ns, done) = (ns.clone(), done.clone());
        std::thread::spawn(move || {
            ns.enter(0);
            let to: SocketAddr = "10.78.0.2:5001".parse().unwrap();
            let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(10)).unwrap();
            let chunk = vec![0x5au8; 1 << 16];
            while !done.load(Ordering::Relaxed) {
                if conn.write_all(&chunk).is_err() {
                    break;
                }
            }
        })
    };
    (server, client)
}

/// Brings up a tunnel of the engines `a` and `b` make, streams through it, and returns (allocations on the
/// engines' threads after the warm-up, bytes that crossed after it).
fn measure(
    a: impl FnOnce(&Namespaces, &Arc<Stop>) -> Vec<JoinHandle<io::Result<()>>>,
    b: impl FnOnce(&Namespaces, &Arc<Stop>) -> Vec<JoinHandle<io::Result<()>>>,
) -> (u64, u64) {
    let ns = Arc::new(Namespaces::new());
    let stop = Arc::new(Stop::new().unwrap());
    let mut threads = a(&ns, &stop);
    threads.extend(b(&ns, &stop));
    let done = Arc::new(AtomicBool::new(false));
    let (server, client) = stream(&ns, &done);
    // Warm-up: buffers filled once, the handshake made, every table at its size.
    std::thread::sleep(Duration::from_millis(1500));
    let sent_before = counters_rx(&ns);
    let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
    let crossed = counters_rx(&ns) - sent_before;
    eprintln!("{allocations} allocations while {crossed} bytes crossed in {:?}", started.elapsed());
    done.store(true, Ordering::Relaxed);
    client.join().unwrap();
    // The client's close crosses the tunnel before the engines stop, and the server sees its end.
    server.join().unwrap();
    stop.stop();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    (allocations, crossed)
}

/// What namespace 1's TUN device took in so far (its RX bytes, as the kernel counts them).
fn counters_rx(ns: &Namespaces) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0[1], "cat", "/sys/class/net/cvalloc1/statistics/rx_bytes"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

fn udp_side(me: u8, peer: u8) -> UdpCore {
    UdpCore::new(&UdpTunnel {
        interface: None,
        address: vec![format!("10.78.0.{me}/24").parse().unwrap()],
        listen_port: 8285,
        mtu: Some(1400),
        peers: vec![UdpPeer {
            endpoint: format!("172.31.77.{peer}:8285").parse().unwrap(),
            allowed_ips: vec![format!("10.78.0.{peer}/32").parse().unwrap()],
        }],
    })
}

fn wg_side(key: &SecretKey, peer_key: &SecretKey, peer: u8) -> WgCore {
    let endpoint: SocketAddr = format!("172.31.77.{peer}:51820").parse().unwrap();
    let config = WireguardTunnel {
        interface: None,
        private_key: key.clone(),
        address: vec![],
        listen_port: Some(51820),
        mtu: Some(1400),
        dns: vec![],
        dns_search: vec![],
        table: Table::Auto,
        fwmark: None,
        kill_switch: false,
        allow_lan: false,
        peers: vec![WireguardPeer {
            public_key: peer_key.public_key(),
            preshared_key: None,
            allowed_ips: vec![format!("10.78.0.{peer}/32").parse().unwrap()],
            endpoint: Some(Endpoint::Addr(endpoint)),
            persistent_keepalive: None,
        }],
    };
    WgCore::new(&config, &vec![Some(endpoint)])
}

#[test]
fn a_steady_stream_makes_no_allocation_on_the_engines_threads() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: network namespaces and TUN devices need root");
        return;
    }
    let (allocations, crossed) =
        measure(|ns, stop| side(ns, 0, udp_side(1, 2), 8285, stop), |ns, stop| side(ns, 1, udp_side(2, 1), 8285, stop));
    assert!(crossed > 20 << 20, "only {crossed} bytes crossed the udp tunnel");
    assert_eq!(allocations, 0, "the udp engines allocated while {crossed} bytes crossed");

    let (ka, kb) = (SecretKey::generate_private(), SecretKey::generate_private());
    let (allocations, crossed) = measure(
        |ns, stop| side(ns, 0, wg_side(&ka, &kb, 2), 51820, stop),
        |ns, stop| side(ns, 1, wg_side(&kb, &ka, 1), 51820, stop),
    );
    assert!(crossed > 20 << 20, "only {crossed} bytes crossed the WireGuard tunnel");
    assert_eq!(allocations, 0, "the WireGuard engines allocated while {crossed} bytes crossed");
}
