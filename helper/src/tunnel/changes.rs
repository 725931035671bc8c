//! Applying a tunnel's system changes as one transaction: each is recorded before it is made, and a failure
//! undoes all of them in reverse, so a failed `up` leaves nothing behind.

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

    pub fn records(&self) -> &Records {
        self.records
    }

    /// Notes an object about to be created.
    pub fn will_create(&mut self, object: Object) -> std::io::Result<()> {
        self.record.objects.push(object);
        self.records.write(&self.record)
    }

    /// Forgets the last object noted: it turned out to exist already and is not ours.
    pub fn not_created(&mut self) -> std::io::Result<()> {
        self.record.objects.pop();
        self.records.write(&self.record)
    }

    /// Sets a sysctl (a key under /proc/sys) for as long as the tunnel is up.
    pub fn set_sysctl(&mut self, key: &str, value: &str) -> Result<(), culvert_core::ipc::IpcError> {
        use crate::system::sysctl;
        let failed = |e: std::io::Error| culvert_core::ipc::IpcError::System {
            op: format!("setting sysctl {key}"),
            message: e.to_string(),
        };
        let now = sysctl::read(key).map_err(failed)?;
        let probe = Object::Sysctl { key: key.into(), old: String::new() };
        // Another tunnel set it already: share its record of what the machine had, so whichever goes last
        // restores that.
        let shared =
            self.records.shared_elsewhere(&self.record.name, &probe).map_err(super::userspace::record_error)?;
        let old = match shared.into_iter().next() {
            Some(Object::Sysctl { old, .. }) => old,
            _ if now == value => return Ok(()),
            _ => now.clone(),
        };
        self.will_create(Object::Sysctl { key: key.into(), old }).map_err(super::userspace::record_error)?;
        if now != value {
            sysctl::write(key, value).map_err(failed)?;
        }
        Ok(())
    }

    /// Adds a policy rule, recorded first. The same rule already there is shared when another tunnel recorded it
    /// (full tunnels all need `suppress_prefixlength 0`), and otherwise not ours and not recorded.
    pub async fn add_rule(&mut self, rule: &crate::system::netlink::Rule) -> Result<(), culvert_core::ipc::IpcError> {
        use super::userspace::{record_error, system};
        let object = Object::Rule(rule.clone());
        self.will_create(object.clone()).map_err(record_error)?;
        match self.netlink.add_rule(rule).await {
            Ok(()) => Ok(()),
            Err(e) if e.errno == Some(libc::EEXIST) => {
                if self.records.shared_elsewhere(&self.record.name, &object).map_err(record_error)?.is_empty() {
                    self.not_created().map_err(record_error)?;
                }
                Ok(())
            }
            Err(e) => Err(system(e)),
        }
    }

    /// Adds a route through link `dev`, recorded first. An identical route already there is not ours and is not
    /// recorded; one to the same destination through another interface is a conflict with the profile's
    /// `field`, reported with `fix`.
    pub async fn add_route(
        &mut self,
        route: &crate::system::netlink::Route,
        dev: &str,
        field: &str,
        fix: &str,
    ) -> Result<(), culvert_core::ipc::IpcError> {
        use super::userspace::{record_error, system};
        let object =
            Object::Route { dst: route.dst, dev: dev.into(), table: route.table, via: route.via, onlink: route.onlink };
        self.will_create(object).map_err(record_error)?;
        match self.netlink.add_route(route).await {
            Ok(true) => Ok(()),
            Ok(false) => self.not_created().map_err(record_error),
            Err(e) if e.errno == Some(libc::EEXIST) => Err(culvert_core::ipc::IpcError::InvalidProfile {
                field: field.into(),
                reason: format!("a route to {} through another interface already exists", route.dst),
                fix: fix.into(),
            }),
            Err(e) => Err(system(e)),
        }
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
