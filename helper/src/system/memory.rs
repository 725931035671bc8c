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

/// Buffers of this size and larger come straight from the system as mappings of their own.
const OWN_MAPPING_FROM: usize = 64 * 1024;

/// Has glibc map large buffers on their own instead of carving them from its arenas. A tunnel waking from idle
/// takes its batch buffers again (1.3 MiB): from an arena, calloc cleared them and every page was faulted in
/// before the first packet moved, and a ping after 7 s idle took 1.7 ms where one after 3 s took 0.5. A mapping
/// of its own is zero already, so calloc leaves it alone and the kernel brings in only the pages a packet
/// touches; and freeing one gives it back at once, with no trim.
#[cfg(target_env = "gnu")]
#[allow(unsafe_code)]
pub fn map_large_buffers() {
    let threshold = libc::c_int::try_from(OWN_MAPPING_FROM).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets one of glibc's tunables; it is called once, before any thread is started.
    if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) } == 0 {
        tracing::debug!("glibc refused an mmap threshold of {threshold} bytes");
    }
}

#[cfg(not(target_env = "gnu"))]
pub fn map_large_buffers() {}
