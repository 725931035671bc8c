//! A protocol core that is replaced while the engine runs. The engine's loops load the current core once per
//! batch, so that each batch sees one consistent peer table, and a change (a peer added, removed, given other
//! allowed IPs) takes effect at the next batch without stopping them. Each core's `next` carries the peers that
//! stay into the new core with their sessions and counters.

use std::sync::{Arc, RwLock};

#[derive(Debug)]
pub struct Live<P> {
    current: RwLock<Arc<P>>,
}

impl<P> Live<P> {
    pub fn new(core: P) -> Self {
        Self { current: RwLock::new(Arc::new(core)) }
    }

    /// The core now: one read lock and a reference count, once per batch.
    pub fn load(&self) -> Arc<P> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Makes `core` the current one; batches under way finish with the core they loaded.
    pub fn store(&self, core: P) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(core);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loaded_core_stays_what_it_was_after_a_store() {
        let live = Live::new(1);
        let before = live.load();
        live.store(2);
        assert_eq!((*before, *live.load()), (1, 2));
    }
}
