//! A bounded, lossy queue of events for one client. Events are held as encoded frames and bounded in bytes, so
//! that what a client that reads too slowly costs the helper is known: when a new event does not fit, the oldest
//! go and the client is told how many it lost. Pushing never waits, so no producer is ever slowed by a client.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use culvert_core::ipc::codec::encode_frame;
use culvert_core::ipc::{Event, ServerMessage};
use tokio::sync::Notify;

/// Bytes of encoded events held for one client at most. A subscriber to a few tunnels at 100 ms with packet
/// samples keeps several seconds' worth; 1000 stalled subscribers hold 32 MiB in all (the hardening test).
pub const MAX_BYTES: usize = 32 * 1024;

#[derive(Debug, Default)]
pub struct EventQueue {
    inner: Mutex<Inner>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    frames: VecDeque<Bytes>,
    bytes: usize,
    lost: u64,
}

impl EventQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues an event; one that cannot be encoded (larger than a frame) is counted as lost.
    pub fn push(&self, event: Event) {
        match encode_frame(&ServerMessage::Event { event }) {
            Ok(frame) => self.push_frame(frame),
            Err(e) => {
                tracing::debug!("an event was not sent: {e}");
                self.lock().lost += 1;
                self.ready.notify_one();
            }
        }
    }

    fn push_frame(&self, frame: Bytes) {
        {
            let mut q = self.lock();
            // One event is always kept, however large: a client must be able to follow a large tunnel.
            while !q.frames.is_empty() && q.bytes + frame.len() > MAX_BYTES {
                if let Some(old) = q.frames.pop_front() {
                    q.bytes -= old.len();
                    q.lost += 1;
                }
            }
            q.bytes += frame.len();
            q.frames.push_back(frame);
        }
        self.ready.notify_one();
    }

    /// Whether the client is so far behind that a new event would only push out an older one: producers then
    /// skip the work of making it, and count it as lost.
    pub fn is_full(&self) -> bool {
        self.lock().bytes >= MAX_BYTES
    }

    /// Counts an event that was not made because the queue was full.
    pub fn skip(&self) {
        self.lock().lost += 1;
    }

    /// The next frame to send, a `Lagged` notice first when events were lost since the last one.
    pub async fn pop(&self) -> Bytes {
        loop {
            {
                let mut q = self.lock();
                if q.lost > 0 {
                    let lost = std::mem::take(&mut q.lost);
                    drop(q);
                    if let Ok(frame) = encode_frame(&ServerMessage::Event { event: Event::Lagged { lost } }) {
                        return frame;
                    }
                    continue;
                }
                if let Some(frame) = q.frames.pop_front() {
                    q.bytes -= frame.len();
                    if q.frames.is_empty() {
                        // Give a burst's buffer back rather than keep it for a client that may never read again.
                        q.frames.shrink_to(4);
                    }
                    return frame;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_core::ipc::codec::HEADER;

    fn decode(frame: &Bytes) -> Event {
        match serde_json::from_slice(&frame[HEADER..]).unwrap() {
            ServerMessage::Event { event } => event,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_slow_reader_loses_the_oldest_and_is_told() {
        let q = EventQueue::default();
        let one = encode_frame(&ServerMessage::Event { event: Event::Lagged { lost: 1000 } }).unwrap().len();
        let fit = MAX_BYTES / one;
        for i in 0..(fit as u64 + 3) {
            q.push(Event::Lagged { lost: 1000 + i });
        }
        assert!(q.bytes() <= MAX_BYTES, "{} bytes held", q.bytes());
        assert!(q.is_full() || MAX_BYTES - q.bytes() < one);
        assert_eq!(decode(&q.pop().await), Event::Lagged { lost: 3 });
        assert_eq!(decode(&q.pop().await), Event::Lagged { lost: 1003 }, "the three oldest should be gone");
    }

    #[tokio::test]
    async fn one_large_event_is_kept_and_skips_are_reported() {
        let q = EventQueue::default();
        let big = Event::TunnelDown { name: "x".repeat(MAX_BYTES * 2) };
        q.push(big.clone());
        assert!(q.is_full());
        q.skip();
        assert_eq!(decode(&q.pop().await), Event::Lagged { lost: 1 });
        assert_eq!(decode(&q.pop().await), big);
        assert_eq!(q.bytes(), 0);
    }
}
