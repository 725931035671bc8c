//! Applying a tunnel's system changes as one transaction: each is recorded before it is made, and a failure
//! undoes all of them in reverse, so a failed `up` leaves nothing behind.

use super::TunnelError;
use crate::system::{Netlink, Object, Record, Records};

#[derive(Debug)]
pub struct Changes<'a> {
    pub netlink: &'a Netlink,
    records: &'a Records,
    pub record: Record,
}

impl<'a> Changes<'a> {
    pub fn begin(netlink: &'a Netlink, records: &'a Records, record: Record) -> std::io::Result<Self> {
        records.write(&record)?;
        Ok(Self { netlink, records, record })
    }

    /// Continues the transaction of a tunnel that is up, from its record (a live change).
    pub fn resume(netlink: &'a Netlink, records: &'a Records, record: Record) -> Self {
        Self { netlink, records, record }
    }

    /// Carries out a plan: the objects to add are recorded (in one write) and made, then those to remove are
    /// removed and forgotten. If a step fails, what the plan did so far is undone, so that the tunnel is as it
    /// was, and the error names the profile field of the object (`field_of`) with the fix.
    pub async fn carry_out(
        &mut self,
        plan: &super::plan::Plan,
        field_of: impl Fn(&Object) -> String,
        fix: &str,
    ) -> Result<(), TunnelError> {
        self.will_create_all(plan.add.iter().cloned()).map_err(TunnelError::Record)?;
        let mut made = Vec::new();
        let mut failure = None;
        for object in &plan.add {
            match object.make(self.netlink).await {
                Ok(true) => made.push(object.clone()),
                Ok(false) => {}
                Err(e) if e.errno == Some(libc::EEXIST) => {
                    failure = Some(TunnelError::Profile {
                        field: field_of(object),
                        reason: format!("{}: {}", e.op, e.message),
                        fix: fix.into(),
                    });
                    break;
                }
                Err(e) => {
                    failure = Some(TunnelError::from(e));
                    break;
                }
            }
        }
        let mut removed = Vec::new();
        if failure.is_none() {
            for object in &plan.remove {
                match object.undo(self.netlink).await {
                    Ok(()) => removed.push(object.clone()),
                    Err(e) => {
                        failure = Some(TunnelError::from(e));
                        break;
                    }
                }
            }
        }
        if let Some(e) = failure {
            for object in removed.iter().rev() {
                if let Err(again) = object.make(self.netlink).await {
                    tracing::warn!("tunnel {}: could not put {object:?} back: {again}", self.record.name);
                }
            }
            for object in made.iter().rev() {
                if let Err(again) = object.undo(self.netlink).await {
                    tracing::warn!("tunnel {}: could not take {object:?} back: {again}", self.record.name);
                }
            }
            // Forget what this plan recorded: the last `plan.add.len()` entries.
            let keep = self.record.objects.len() - plan.add.len();
            self.record.objects.truncate(keep);
            self.records.write(&self.record).map_err(TunnelError::Record)?;
            return Err(e);
        }
        // What the kernel already had is not ours; what was removed is gone.
        let not_ours: Vec<&Object> = plan.add.iter().filter(|o| !made.contains(o)).collect();
        let keep = self.record.objects.len() - plan.add.len();
        let mut recorded: Vec<Object> = self.record.objects.drain(keep..).collect();
        recorded.retain(|o| !not_ours.contains(&o));
        self.record.objects.extend(recorded);
        for gone in &removed {
            if let Some(at) = self.record.objects.iter().rposition(|o| o == gone) {
                self.record.objects.remove(at);
            }
        }
        self.records.write(&self.record).map_err(TunnelError::Record)
    }

    pub fn records(&self) -> &Records {
        self.records
    }

    /// Notes an object about to be created.
    pub fn will_create(&mut self, object: Object) -> std::io::Result<()> {
        self.will_create_all([object])
    }

    /// Notes objects about to be created, with one write of the record: a tunnel with thousands of routes must
    /// not rewrite its record thousands of times.
    pub fn will_create_all(&mut self, objects: impl IntoIterator<Item = Object>) -> std::io::Result<()> {
        self.record.objects.extend(objects);
        self.records.write(&self.record)
    }

    /// Forgets `object` (the newest entry equal to it): it is gone, or was never made. A record that cannot be
    /// written now keeps it, which only means undoing it once more later, harmlessly.
    pub fn forget(&mut self, object: &Object) {
        if let Some(at) = self.record.objects.iter().rposition(|o| o == object) {
            self.record.objects.remove(at);
            if let Err(e) = self.records.write(&self.record) {
                tracing::warn!("tunnel {}: could not write its record: {e}", self.record.name);
            }
        }
    }

    /// Forgets the last object noted: it turned out to exist already and is not ours.
    pub fn not_created(&mut self) -> std::io::Result<()> {
        self.record.objects.pop();
        self.records.write(&self.record)
    }

    /// Sets a sysctl (a key under /proc/sys) for as long as the tunnel is up.
    pub fn set_sysctl(&mut self, key: &str, value: &str) -> Result<(), TunnelError> {
        let failed = |source: std::io::Error| TunnelError::Sysctl { key: key.into(), source };
        let now = self.netlink.read_sysctl(key).map_err(failed)?;
        let probe = Object::Sysctl { key: key.into(), old: String::new() };
        // Another tunnel set it already: share its record of what the machine had, so whichever goes last
        // restores that.
        let shared = self.records.shared_elsewhere(&self.record.name, &probe).map_err(TunnelError::Record)?;
        let old = match shared.into_iter().next() {
            Some(Object::Sysctl { old, .. }) => old,
            _ if now == value => return Ok(()),
            _ => now.clone(),
        };
        self.will_create(Object::Sysctl { key: key.into(), old }).map_err(TunnelError::Record)?;
        if now != value {
            self.netlink.write_sysctl(key, value).map_err(failed)?;
        }
        Ok(())
    }

    /// Adds a policy rule, recorded first. The same rule already there is shared when another tunnel recorded it
    /// (full tunnels all need `suppress_prefixlength 0`), and otherwise not ours and not recorded.
    pub async fn add_rule(&mut self, rule: &crate::system::netlink::Rule) -> Result<(), TunnelError> {
        let object = Object::Rule(rule.clone());
        self.will_create(object.clone()).map_err(TunnelError::Record)?;
        match self.netlink.add_rule(rule).await {
            Ok(()) => Ok(()),
            Err(e) if e.errno == Some(libc::EEXIST) => {
                if self.records.shared_elsewhere(&self.record.name, &object).map_err(TunnelError::Record)?.is_empty() {
                    self.not_created().map_err(TunnelError::Record)?;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Adds routes, each through the link named with it, recorded first (in one write). Routes identical to ones
    /// already there (the kernel's own prefix route of an address, say) are not ours and are neither added nor
    /// recorded; one to the same destination through another interface is a conflict with the route's profile
    /// field, reported with `fix`.
    pub async fn add_routes(
        &mut self,
        routes: &[(crate::system::netlink::Route, String, String)],
        fix: &str,
    ) -> Result<(), TunnelError> {
        let object = |r: &crate::system::netlink::Route, dev: &str| Object::Route {
            dst: r.dst,
            dev: dev.into(),
            table: r.table,
            via: r.via,
            onlink: r.onlink,
        };
        let mut existing = std::collections::HashSet::new();
        for v6 in [false, true] {
            if routes.iter().any(|(r, ..)| r.dst.addr().is_ipv6() == v6) {
                existing.extend(self.netlink.route_keys(v6).await?);
            }
        }
        let new: Vec<_> = routes.iter().filter(|(r, ..)| !existing.contains(&(r.table, r.dst, r.index))).collect();
        self.will_create_all(new.iter().map(|(r, dev, _)| object(r, dev))).map_err(TunnelError::Record)?;
        let mut not_ours = Vec::new();
        for (route, dev, field) in new {
            match self.netlink.add_route(route).await {
                Ok(true) => {}
                Ok(false) => not_ours.push(object(route, dev)),
                Err(e) if e.errno == Some(libc::EEXIST) => {
                    return Err(TunnelError::Profile {
                        field: field.clone(),
                        reason: format!("a route to {} through another interface already exists", route.dst),
                        fix: fix.into(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !not_ours.is_empty() {
            self.record.objects.retain(|o| !not_ours.contains(o));
            self.records.write(&self.record).map_err(TunnelError::Record)?;
        }
        Ok(())
    }

    /// Keeps every change; the record stays on disk while the tunnel is up.
    pub fn commit(self) -> Record {
        self.record
    }

    /// Undoes every change in reverse and removes the record.
    pub async fn roll_back(self) {
        undo(self.netlink, self.records, &self.record).await;
    }
}

/// Undoes a record's objects in reverse and removes the record. Failures are logged: an object that cannot be
/// removed now must not keep the others from being removed.
pub async fn undo(netlink: &Netlink, records: &Records, record: &Record) {
    let mut clean = true;
    // What the other tunnels hold; unreadable, nothing shared is undone rather than break another tunnel.
    let others = records.load_all().map(|all| all.into_iter().filter(|r| r.name != record.name).collect::<Vec<_>>());
    for object in record.objects.iter().rev() {
        let shared = match &others {
            Ok(others) => others.iter().flat_map(|r| &r.objects).any(|o| o.same_shared(object)),
            Err(e) if object.shareable() => {
                tracing::warn!("tunnel {}: cannot read the other records, keeping {object:?}: {e}", record.name);
                true
            }
            Err(_) => false,
        };
        if shared {
            tracing::debug!("tunnel {}: leaving {object:?} to the other tunnels that need it", record.name);
            continue;
        }
        if let Err(e) = object.undo(netlink).await {
            tracing::warn!("tunnel {}: could not undo {object:?}: {e}", record.name);
            clean = false;
        }
    }
    if !clean {
        tracing::warn!("tunnel {}: keeping its record so that the next start tries again", record.name);
        return;
    }
    if let Err(e) = records.remove(&record.name) {
        tracing::warn!("tunnel {}: could not remove its record: {e}", record.name);
    }
}
