//! A bounded, lossy queue of events for one client: when the client reads too slowly the oldest events go,
//! and the client is told how many it lost. Pushing never waits, so no producer is ever slowed by a client.

use std::collections::VecDeque;
use std::sync::Mutex;

use culvert_core::ipc::Event;
use tokio::sync::Notify;

/// Events held for one client at most; at 100 ms stats for a few tunnels, several seconds' worth.
pub const CAPACITY: usize = 64;

#[derive(Debug, Default)]
pub struct EventQueue {
    inner: Mutex<Inner>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    events: VecDeque<Event>,
    lost: u64,
}

impl EventQueue {
    pub fn push(&self, event: Event) {
        {
            let mut q = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if q.events.len() >= CAPACITY {
                q.events.pop_front();
                q.lost += 1;
            }
            q.events.push_back(event);
        }
        self.ready.notify_one();
    }

    /// The next event to send, a `Lagged` notice first when events were lost since the last one.
    pub async fn pop(&self) -> Event {
        loop {
            {
                let mut q = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if q.lost > 0 {
                    let lost = std::mem::take(&mut q.lost);
                    return Event::Lagged { lost };
                }
                if let Some(e) = q.events.pop_front() {
                    return e;
                }
            }
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_reader_loses_the_oldest_and_is_told() {
        let q = EventQueue::default();
        for i in 0..(CAPACITY as u64 + 3) {
            q.push(Event::Lagged { lost: 1000 + i });
        }
        assert_eq!(q.pop().await, Event::Lagged { lost: 3 });
        assert_eq!(q.pop().await, Event::Lagged { lost: 1003 }, "the three oldest should be gone");
    }
}
