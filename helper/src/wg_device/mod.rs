//! `culvert-wg`: one WireGuard device that only WireGuard's userspace API configures, as wireguard-go's and
//! boringtun's are, so that `wg` and `wg-quick` drive Culvert's engine unchanged.
//!
//! The device starts empty: a TUN device with no address, and nothing else. Each `set=1` is applied whole, in
//! the protocol's order ([`crate::tunnel::uapi::set`]), to the configuration it describes; once that has a
//! private key, the engine runs on a UDP socket bound where the process started (so that the device may be moved
//! to another namespace and still reach its peers through this one). Peers that stay keep their sessions, a
//! changed port rebinds the socket, and no address, route or rule is ever added: that is wg-quick's part.

use std::sync::{Arc, Mutex, MutexGuard};

use culvert_core::keys::SecretKey;
use culvert_core::profile::{Endpoint, Table, WireguardTunnel};
use ipnet::IpNet;

use crate::dataplane::counters::TunnelCounters;
use crate::dataplane::live::Live;
use crate::dataplane::sampler::Sampler;
use crate::dataplane::tun_io;
use crate::dataplane::udp_io::{self, Socket};
use crate::dataplane::wg_core::{ResolvedEndpoints, WgCore};
use crate::tunnel::Datapath;
use crate::tunnel::uapi::UapiSource;
use crate::tunnel::uapi::request::{AllowedIp, SetDevice};
use crate::tunnel::uapi::set::apply_set;

/// The engine's buffers take packets of any MTU the device may be given (`ip link set mtu`, up to 64 KiB): the
/// device's MTU is not this process's to know once the device has moved to another namespace. Buffers this
/// large cost address space, not memory: the kernel maps in only the pages packets touch (system::memory).
pub const ENGINE_MTU: u16 = u16::MAX;

/// wireguard-go's default MTU for a new device; wg-quick sets its own.
pub const DEFAULT_MTU: u16 = 1420;

/// The device and what the API configured on it.
#[derive(Debug)]
pub struct WgDevice {
    interface: String,
    device: tun_io::Device,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// What the API configured. Its private key means nothing while `has_key` is false.
    config: WireguardTunnel,
    has_key: bool,
    /// The engine, from the first private key on.
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    live: Arc<Live<WgCore>>,
    datapath: Datapath,
}

impl WgDevice {
    /// Creates the TUN device `interface`, down and with no address, as wireguard-go does.
    pub fn create(interface: &str) -> std::io::Result<Self> {
        let device = tun_io::create(interface, DEFAULT_MTU, false)?;
        let config = WireguardTunnel {
            interface: Some(interface.to_owned()),
            private_key: SecretKey::from_bytes([0; 32]),
            address: vec![],
            listen_port: None,
            mtu: None,
            dns: vec![],
            dns_search: vec![],
            table: Table::Off,
            fwmark: None,
            kill_switch: false,
            allow_lan: false,
            peers: vec![],
        };
        let state = Mutex::new(State { config, has_key: false, running: None });
        Ok(Self { interface: interface.to_owned(), device, state })
    }

    /// Whether the device was deleted.
    pub fn gone(&self) -> bool {
        self.device.gone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies a `set=1` whole, or nothing of it: the answer is the protocol's errno (0: done).
    pub fn set(&self, set: &SetDevice) -> i32 {
        match self.try_set(set) {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!("({}) {e}", self.interface);
                e.raw_os_error().unwrap_or(libc::EIO)
            }
        }
    }

    fn try_set(&self, set: &SetDevice) -> std::io::Result<()> {
        let mut state = self.state();
        let bound = state.running.as_ref().and_then(|r| r.datapath.socket.local_port().ok()).unwrap_or(0);
        let mut next = apply_set(&state.config, bound, set);
        take_over_allowed_ips(&mut next, set);
        let has_key = set.private_key.map_or(state.has_key, |key| key != [0; 32]);
        if !has_key {
            if let Some(mut running) = state.running.take() {
                std::thread::spawn(running.datapath.stop());
            }
            (state.config, state.has_key) = (next, false);
            return Ok(());
        }
        let endpoints = endpoints(&next);
        match &mut state.running {
            None => {
                let socket = bind(next.listen_port.unwrap_or(0), next.fwmark)?;
                let core = WgCore::new(&next, &endpoints);
                core.set_listen_port(socket.local_port()?);
                let live = Arc::new(Live::new(core));
                let spawn = crate::tunnel::userspace::spawner(
                    &self.interface,
                    live.clone(),
                    Arc::new(TunnelCounters::default()),
                    Arc::new(Sampler::new(false, crate::clock::now_ms)),
                    self.device.clone(),
                );
                let datapath = Datapath::start(spawn, socket, ENGINE_MTU)?;
                tracing::debug!("({}) engine started", self.interface);
                state.running = Some(Running { live, datapath });
            }
            Some(running) => {
                // Everything that can fail comes first: a port in use changes nothing.
                if let Some(port) = set.listen_port.filter(|p| *p != bound) {
                    let socket = bind(port, next.fwmark)?;
                    running.datapath.restart(socket, ENGINE_MTU);
                } else if set.fwmark.is_some() {
                    running.datapath.socket.set_mark(next.fwmark.unwrap_or(0))?;
                }
                let (core, notes) = running.live.load().next(&next, &endpoints);
                core.set_listen_port(running.datapath.socket.local_port()?);
                // A peer that stays keeps the endpoint it roamed to, unless this request names one.
                for op in set.peers.iter().filter(|op| !op.remove) {
                    if let (Some(to), Some(peer)) = (op.endpoint, core.peer(&op.public_key)) {
                        peer.set_endpoint(to);
                    }
                }
                running.live.store(core);
                for note in notes {
                    tracing::debug!("({}) {note}", self.interface);
                }
            }
        }
        (state.config, state.has_key) = (next, true);
        Ok(())
    }
}

/// An allowed IP belongs to one peer: given to another, it moves there, as in every WireGuard implementation.
fn take_over_allowed_ips(config: &mut WireguardTunnel, set: &SetDevice) {
    let mut claimed: std::collections::HashMap<IpNet, [u8; 32]> = std::collections::HashMap::new();
    for op in set.peers.iter().filter(|op| !op.remove) {
        for change in &op.allowed_ips {
            if let AllowedIp::Add(net) = change {
                claimed.insert(*net, op.public_key);
            }
        }
    }
    if claimed.is_empty() {
        return;
    }
    for peer in &mut config.peers {
        peer.allowed_ips.retain(|net| claimed.get(net).is_none_or(|owner| *owner == peer.public_key.0));
    }
}

/// The peers' endpoints: the API only ever gives addresses.
fn endpoints(config: &WireguardTunnel) -> ResolvedEndpoints {
    config
        .peers
        .iter()
        .map(|p| match &p.endpoint {
            Some(Endpoint::Addr(addr)) => Some(*addr),
            _ => None,
        })
        .collect()
}

/// The device's socket, in the namespace where the process started: dual-stack, so that a peer's endpoint may
/// move between IPv4 and IPv6; IPv4 alone where the host has no IPv6.
fn bind(port: u16, fwmark: Option<u32>) -> std::io::Result<Arc<Socket>> {
    udp_io::bind(port, true, fwmark).or_else(|e| match e.raw_os_error() {
        Some(libc::EAFNOSUPPORT) => udp_io::bind(port, false, fwmark),
        _ => Err(e),
    })
}

impl UapiSource for WgDevice {
    fn uapi_get(&self, out: &mut String) {
        let state = self.state();
        match &state.running {
            Some(running) => crate::tunnel::uapi::get(&running.live.load(), out),
            None => configured(&state.config, out),
        }
    }
}

/// A `get=1` answer for a device with no private key (so no engine, no sessions): what was configured.
fn configured(config: &WireguardTunnel, out: &mut String) {
    use crate::tunnel::uapi::hex;
    use std::fmt::Write as _;
    if let Some(port) = config.listen_port {
        let _ = writeln!(out, "listen_port={port}");
    }
    if let Some(mark) = config.fwmark {
        let _ = writeln!(out, "fwmark={mark}");
    }
    for p in &config.peers {
        let _ = writeln!(out, "public_key={}", hex(&p.public_key.0));
        if let Some(psk) = &p.preshared_key {
            let _ = writeln!(out, "preshared_key={}", hex(psk.as_bytes()));
        }
        let _ = writeln!(out, "protocol_version=1");
        if let Some(Endpoint::Addr(addr)) = &p.endpoint {
            let _ = writeln!(out, "endpoint={addr}");
        }
        let _ = writeln!(out, "last_handshake_time_sec=0\nlast_handshake_time_nsec=0\nrx_bytes=0\ntx_bytes=0");
        let _ = writeln!(out, "persistent_keepalive_interval={}", p.persistent_keepalive.unwrap_or(0));
        for net in &p.allowed_ips {
            let _ = writeln!(out, "allowed_ip={net}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::uapi::request::{Request, parse};
    use culvert_core::keys::PublicKey;
    use culvert_core::profile::WireguardPeer;

    fn peer(key: u8, nets: &[&str]) -> WireguardPeer {
        WireguardPeer {
            public_key: PublicKey([key; 32]),
            preshared_key: None,
            allowed_ips: nets.iter().map(|n| n.parse().unwrap()).collect(),
            endpoint: None,
            persistent_keepalive: None,
        }
    }

    #[test]
    fn an_allowed_ip_given_to_another_peer_moves_there() {
        let mut config = WireguardTunnel {
            interface: None,
            private_key: SecretKey::from_bytes([1; 32]),
            address: vec![],
            listen_port: None,
            mtu: None,
            dns: vec![],
            dns_search: vec![],
            table: Table::Off,
            fwmark: None,
            kill_switch: false,
            allow_lan: false,
            peers: vec![peer(2, &["10.0.0.0/24", "10.0.1.0/24"]), peer(3, &["10.0.2.0/24"])],
        };
        let text = format!("set=1\npublic_key={}\nallowed_ip=10.0.1.0/24\n", "03".repeat(32));
        let Ok(Request::Set(set)) = parse(text.as_bytes()) else { panic!("a valid request") };
        config = apply_set(&config, 0, &set);
        take_over_allowed_ips(&mut config, &set);
        let nets = |i: usize| config.peers[i].allowed_ips.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(nets(0), ["10.0.0.0/24"]);
        assert_eq!(nets(1), ["10.0.2.0/24", "10.0.1.0/24"]);
    }
}
