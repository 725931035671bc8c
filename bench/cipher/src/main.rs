//! Seals and opens WireGuard data packets with one boringtun session on one core, as fast as it can, and prints
//! the rates as one line of JSON: `{"packet_bytes":1420,"seal_gbps":..,"open_gbps":..}`. A tunnel moves no more
//! than its cores can seal and open, so bench/run sets these beside what Culvert's WireGuard carries.
//!
//! Usage: culvert-bench-cipher [SECONDS] [PACKET_BYTES]  (default 2 s, 1420 bytes: wg-quick's MTU)

use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use x25519_dalek::{PublicKey, StaticSecret};

/// Packets sealed, then opened, per round: a batch as the engine keeps in its buffers (64 GSO runs of up to 64
/// segments is more; this stays in the L2 cache, as a batch does while it is worked on).
const BATCH: usize = 1024;
/// WireGuard's data header and tag.
const OVERHEAD: usize = 32;

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1420);
    if !(20..=65_000).contains(&size) {
        eprintln!("culvert-bench-cipher: a packet of {size} bytes is not an IP packet; give 20 to 65000");
        std::process::exit(2);
    }
    let (mut a, mut b) = session();
    let packet = ipv4_packet(size);
    let mut sealed = vec![vec![0u8; size + OVERHEAD]; BATCH];
    let mut opened = vec![0u8; size + OVERHEAD];
    let (mut seal_time, mut open_time, mut packets) = (Duration::ZERO, Duration::ZERO, 0u64);
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < seconds {
        let t0 = Instant::now();
        for buf in &mut sealed {
            match a.encapsulate(&packet, buf) {
                TunnResult::WriteToNetwork(d) if d.len() == size + OVERHEAD => {}
                _ => fail("a data packet was not sealed"),
            }
        }
        let t1 = Instant::now();
        for buf in &sealed {
            match b.decapsulate(None, buf, &mut opened) {
                TunnResult::WriteToTunnelV4(d, _) if d.len() == size => {}
                _ => fail("a data packet was not opened"),
            }
        }
        let t2 = Instant::now();
        seal_time += t1 - t0;
        open_time += t2 - t1;
        packets += BATCH as u64;
    }
    let gbps = |time: Duration| (packets * size as u64 * 8) as f64 / time.as_secs_f64() / 1e9;
    println!(
        "{{\"packet_bytes\":{size},\"packets\":{packets},\"seal_gbps\":{:.3},\"open_gbps\":{:.3}}}",
        gbps(seal_time),
        gbps(open_time)
    );
}

/// Two ends with a session between them, after a real handshake.
fn session() -> (Tunn, Tunn) {
    let (sa, sb) = (StaticSecret::random_from_rng(rand_core::OsRng), StaticSecret::random_from_rng(rand_core::OsRng));
    let (pa, pb) = (PublicKey::from(&sa), PublicKey::from(&sb));
    let mut a = Tunn::new(sa, pb, None, None, 1, None);
    let mut b = Tunn::new(sb, pa, None, None, 2, None);
    let (mut buf, mut out) = (vec![0u8; 2048], vec![0u8; 2048]);
    let init = match a.format_handshake_initiation(&mut buf, false) {
        TunnResult::WriteToNetwork(d) => d.to_vec(),
        _ => fail("no handshake initiation"),
    };
    let response = match b.decapsulate(None, &init, &mut out) {
        TunnResult::WriteToNetwork(d) => d.to_vec(),
        _ => fail("no handshake response"),
    };
    let keepalive = match a.decapsulate(None, &response, &mut out) {
        TunnResult::WriteToNetwork(d) => d.to_vec(),
        _ => fail("no keepalive after the handshake"),
    };
    match b.decapsulate(None, &keepalive, &mut out) {
        TunnResult::Done => {}
        _ => fail("the keepalive was not taken"),
    }
    (a, b)
}

/// An IPv4 UDP packet of `size` bytes (the receiving end checks the header's length).
fn ipv4_packet(size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&u16::try_from(size).unwrap_or(u16::MAX).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 74, 0, 1]);
    p[16..20].copy_from_slice(&[10, 74, 0, 2]);
    p
}

fn fail(what: &str) -> ! {
    eprintln!("culvert-bench-cipher: {what}");
    std::process::exit(1)
}
