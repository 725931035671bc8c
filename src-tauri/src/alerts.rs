//! Desktop notifications (the freedesktop notification spec, through tauri-plugin-notification): a tunnel
//! connected, a tunnel that went down without this app asking, a WireGuard handshake that keeps failing, and
//! culvertd gone and back. What changed is worked out from one snapshot to the next, apart from sending, so that
//! it is tested without a desktop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use culvert_core::stats::TunnelState;

use crate::model::{HelperStateKind, Snapshot};

/// What the notifications compare: whether culvertd answered, and the user's tunnels with their states.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub helper_ok: bool,
    pub tunnels: BTreeMap<String, (TunnelState, Option<String>)>,
}

impl Seen {
    pub fn of(snapshot: &Snapshot) -> Self {
        Self {
            helper_ok: snapshot.helper.kind == HelperStateKind::Ok,
            tunnels: snapshot.tunnels.iter().map(|t| (t.name.clone(), (t.state, t.reason.clone()))).collect(),
        }
    }
}

/// One notification: a short summary and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub summary: String,
    pub body: String,
}

fn alert(summary: impl Into<String>, body: impl Into<String>) -> Alert {
    Alert { summary: summary.into(), body: body.into() }
}

/// The notifications for going from `before` to `now`; `asked_down` are the tunnels this app was asked to take
/// down since (their going is no surprise).
pub fn changes(before: &Seen, now: &Seen, asked_down: &BTreeSet<String>) -> Vec<Alert> {
    let mut out = Vec::new();
    match (before.helper_ok, now.helper_ok) {
        (true, false) => {
            out.push(alert(
                "Culvert's helper stopped",
                "culvertd does not answer: tunnels cannot be connected or changed until it is back.",
            ));
            // Its tunnels went with it (or are out of sight): one notification says it.
            return out;
        }
        (false, true) => out.push(alert("Culvert's helper is back", "culvertd answers again.")),
        _ => {}
    }
    if !before.helper_ok {
        return out;
    }
    for (name, (state, reason)) in &now.tunnels {
        let was = before.tunnels.get(name).map(|(s, _)| *s);
        if *state == TunnelState::Up && was != Some(TunnelState::Up) {
            out.push(alert(format!("{name} connected"), format!("The tunnel {name} is up.")));
        }
        if *state == TunnelState::NoHandshake && was != Some(TunnelState::NoHandshake) {
            let why = reason.clone().unwrap_or_else(|| "its peer does not answer".into());
            out.push(alert(format!("{name}: no handshake"), why));
        }
    }
    for name in before.tunnels.keys() {
        if !now.tunnels.contains_key(name) && !asked_down.contains(name) {
            out.push(alert(
                format!("{name} disconnected"),
                format!(
                    "The tunnel {name} went down, and not from this app: `culvert status` or the helper's log says why."
                ),
            ));
        }
    }
    out
}

/// What the link loop keeps between snapshots: the last one seen, and the tunnels the app was asked to take down.
#[derive(Debug, Default)]
pub struct Alerts {
    last: Mutex<Option<Seen>>,
    asked_down: Mutex<BTreeSet<String>>,
}

impl Alerts {
    /// The app is about to take `name` down: no notification for it.
    pub fn asked_down(&self, name: &str) {
        self.asked_down.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name.to_owned());
    }

    /// The notifications a new snapshot brings; the first snapshot of a run brings none (the app just started).
    pub fn observe(&self, snapshot: &Snapshot) -> Vec<Alert> {
        let now = Seen::of(snapshot);
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut asked = self.asked_down.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let alerts = last.as_ref().map(|before| changes(before, &now, &asked)).unwrap_or_default();
        asked.retain(|name| now.tunnels.contains_key(name));
        *last = Some(now);
        alerts
    }
}

/// Shows the notifications of `snapshot`, unless the user turned them off.
pub fn notify(app: &tauri::AppHandle, snapshot: &Snapshot) {
    use tauri::Manager;
    use tauri_plugin_notification::NotificationExt;
    let Some(alerts) = app.try_state::<Alerts>() else { return };
    let pending = alerts.observe(snapshot);
    if pending.is_empty() || !crate::settings::load().notifications {
        return;
    }
    for a in pending {
        if let Err(e) = app.notification().builder().title(&a.summary).body(&a.body).show() {
            tracing::debug!("cannot show the notification {:?}: {e}", a.summary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(helper_ok: bool, tunnels: &[(&str, TunnelState)]) -> Seen {
        Seen { helper_ok, tunnels: tunnels.iter().map(|(n, s)| ((*n).to_owned(), (*s, None))).collect() }
    }

    fn summaries(alerts: &[Alert]) -> Vec<&str> {
        alerts.iter().map(|a| a.summary.as_str()).collect()
    }

    #[test]
    fn a_tunnel_that_connects_and_one_that_falls_are_said_once() {
        let none = BTreeSet::new();
        let before = seen(true, &[("home", TunnelState::Connecting), ("lab", TunnelState::Up)]);
        let now = seen(true, &[("home", TunnelState::Up)]);
        assert_eq!(summaries(&changes(&before, &now, &none)), ["home connected", "lab disconnected"]);
        assert!(changes(&now, &now, &none).is_empty(), "nothing changed, nothing said");
        let asked: BTreeSet<String> = ["lab".to_owned()].into();
        assert_eq!(summaries(&changes(&before, &now, &asked)), ["home connected"], "the app took lab down");
    }

    #[test]
    fn failing_handshakes_and_the_helper_coming_and_going() {
        let none = BTreeSet::new();
        let up = seen(true, &[("home", TunnelState::Up)]);
        let failing = seen(true, &[("home", TunnelState::NoHandshake)]);
        assert_eq!(summaries(&changes(&up, &failing, &none)), ["home: no handshake"]);
        let gone = seen(false, &[]);
        assert_eq!(
            summaries(&changes(&up, &gone, &none)),
            ["Culvert's helper stopped"],
            "one notice, not one per tunnel"
        );
        assert_eq!(summaries(&changes(&gone, &up, &none)), ["Culvert's helper is back"]);
    }
}
