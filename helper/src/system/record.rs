//! The record of what the helper created for each tunnel, kept in the state directory.
//!
//! Each object is recorded *before* it is created, so a crash at any point leaves a record that covers
//! everything that might exist. Undoing an object that does not exist is a no-op, which makes the record safe
//! to replay. A TUN device dies with the helper, but links, routes in other tables, rules, FDB entries,
//! sysctls and DNS changes do not, and the record is the one place a restarted helper learns about them.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::netlink::{Netlink, NetlinkError, Route, Rule};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub owner_uid: u32,
    pub interface: String,
    /// In the order they were created; undone in reverse.
    pub objects: Vec<Object>,
}

impl Record {
    /// A full tunnel's mark, which its `not fwmark` rule holds: the mark of the tunnel's own packets.
    pub fn full_tunnel_mark(&self) -> Option<u32> {
        self.objects.iter().find_map(|o| match o {
            Object::Rule(r) if r.invert => r.fwmark,
            _ => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Object {
    /// A link the helper created, removed only if a link of that name and kind still exists.
    Link { name: String, kind: String },
    /// A route through the interface `dev`, optionally via a next hop.
    Route {
        dst: IpNet,
        dev: String,
        table: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via: Option<std::net::IpAddr>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        onlink: bool,
    },
    /// A bridge forwarding entry on `dev`: frames for `mac` go to the VTEP `dst` (all-zero `mac`: flooding).
    Fdb { dev: String, mac: culvert_core::mac::MacAddr, dst: std::net::IpAddr },
    /// A permanent neighbour entry on `dev`: `ip` is at `mac` (absent in records of helpers before it was kept).
    Neighbour {
        dev: String,
        ip: std::net::IpAddr,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<culvert_core::mac::MacAddr>,
    },
    /// A policy routing rule.
    Rule(Rule),
    /// A sysctl (path under /proc/sys, such as `net/ipv4/conf/all/src_valid_mark`) and the value to restore.
    Sysctl { key: String, old: String },
    /// DNS set for the tunnel.
    Dns(super::dns::DnsChange),
    /// A Unix socket the helper listens on (WireGuard's userspace API), removed once nothing answers on it.
    UnixSocket { path: PathBuf },
    /// An nftables table of the `ip` family that is Culvert's own (an overlay's NAT), removed whole.
    NftTable { name: String },
}

impl Object {
    /// Whether this object is a system setting that several tunnels can need at once: a sysctl (by key) or a
    /// policy rule (such as the `suppress_prefixlength 0` rule of every full tunnel). Each tunnel that needs it
    /// records it; only the last one to go removes it.
    pub fn shareable(&self) -> bool {
        matches!(self, Self::Sysctl { .. } | Self::Rule(_))
    }

    /// Whether `self` and `other` are the same shareable setting.
    pub fn same_shared(&self, other: &Object) -> bool {
        match (self, other) {
            (Self::Sysctl { key, .. }, Self::Sysctl { key: other, .. }) => key == other,
            (Self::Rule(a), Self::Rule(b)) => a == b,
            _ => false,
        }
    }

    /// Makes the object, for the objects a live change adds ([`crate::tunnel::plan::planned`]): `Ok(false)` when
    /// an identical one was there already (and so is not ours), an error when the kernel refuses it.
    pub async fn make(&self, netlink: &Netlink) -> Result<bool, NetlinkError> {
        let index = |dev: &str| {
            let dev = dev.to_owned();
            async move {
                netlink.link(&dev).await?.map(|l| l.index).ok_or_else(|| NetlinkError {
                    op: format!("looking up link {dev}"),
                    message: "it does not exist".into(),
                    errno: Some(libc::ENODEV),
                })
            }
        };
        match self {
            Object::Route { dst, dev, table, via, onlink } => {
                let route = Route { dst: *dst, index: index(dev).await?, table: *table, via: *via, onlink: *onlink };
                netlink.add_route(&route).await
            }
            Object::Fdb { dev, mac, dst } => netlink.add_fdb(index(dev).await?, mac.0, *dst).await.map(|()| true),
            Object::Neighbour { dev, ip, mac: Some(mac) } => {
                netlink.add_neighbour(index(dev).await?, *ip, mac.0).await.map(|()| true)
            }
            Object::Rule(rule) => match netlink.add_rule(rule).await {
                Err(e) if e.errno == Some(libc::EEXIST) => Ok(false),
                other => other.map(|()| true),
            },
            other => Err(NetlinkError {
                op: "making a recorded object".into(),
                message: format!("{other:?} is not made by a live change"),
                errno: None,
            }),
        }
    }

    /// Removes the object if it is still there.
    pub async fn undo(&self, netlink: &Netlink) -> Result<(), NetlinkError> {
        match self {
            Object::Link { name, kind } => match netlink.link(name).await? {
                Some(link) if link.kind.as_deref() == Some(kind) => netlink.delete_link(link.index).await,
                Some(link) => {
                    tracing::warn!(
                        "leaving link {name} alone: it is a {:?} link now, not the {kind} link Culvert made",
                        link.kind
                    );
                    Ok(())
                }
                None => Ok(()),
            },
            Object::Route { dst, dev, table, via, onlink } => match netlink.link(dev).await? {
                // Routes through a deleted link went with it.
                None => Ok(()),
                Some(link) => {
                    let route = Route { dst: *dst, index: link.index, table: *table, via: *via, onlink: *onlink };
                    netlink.delete_route(&route).await
                }
            },
            Object::Fdb { dev, mac, dst } => match netlink.link(dev).await? {
                None => Ok(()),
                Some(link) => netlink.delete_fdb(link.index, mac.0, *dst).await,
            },
            Object::Neighbour { dev, ip, .. } => match netlink.link(dev).await? {
                None => Ok(()),
                Some(link) => netlink.delete_neighbour(link.index, *ip).await,
            },
            Object::Rule(rule) => netlink.delete_rule(rule).await,
            Object::NftTable { name } => super::nft::apply(super::nft::removal(name)).await.map_err(|e| NetlinkError {
                op: format!("removing nftables table {name}"),
                message: e.message,
                errno: None,
            }),
            Object::Dns(change) => super::dns::undo(change).await.map_err(|e| NetlinkError {
                op: "restoring DNS".into(),
                message: e.to_string(),
                errno: e.raw_os_error(),
            }),
            Object::Sysctl { key, old } => match netlink.write_sysctl(key, old) {
                // The setting of an interface that is gone went with it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
            .map_err(|e| NetlinkError {
                op: format!("restoring sysctl {key}"),
                message: e.to_string(),
                errno: e.raw_os_error(),
            }),
            Object::UnixSocket { path } => {
                use super::socket_file::{Found, clear_stale};
                match clear_stale(path) {
                    Ok(Found::Free) => {}
                    Ok(Found::Live) => tracing::warn!("leaving {}: another process answers on it now", path.display()),
                    Ok(Found::NotASocket) => tracing::warn!("leaving {}: it is not a socket now", path.display()),
                    Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
                }
                Ok(())
            }
        }
    }
}

/// The records of all tunnels: one JSON file per tunnel under `<state dir>/tunnels/`.
#[derive(Debug, Clone)]
pub struct Records {
    dir: PathBuf,
}

impl Records {
    pub fn open(state_dir: &Path) -> io::Result<Self> {
        let dir = state_dir.join("tunnels");
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Writes the record atomically: a crash leaves either the old or the new record, never half of one.
    pub fn write(&self, record: &Record) -> io::Result<()> {
        let path = self.path(&record.name);
        let tmp = path.with_extension("json.tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(record).map_err(io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(&self.dir)?.sync_all()
    }

    /// Where overlay `name` keeps this host's WireGuard key: beside the records, root-only, kept across `down`
    /// so that the host keeps its identity.
    pub fn overlay_key(&self, name: &str) -> PathBuf {
        self.dir.with_file_name("keys").join(format!("{name}.key"))
    }

    /// Where the original resolver file is kept while tunnel `name` has rewritten it.
    pub fn dns_backup(&self, name: &str) -> PathBuf {
        self.dns_originals().join(format!("{name}.resolv.conf"))
    }

    /// The directory of the original resolver files kept while tunnels have rewritten it.
    pub fn dns_originals(&self) -> PathBuf {
        self.dir.parent().unwrap_or(&self.dir).join("dns")
    }

    pub fn remove(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The objects of every tunnel's record but `name`'s that `object` shares with (see [`Object::same_shared`]).
    pub fn shared_elsewhere(&self, name: &str, object: &Object) -> io::Result<Vec<Object>> {
        Ok(self
            .load_all()?
            .into_iter()
            .filter(|r| r.name != name)
            .flat_map(|r| r.objects)
            .filter(|o| o.same_shared(object))
            .collect())
    }

    /// The record of tunnel `name`, if there is one.
    pub fn load(&self, name: &str) -> io::Result<Option<Record>> {
        match fs::read(self.path(name)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every record on disk. Unreadable files are reported and skipped, not fatal: they must not keep the
    /// helper from starting.
    pub fn load_all(&self) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(record) => out.push(record),
                Err(e) => tracing::warn!("ignoring unreadable record {}: {e}", path.display()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::netlink::MAIN_TABLE;

    #[test]
    fn records_round_trip_and_disappear() {
        let dir = std::env::temp_dir().join(format!("culvert-records-{}", std::process::id()));
        let records = Records::open(&dir).unwrap();
        let r = Record {
            name: "lab".into(),
            owner_uid: 1000,
            interface: "cv-lab".into(),
            objects: vec![
                Object::Link { name: "cv-lab".into(), kind: "tun".into() },
                Object::Route {
                    dst: "10.9.0.0/24".parse().unwrap(),
                    dev: "cv-lab".into(),
                    table: MAIN_TABLE,
                    via: None,
                    onlink: false,
                },
            ],
        };
        records.write(&r).unwrap();
        fs::write(dir.join("tunnels/junk.json"), b"{not json").unwrap();
        assert_eq!(records.load_all().unwrap(), vec![r]);
        records.remove("lab").unwrap();
        records.remove("lab").unwrap();
        fs::remove_file(dir.join("tunnels/junk.json")).unwrap();
        assert!(records.load_all().unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
