//! An in-memory kernel behind the [`Netlink`](super::Netlink) facade, for unit tests of what the tunnel layer
//! makes, changes and undoes, without root: links, addresses, routes, rules, neighbour and FDB entries and
//! sysctls, with the kernel's answers where the helper depends on them (EEXIST for a route to the same
//! destination in the same table, ENODEV for a missing link), and failures a test may ask for.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

use super::{Link, LinkAddress, NetlinkError, Route, Rule, Vxlan};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeLink {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub mtu: u32,
    pub up: bool,
    pub mac: Option<[u8; 6]>,
    pub master: Option<u32>,
}

/// Everything the fake kernel holds, compared whole by tests ("exactly as before").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeKernel {
    pub links: Vec<FakeLink>,
    pub addresses: Vec<LinkAddress>,
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
    pub neighbours: Vec<(u32, IpAddr, [u8; 6])>,
    pub fdb: Vec<(u32, [u8; 6], IpAddr)>,
    pub sysctls: BTreeMap<String, String>,
    /// Destinations whose routes the kernel refuses (EPERM), for tests of rollback.
    pub refuse_routes: HashSet<IpNet>,
    next_index: u32,
}

fn refused(op: impl Into<String>, errno: i32) -> NetlinkError {
    NetlinkError { op: op.into(), message: std::io::Error::from_raw_os_error(errno).to_string(), errno: Some(errno) }
}

impl FakeKernel {
    /// A host with loopback and an underlay link `eth0` holding `underlay` (an address with its prefix).
    pub fn host(underlay: &str) -> Self {
        let mut k = Self { next_index: 1, ..Self::default() };
        k.add_link("lo", None, 65536);
        let eth = k.add_link("eth0", Some("veth"), 1500);
        k.addresses.push(LinkAddress { index: eth, net: underlay.parse().expect("an address with its prefix") });
        for key in ["net/ipv4/conf/all/src_valid_mark", "net/ipv4/conf/eth0/forwarding"] {
            k.sysctls.insert(key.into(), "0".into());
        }
        k
    }

    /// What the kernel holds, without the fake's own bookkeeping (failures asked for, the next link index): the
    /// thing to compare before and after.
    pub fn state(&self) -> FakeKernel {
        FakeKernel { refuse_routes: HashSet::new(), next_index: 0, ..self.clone() }
    }

    /// Adds a link, as another program or a TUN device's open would.
    pub fn add_link(&mut self, name: &str, kind: Option<&str>, mtu: u32) -> u32 {
        let index = self.next_index.max(1);
        self.next_index = index + 1;
        self.links.push(FakeLink {
            index,
            name: name.into(),
            kind: kind.map(str::to_owned),
            mtu,
            up: false,
            mac: None,
            master: None,
        });
        self.sysctls.insert(format!("net/ipv4/conf/{name}/forwarding"), "0".into());
        self.sysctls.insert(format!("net/ipv6/conf/{name}/forwarding"), "0".into());
        index
    }

    fn index_of(&self, index: u32) -> Result<usize, NetlinkError> {
        self.links.iter().position(|l| l.index == index).ok_or_else(|| refused("looking up a link", libc::ENODEV))
    }

    pub fn link(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
        Ok(self.links.iter().find(|l| l.name == name).map(|l| Link { index: l.index, kind: l.kind.clone() }))
    }

    pub fn add_vxlan(&mut self, v: &Vxlan) -> Result<(), NetlinkError> {
        if self.links.iter().any(|l| l.name == v.name) {
            return Err(refused(format!("creating the VXLAN link {}", v.name), libc::EEXIST));
        }
        self.index_of(v.underlay)?;
        let index = self.add_link(&v.name, Some("vxlan"), u32::from(v.mtu));
        let at = self.index_of(index)?;
        self.links[at].mac = Some(v.mac);
        Ok(())
    }

    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<(), NetlinkError> {
        let at = self.index_of(index)?;
        self.links[at].mac = Some(mac);
        Ok(())
    }

    pub fn link_name(&self, index: u32) -> Result<Option<String>, NetlinkError> {
        Ok(self.links.iter().find(|l| l.index == index).map(|l| l.name.clone()))
    }

    pub fn mtu(&self, index: u32) -> Result<Option<u32>, NetlinkError> {
        Ok(self.links.iter().find(|l| l.index == index).map(|l| l.mtu))
    }

    pub fn addresses(&self) -> Result<Vec<LinkAddress>, NetlinkError> {
        Ok(self.addresses.clone())
    }

    pub fn set_master(&mut self, index: u32, master: u32) -> Result<(), NetlinkError> {
        self.index_of(master)?;
        let at = self.index_of(index)?;
        self.links[at].master = Some(master);
        Ok(())
    }

    pub fn add_fdb(&mut self, index: u32, mac: [u8; 6], dst: IpAddr) -> Result<(), NetlinkError> {
        self.index_of(index)?;
        if !self.fdb.contains(&(index, mac, dst)) {
            self.fdb.push((index, mac, dst));
        }
        Ok(())
    }

    pub fn delete_fdb(&mut self, index: u32, mac: [u8; 6], dst: IpAddr) -> Result<(), NetlinkError> {
        self.fdb.retain(|e| *e != (index, mac, dst));
        Ok(())
    }

    pub fn add_neighbour(&mut self, index: u32, ip: IpAddr, mac: [u8; 6]) -> Result<(), NetlinkError> {
        self.index_of(index)?;
        self.neighbours.retain(|(i, a, _)| (*i, *a) != (index, ip));
        self.neighbours.push((index, ip, mac));
        Ok(())
    }

    pub fn delete_neighbour(&mut self, index: u32, ip: IpAddr) -> Result<(), NetlinkError> {
        self.neighbours.retain(|(i, a, _)| (*i, *a) != (index, ip));
        Ok(())
    }

    pub fn set_up(&mut self, index: u32, mtu: u16) -> Result<(), NetlinkError> {
        let at = self.index_of(index)?;
        self.links[at].mtu = u32::from(mtu);
        self.links[at].up = true;
        Ok(())
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u16) -> Result<(), NetlinkError> {
        let at = self.index_of(index)?;
        self.links[at].mtu = u32::from(mtu);
        Ok(())
    }

    /// Deleting a link takes its addresses, routes, neighbours and forwarding entries with it, as the kernel does.
    pub fn delete_link(&mut self, index: u32) -> Result<(), NetlinkError> {
        let Ok(at) = self.index_of(index) else { return Ok(()) };
        let name = self.links.remove(at).name;
        self.addresses.retain(|a| a.index != index);
        self.routes.retain(|r| r.index != index);
        self.neighbours.retain(|n| n.0 != index);
        self.fdb.retain(|f| f.0 != index);
        self.sysctls.retain(|k, _| !k.contains(&format!("/conf/{name}/")));
        Ok(())
    }

    pub fn add_address(&mut self, index: u32, net: IpNet) -> Result<(), NetlinkError> {
        self.index_of(index)?;
        let address = LinkAddress { index, net };
        if !self.addresses.contains(&address) {
            self.addresses.push(address);
        }
        Ok(())
    }

    pub fn delete_address(&mut self, index: u32, net: IpNet) -> Result<(), NetlinkError> {
        self.addresses.retain(|a| *a != LinkAddress { index, net });
        Ok(())
    }

    /// As the kernel: one route per destination and table (another through another link is EEXIST).
    pub fn add_route(&mut self, route: &Route) -> Result<bool, NetlinkError> {
        self.index_of(route.index)?;
        if self.refuse_routes.contains(&route.dst) {
            return Err(refused(format!("adding a route to {}", route.dst), libc::EPERM));
        }
        match self.routes.iter().find(|r| r.dst == route.dst && r.table == route.table) {
            Some(r) if r.index == route.index => Ok(false),
            Some(_) => Err(NetlinkError {
                op: format!("adding a route to {}", route.dst),
                message: "a route to it through another interface already exists".into(),
                errno: Some(libc::EEXIST),
            }),
            None => {
                self.routes.push(route.clone());
                Ok(true)
            }
        }
    }

    pub fn delete_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        self.routes.retain(|r| !(r.dst == route.dst && r.table == route.table && r.index == route.index));
        Ok(())
    }

    pub fn add_rule(&mut self, rule: &Rule) -> Result<(), NetlinkError> {
        if self.rules.contains(rule) {
            return Err(refused(format!("adding the policy rule for table {}", rule.table), libc::EEXIST));
        }
        self.rules.push(rule.clone());
        Ok(())
    }

    pub fn delete_rule(&mut self, rule: &Rule) -> Result<(), NetlinkError> {
        self.rules.retain(|r| r != rule);
        Ok(())
    }

    pub fn table_in_use(&self, table: u32) -> Result<bool, NetlinkError> {
        Ok(self.routes.iter().any(|r| r.table == table))
    }

    pub fn route_keys(&self, v6: bool) -> Result<HashSet<(u32, IpNet, u32)>, NetlinkError> {
        Ok(self.routes.iter().filter(|r| r.dst.addr().is_ipv6() == v6).map(|r| (r.table, r.dst, r.index)).collect())
    }

    pub fn routes_to(&self, dst: IpNet, table: u32) -> Result<Vec<u32>, NetlinkError> {
        Ok(self.routes.iter().filter(|r| r.dst == dst && r.table == table).map(|r| r.index).collect())
    }

    /// The longest-prefix route of the main table that holds `dst`: its interface, and its gateway.
    pub fn way_to(&self, dst: std::net::IpAddr) -> Result<Option<super::Way>, NetlinkError> {
        let best = self
            .routes
            .iter()
            .filter(|r| r.table == super::MAIN_TABLE && r.dst.contains(&dst))
            .max_by_key(|r| r.dst.prefix_len());
        Ok(best.map(|r| super::Way { interface: Some(r.index), source: None, gateway: r.via }))
    }

    pub fn read_sysctl(&self, key: &str) -> std::io::Result<String> {
        self.sysctls.get(key).cloned().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    pub fn write_sysctl(&mut self, key: &str, value: &str) -> std::io::Result<()> {
        match self.sysctls.get_mut(key) {
            Some(v) => {
                *v = value.into();
                Ok(())
            }
            None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
    }
}

/// A TUN device's link in the fake kernel, there while this lives, as a kernel TUN is while its handle is open.
#[derive(Debug)]
pub struct FakeTun {
    kernel: Arc<Mutex<FakeKernel>>,
    index: u32,
}

impl FakeTun {
    pub fn create(kernel: &Arc<Mutex<FakeKernel>>, name: &str, mtu: u16) -> std::io::Result<Self> {
        let mut k = kernel.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if k.links.iter().any(|l| l.name == name) {
            return Err(std::io::Error::from_raw_os_error(libc::EBUSY));
        }
        let index = k.add_link(name, Some("tun"), mtu.into());
        Ok(Self { kernel: kernel.clone(), index })
    }
}

impl Drop for FakeTun {
    fn drop(&mut self) {
        let mut k = self.kernel.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = k.delete_link(self.index);
    }
}
