//! Daily traffic totals per tunnel, kept in SQLite under the user's data dir for the usage chart.
//!
//! culvertd's counters are totals since a tunnel came up. The book turns them into what moved since the last
//! look, and remembers the last look per tunnel instance (name and `up_since`) in the database, so that a
//! restarted app neither counts a running tunnel twice nor loses what moved while it was closed (that goes to
//! the day the app sees it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use culvert_core::stats::TunnelStatus;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use ts_rs::TS;

/// How often counts reach the disk: a write each second would be for a number nobody reads at that rate; a
/// crash loses at most this much of the day's count.
const FLUSH_EVERY: Duration = Duration::from_secs(10);

/// One day's totals of one tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct DayUsage {
    /// Local date, YYYY-MM-DD.
    pub day: String,
    #[ts(type = "number")]
    pub rx_bytes: u64,
    #[ts(type = "number")]
    pub tx_bytes: u64,
}

/// A tunnel's usage for the chart: the days that have traffic, oldest first, and which day is today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct UsageReport {
    pub name: String,
    pub today: String,
    pub days: Vec<DayUsage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    up_since: u64,
    rx: u64,
    tx: u64,
}

pub struct UsageBook {
    db: Connection,
    /// Whose tunnels count: this user's (culvertd reports every user's tunnels, by their own names).
    owner_uid: u32,
    seen: HashMap<String, Seen>,
    /// Counts not yet written, by (day, tunnel).
    pending: HashMap<(String, String), (u64, u64)>,
    last_flush: Instant,
}

/// `$XDG_DATA_HOME/culvert/usage.sqlite3`, else `$HOME/.local/share/culvert/usage.sqlite3`.
pub fn default_path() -> Option<PathBuf> {
    culvert_store::xdg_dir("XDG_DATA_HOME", ".local/share").map(|d| d.join("usage.sqlite3"))
}

/// The uid this app runs as: the owner of its own /proc entry.
fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl UsageBook {
    pub fn open(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let db = Connection::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS daily (
                 day TEXT NOT NULL, tunnel TEXT NOT NULL, rx_bytes INTEGER NOT NULL, tx_bytes INTEGER NOT NULL,
                 PRIMARY KEY (day, tunnel));
             CREATE TABLE IF NOT EXISTS seen (
                 tunnel TEXT PRIMARY KEY, up_since INTEGER NOT NULL, rx_bytes INTEGER NOT NULL,
                 tx_bytes INTEGER NOT NULL);",
        )
        .map_err(|e| format!("cannot set up {shown}: {e}"))?;
        let seen = {
            let mut stmt = db
                .prepare("SELECT tunnel, up_since, rx_bytes, tx_bytes FROM seen")
                .map_err(|e| format!("cannot read {shown}: {e}"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        Seen { up_since: to_u64(r.get(1)?), rx: to_u64(r.get(2)?), tx: to_u64(r.get(3)?) },
                    ))
                })
                .and_then(Iterator::collect::<Result<HashMap<_, _>, _>>)
                .map_err(|e| format!("cannot read {shown}: {e}"));
            rows?
        };
        Ok(Self { db, owner_uid: current_uid(), seen, pending: HashMap::new(), last_flush: Instant::now() })
    }

    /// Today's local date, as SQLite's localtime gives it (the C library's idea of the time zone).
    pub fn today(&self) -> String {
        self.db
            .query_row("SELECT date('now', 'localtime')", [], |r| r.get(0))
            .unwrap_or_else(|_| "1970-01-01".to_owned())
    }

    /// Counts what moved since the last look, on today's date; writes when a flush is due.
    pub fn observe(&mut self, tunnels: &[TunnelStatus]) {
        let today = self.today();
        self.observe_on(&today, tunnels);
        if self.last_flush.elapsed() >= FLUSH_EVERY
            && let Err(e) = self.flush()
        {
            tracing::warn!("usage totals not saved: {e}");
        }
    }

    pub fn observe_on(&mut self, day: &str, tunnels: &[TunnelStatus]) {
        for t in tunnels.iter().filter(|t| t.owner_uid == self.owner_uid) {
            let now = Seen { up_since: t.up_since, rx: t.counters.rx_bytes, tx: t.counters.tx_bytes };
            let moved = match self.seen.get(&t.name) {
                Some(s) if s.up_since == t.up_since && now.rx >= s.rx && now.tx >= s.tx => {
                    (now.rx - s.rx, now.tx - s.tx)
                }
                // Not seen before, or up afresh since: everything it counted is new to the book.
                _ => (now.rx, now.tx),
            };
            self.seen.insert(t.name.clone(), now);
            if moved != (0, 0) {
                let e = self.pending.entry((day.to_owned(), t.name.clone())).or_default();
                e.0 = e.0.saturating_add(moved.0);
                e.1 = e.1.saturating_add(moved.1);
            }
        }
    }

    /// Writes pending counts and the last look at each tunnel in one transaction.
    pub fn flush(&mut self) -> Result<(), String> {
        self.last_flush = Instant::now();
        let tx = self.db.transaction().map_err(|e| e.to_string())?;
        {
            let mut add = tx
                .prepare_cached(
                    "INSERT INTO daily (day, tunnel, rx_bytes, tx_bytes) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (day, tunnel) DO UPDATE
                     SET rx_bytes = rx_bytes + excluded.rx_bytes, tx_bytes = tx_bytes + excluded.tx_bytes",
                )
                .map_err(|e| e.to_string())?;
            for ((day, tunnel), (rx, tx)) in &self.pending {
                add.execute(params![day, tunnel, to_i64(*rx), to_i64(*tx)]).map_err(|e| e.to_string())?;
            }
            let mut seen = tx
                .prepare_cached(
                    "INSERT INTO seen (tunnel, up_since, rx_bytes, tx_bytes) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tunnel) DO UPDATE
                     SET up_since = excluded.up_since, rx_bytes = excluded.rx_bytes, tx_bytes = excluded.tx_bytes",
                )
                .map_err(|e| e.to_string())?;
            for (tunnel, s) in &self.seen {
                seen.execute(params![tunnel, to_i64(s.up_since), to_i64(s.rx), to_i64(s.tx)])
                    .map_err(|e| e.to_string())?;
            }
        }
        tx.commit().map_err(|e| e.to_string())?;
        self.pending.clear();
        Ok(())
    }

    /// `name`'s totals for the `days` days up to and including today (pending counts included).
    pub fn report(&mut self, name: &str, days: u32) -> Result<UsageReport, String> {
        self.flush()?;
        let today = self.today();
        let since: Option<String> = self
            .db
            .query_row("SELECT date(?1, ?2)", params![today, format!("-{} days", days.saturating_sub(1))], |r| r.get(0))
            .optional()
            .map_err(|e| e.to_string())?;
        let mut stmt = self
            .db
            .prepare_cached(
                "SELECT day, rx_bytes, tx_bytes FROM daily WHERE tunnel = ?1 AND day >= ?2 AND day <= ?3 ORDER BY day",
            )
            .map_err(|e| e.to_string())?;
        let days = stmt
            .query_map(params![name, since.unwrap_or_else(|| today.clone()), today], |r| {
                Ok(DayUsage { day: r.get(0)?, rx_bytes: to_u64(r.get(1)?), tx_bytes: to_u64(r.get(2)?) })
            })
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| e.to_string())?;
        Ok(UsageReport { name: name.to_owned(), today, days })
    }
}

/// The book the link loop feeds and the usage command reads; `None` where it could not be opened.
#[derive(Default)]
pub struct Usage(pub std::sync::Mutex<Option<UsageBook>>);

impl Usage {
    pub fn open_default() -> Self {
        let book = default_path()
            .ok_or_else(|| "neither XDG_DATA_HOME nor HOME is set".to_owned())
            .and_then(|p| UsageBook::open(&p).inspect(|_| tracing::info!("usage totals in {}", p.display())));
        match book {
            Ok(b) => Self(std::sync::Mutex::new(Some(b))),
            Err(e) => {
                tracing::warn!("no usage totals this run: {e}");
                Self::default()
            }
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut UsageBook) -> T) -> Option<T> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_mut().map(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_core::profile::Kind;
    use culvert_core::stats::{Counters, TunnelState};

    fn tunnel(name: &str, up_since: u64, rx: u64, tx: u64) -> TunnelStatus {
        TunnelStatus {
            name: name.into(),
            kind: Kind::Udp,
            state: TunnelState::Up,
            reason: None,
            interface: format!("cv-{name}"),
            listen_port: None,
            owner_uid: current_uid(),
            system: false,
            kill_switch: false,
            up_since,
            counters: Counters { rx_bytes: rx, tx_bytes: tx, ..Counters::default() },
            peers: vec![],
            overlay: None,
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("culvert-usage-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("usage.sqlite3")
    }

    fn totals(book: &mut UsageBook, name: &str) -> Vec<(String, u64, u64)> {
        book.flush().unwrap();
        let mut stmt =
            book.db.prepare("SELECT day, rx_bytes, tx_bytes FROM daily WHERE tunnel = ?1 ORDER BY day").unwrap();
        stmt.query_map([name], |r| Ok((r.get(0)?, to_u64(r.get(1)?), to_u64(r.get(2)?))))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn deltas_add_up_per_day_and_a_tunnel_up_afresh_counts_from_zero() {
        let path = scratch("deltas");
        let mut book = UsageBook::open(&path).unwrap();
        book.observe_on("2026-11-24", &[tunnel("office", 100, 1000, 500), tunnel("lab", 50, 7, 7)]);
        book.observe_on("2026-11-24", &[tunnel("office", 100, 1500, 700)]);
        book.observe_on("2026-11-25", &[tunnel("office", 100, 1600, 700)]);
        // Down and up again: the helper's counters start over.
        book.observe_on("2026-11-25", &[tunnel("office", 200, 40, 30)]);
        assert_eq!(totals(&mut book, "office"), [("2026-11-24".into(), 1500, 700), ("2026-11-25".into(), 140, 30)]);
        assert_eq!(totals(&mut book, "lab"), [("2026-11-24".into(), 7, 7)]);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn another_users_tunnel_does_not_count() {
        let path = scratch("owner");
        let mut book = UsageBook::open(&path).unwrap();
        let theirs = TunnelStatus { owner_uid: current_uid().wrapping_add(1), ..tunnel("office", 1, 900, 900) };
        book.observe_on("2026-11-26", &[theirs, tunnel("lab", 1, 10, 20)]);
        assert!(totals(&mut book, "office").is_empty());
        assert_eq!(totals(&mut book, "lab"), [("2026-11-26".into(), 10, 20)]);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_restarted_app_does_not_count_a_running_tunnel_twice() {
        let path = scratch("restart");
        {
            let mut book = UsageBook::open(&path).unwrap();
            book.observe_on("2026-11-25", &[tunnel("office", 100, 1000, 10)]);
            book.flush().unwrap();
        }
        let mut book = UsageBook::open(&path).unwrap();
        // What moved while the app was closed is counted once, on the day the app sees it.
        book.observe_on("2026-11-26", &[tunnel("office", 100, 1300, 10)]);
        assert_eq!(totals(&mut book, "office"), [("2026-11-25".into(), 1000, 10), ("2026-11-26".into(), 300, 0)]);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_report_holds_the_window_up_to_today_with_unwritten_counts() {
        let path = scratch("report");
        let mut book = UsageBook::open(&path).unwrap();
        let today = book.today();
        book.observe_on("2000-01-01", &[tunnel("office", 1, 5, 5)]);
        book.observe_on(&today, &[tunnel("office", 2, 64, 32)]);
        let report = book.report("office", 30).unwrap();
        assert_eq!(report.today, today);
        assert_eq!(report.days, [DayUsage { day: today, rx_bytes: 64, tx_bytes: 32 }], "2000-01-01 is outside");
        assert!(book.report("nobody", 30).unwrap().days.is_empty());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
