//! Giving freed memory back to the system. glibc keeps the pages of freed heap memory in its arenas: after a
//! thousand clients left, culvertd went on holding 76 MB it no longer used (the hardening test). Whoever frees
//! a lot says so with [`released`]; a task calls `malloc_trim` once enough was released.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

static RELEASED: AtomicU64 = AtomicU64::new(0);

/// Things released since the start (a connection closed, a tunnel went down), in no particular unit.
pub fn released(n: u64) {
    RELEASED.fetch_add(n, Relaxed);
}

/// How often the trimmer looks, and how many releases make a trim worth its few milliseconds.
const EVERY: Duration = Duration::from_secs(2);
pub const WORTH_IT: u64 = 32;

/// Trims the heap whenever enough was released since the last trim. Runs until the helper ends.
pub async fn trim_when_released() {
    let mut last = 0;
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let now = RELEASED.load(Relaxed);
        if now - last >= WORTH_IT {
            last = now;
            give_back();
        }
    }
}

#[cfg(target_env = "gnu")]
#[allow(unsafe_code)]
fn give_back() {
    // SAFETY: malloc_trim takes no pointer of ours; it walks glibc's own free lists and returns their pages.
    let trimmed = unsafe { libc::malloc_trim(0) };
    tracing::debug!("gave freed heap pages back to the system: {}", trimmed != 0);
}

#[cfg(not(target_env = "gnu"))]
fn give_back() {}
