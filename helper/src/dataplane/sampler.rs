//! Packet samples for live packet views: one packet in N, headers only, into a bounded ring that the data
//! plane never waits for.
//!
//! The data plane copies at most [`HEAD`] bytes of a sampled packet into a preallocated ring and never blocks:
//! if a reader holds the ring's lock, the sample is skipped. Readers parse the headers off the data path.
//!
//! A busy tunnel makes far more samples than anyone can read: at a million packets a second, "every packet"
//! filled the ring 200 times between two reads of a watcher at 10 Hz, and copying them cost a tenth of the udp
//! path's throughput. So sampling thins itself: when more than a ring's worth was made between two reads, it takes
//! one in twice as many; when readers could take more, it comes back toward what they asked for.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use culvert_core::packets::{Direction, PacketSample, parse};

/// Bytes kept of each sampled packet: an Ethernet, IPv6 and TCP header fit with room to spare.
const HEAD: usize = 96;
/// Samples held for readers; at one in N of a busy tunnel, a few seconds' worth.
const RING: usize = 512;
/// How often the thinning is adjusted, at most: a watcher reads at 10 Hz.
const THIN_EVERY_MS: u64 = 100;
/// The most thinning: one in 65,536 of what was asked for.
const MAX_THIN: u32 = 1 << 16;

/// A packet counter of one direction, on a cache line of its own: the two directions' threads never share one.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Seen(AtomicU64);

#[derive(Clone, Copy)]
struct Raw {
    seq: u64,
    at_ms: u64,
    direction: Direction,
    len: u32,
    head_len: u8,
    head: [u8; HEAD],
}

#[derive(Debug)]
pub struct Sampler {
    /// 0: off; else every `one_in`-th packet each way is sampled: what subscribers asked for, times the thinning.
    one_in: AtomicU32,
    seen: [Seen; 2],
    /// The frames of TAP tunnels start with an Ethernet header.
    ethernet: bool,
    /// The helper's clock in milliseconds, handed in: the data plane reads no clock of its own.
    clock: fn() -> u64,
    ring: Mutex<Ring>,
    /// The rates subscribers asked for (the smallest applies), and the thinning on top.
    rates: Mutex<Rates>,
}

#[derive(Debug, Default)]
struct Rates {
    asked: Vec<u32>,
    thin: u32,
    /// The ring's next sequence number and the clock at the last adjustment.
    seq_then: u64,
    ms_then: u64,
}

impl Rates {
    /// The rate the data plane applies: what was asked for, thinned.
    fn effective(&self) -> u32 {
        self.asked.iter().copied().min().map_or(0, |n| n.saturating_mul(self.thin.max(1)))
    }
}

struct Ring {
    entries: VecDeque<Raw>,
    next_seq: u64,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ring({} samples, next {})", self.entries.len(), self.next_seq)
    }
}

impl Sampler {
    pub fn new(ethernet: bool, clock: fn() -> u64) -> Self {
        Self {
            one_in: AtomicU32::new(0),
            seen: Default::default(),
            ethernet,
            clock,
            ring: Mutex::new(Ring { entries: VecDeque::with_capacity(RING), next_seq: 0 }),
            rates: Mutex::default(),
        }
    }

    /// Called by the data plane for every packet; costs one relaxed load while nobody samples.
    #[inline]
    pub fn offer(&self, direction: Direction, packet: &[u8]) {
        let n = self.one_in.load(Relaxed);
        if n == 0 {
            return;
        }
        let i = usize::from(direction == Direction::Out);
        if !self.seen[i].0.fetch_add(1, Relaxed).is_multiple_of(u64::from(n)) {
            return;
        }
        let Ok(mut ring) = self.ring.try_lock() else { return };
        let head_len = packet.len().min(HEAD);
        let mut raw = Raw {
            seq: ring.next_seq,
            at_ms: (self.clock)(),
            direction,
            len: u32::try_from(packet.len()).unwrap_or(u32::MAX),
            head_len: head_len as u8,
            head: [0; HEAD],
        };
        raw.head[..head_len].copy_from_slice(&packet[..head_len]);
        if ring.entries.len() == RING {
            ring.entries.pop_front();
        }
        ring.entries.push_back(raw);
        ring.next_seq += 1;
    }

    /// Starts sampling one packet in `one_in` for as long as the returned guard lives.
    pub fn subscribe(self: &Arc<Self>, one_in: u32) -> SamplingGuard {
        let mut rates = self.rates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        rates.asked.push(one_in.max(1));
        self.one_in.store(rates.effective(), Relaxed);
        SamplingGuard { sampler: self.clone(), one_in: one_in.max(1) }
    }

    /// Thins sampling when more was made since the last adjustment than the ring holds, and thickens it back
    /// when readers could take four times as much; at most every [`THIN_EVERY_MS`].
    fn adjust(&self, next_seq: u64) {
        let now = (self.clock)();
        let mut rates = self.rates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.saturating_sub(rates.ms_then) < THIN_EVERY_MS {
            return;
        }
        let made = next_seq.saturating_sub(rates.seq_then);
        let thin = rates.thin.max(1);
        rates.thin = if made > RING as u64 {
            (thin * 2).min(MAX_THIN)
        } else if made < (RING / 4) as u64 {
            (thin / 2).max(1)
        } else {
            thin
        };
        (rates.seq_then, rates.ms_then) = (next_seq, now);
        self.one_in.store(rates.effective(), Relaxed);
    }

    /// The samples after sequence number `after`, parsed, at most the newest `max` of them; the next position;
    /// and how many were missed since `after` (lost to the ring's bound, or beyond `max`).
    pub fn read_since(&self, after: u64, max: usize) -> (Vec<PacketSample>, u64, u64) {
        let next_seq = self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner).next_seq;
        self.adjust(next_seq);
        let ring = self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let oldest = ring.entries.front().map_or(ring.next_seq, |r| r.seq);
        let from = after.max(oldest).max(ring.next_seq.saturating_sub(max as u64));
        let missed = from.saturating_sub(after);
        let samples = ring
            .entries
            .iter()
            .filter(|r| r.seq >= from)
            .map(|r| {
                let mut s = parse(r.at_ms, r.direction, &r.head[..usize::from(r.head_len)], self.ethernet);
                s.len = r.len;
                s
            })
            .collect();
        (samples, ring.next_seq, missed)
    }

    /// Where a new reader starts: after everything sampled so far.
    pub fn position(&self) -> u64 {
        self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner).next_seq
    }
}

/// Sampling stays on at a subscriber's rate until its guard is dropped.
#[derive(Debug)]
pub struct SamplingGuard {
    sampler: Arc<Sampler>,
    one_in: u32,
}

impl Drop for SamplingGuard {
    fn drop(&mut self) {
        let mut rates = self.sampler.rates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = rates.asked.iter().position(|r| *r == self.one_in) {
            rates.asked.swap_remove(i);
        }
        self.sampler.one_in.store(rates.effective(), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::packet::build;

    #[test]
    fn samples_one_in_n_only_while_subscribed_and_bounded() {
        let s = Arc::new(Sampler::new(false, || 7));
        let p = build::ip("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), &[0; 1000]);
        s.offer(Direction::Out, &p);
        assert!(s.read_since(0, RING).0.is_empty(), "nobody asked for samples");
        let guard = s.subscribe(4);
        for _ in 0..8 {
            s.offer(Direction::Out, &p);
        }
        let (samples, next, missed) = s.read_since(0, RING);
        assert_eq!((samples.len(), next, missed), (2, 2, 0));
        assert_eq!((samples[0].len, samples[0].protocol.as_str()), (1020, "udp"));
        for _ in 0..(4 * (RING + 10)) {
            s.offer(Direction::In, &p);
        }
        let (samples, _, missed) = s.read_since(next, RING);
        assert_eq!((samples.len(), missed), (RING, 10));
        let (newest, end, missed) = s.read_since(next, 100);
        assert_eq!((newest.len(), missed), (100, (RING - 100 + 10) as u64), "only the newest, the rest missed");
        assert_eq!(end, next + RING as u64 + 10);
        drop(guard);
        s.offer(Direction::Out, &p);
        assert_eq!(s.position(), s.read_since(0, RING).1, "no sampling after the last subscriber left");
    }

    static NOW: AtomicU64 = AtomicU64::new(0);

    #[test]
    fn a_flood_thins_sampling_and_a_trickle_brings_it_back() {
        let s = Arc::new(Sampler::new(false, || NOW.load(Relaxed)));
        let p = build::ip("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), &[0; 100]);
        let _guard = s.subscribe(1);
        let mut position = s.position();
        let made = |s: &Sampler, packets: u32, position: &mut u64| {
            let before = s.ring.lock().unwrap().next_seq;
            for _ in 0..packets {
                s.offer(Direction::In, &p);
            }
            NOW.fetch_add(THIN_EVERY_MS, Relaxed);
            let (_, next, _) = s.read_since(*position, 128);
            *position = next;
            next - before
        };
        // 100,000 packets between reads: thinning doubles each time until what is made fits the ring.
        let sampled: Vec<u64> = (0..12).map(|_| made(&s, 100_000, &mut position)).collect();
        assert_eq!(sampled[0], 100_000, "every packet, as asked, at first");
        assert!(*sampled.last().unwrap() <= RING as u64, "still {sampled:?} samples per read after thinning");
        // A trickle: back to every packet.
        for _ in 0..20 {
            made(&s, 10, &mut position);
        }
        assert_eq!(made(&s, 10, &mut position), 10, "the thinning did not come back down");
    }
}
