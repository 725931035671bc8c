//! How many clients culvertd serves at once: in all, and per user other than root, so that one user (or a
//! runaway script) cannot take every connection, or every file descriptor, from the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use culvert_core::ipc::IpcError;

/// Connections in all, and per non-root uid, unless `--max-connections` and `--max-connections-per-user` say
/// otherwise.
pub const DEFAULT_TOTAL: u32 = 4096;
pub const DEFAULT_PER_USER: u32 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    pub per_user: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { total: DEFAULT_TOTAL as usize, per_user: DEFAULT_PER_USER as usize }
    }
}

#[derive(Debug, Default)]
pub struct Admission {
    limits: Limits,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_uid: HashMap<u32, usize>,
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self { limits, open: Mutex::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits one more connection of `uid`, or says which limit it would break. The connection counts until the
    /// returned ticket is dropped.
    pub fn admit(self: &Arc<Self>, uid: u32) -> Result<Ticket, IpcError> {
        let mut open = self.lock();
        if open.total >= self.limits.total {
            return Err(IpcError::TooManyConnections { limit: self.limits.total, scope: "in all".into() });
        }
        let mine = open.by_uid.get(&uid).copied().unwrap_or(0);
        if uid != 0 && mine >= self.limits.per_user {
            return Err(IpcError::TooManyConnections {
                limit: self.limits.per_user,
                scope: format!("for each user (uid {uid})"),
            });
        }
        open.total += 1;
        *open.by_uid.entry(uid).or_default() += 1;
        Ok(Ticket { admission: self.clone(), uid })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

/// One admitted connection.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    uid: u32,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        crate::system::memory::released(1);
        let mut open = self.admission.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                open.by_uid.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_and_total_limits_hold_and_free_up() {
        let a = Admission::new(Limits { total: 3, per_user: 2 });
        let t1 = a.admit(1000).unwrap();
        let _t2 = a.admit(1000).unwrap();
        let e = a.admit(1000).unwrap_err();
        assert!(e.to_string().contains("uid 1000"), "{e}");
        let _root = a.admit(0).unwrap();
        assert!(a.admit(0).unwrap_err().to_string().contains("at most 3 connections in all"));
        drop(t1);
        assert_eq!(a.open(), 2);
        let _again = a.admit(1000).unwrap();
    }

    #[test]
    fn root_has_no_per_user_limit() {
        let a = Admission::new(Limits { total: 10, per_user: 1 });
        let held: Vec<Ticket> = (0..5).map(|_| a.admit(0).unwrap()).collect();
        assert_eq!(held.len(), 5);
    }
}
