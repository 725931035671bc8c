//! Tunnel profiles: the model, its TOML file format and its validation.
//!
//! A profile is named by its file's stem (`lab.toml` is tunnel `lab`), as wg-quick names its tunnels. The same
//! [`Profile::validate`] runs in every client before sending and in the helper on every `Up` it receives, because
//! the helper must not trust its callers.

mod error;
mod toml_file;
mod validate;

use std::net::SocketAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use error::{FileProblem, LoadError, ProfileError};
pub use toml_file::{load_file, name_from_path, parse_toml};

/// MTU of a tunnel device when the profile sets none: 1500 minus the worst-case WireGuard overhead over IPv6,
/// so that profiles stay valid when switched between kinds.
pub const DEFAULT_MTU: u16 = 1420;
/// Limits that keep one request from asking the helper for unbounded memory.
pub const MAX_PEERS: usize = 1024;
pub const MAX_PREFIXES: usize = 4096;
pub const MAX_NAME_LEN: usize = 64;

/// A named tunnel of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    #[serde(flatten)]
    pub tunnel: Tunnel,
}

/// The kind-specific part of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Tunnel {
    /// One raw IP packet per UDP datagram, unencrypted (flannel's udp backend, `socat TUN UDP`).
    Udp(UdpTunnel),
}

/// The kinds of tunnel, without their settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Udp,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
        }
    }

    /// Whether the kind encrypts what it carries (only WireGuard does).
    pub fn encrypted(self) -> bool {
        false
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpTunnel {
    /// Interface name; the tunnel's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Addresses on the tunnel device, with their prefix length.
    pub address: Vec<IpNet>,
    pub listen_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    pub peers: Vec<UdpPeer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpPeer {
    pub endpoint: SocketAddr,
    /// Destinations routed through the tunnel to this peer; also the sources accepted from it.
    pub allowed_ips: Vec<IpNet>,
}

impl Profile {
    pub fn kind(&self) -> Kind {
        match self.tunnel {
            Tunnel::Udp(_) => Kind::Udp,
        }
    }

    /// The interface the tunnel's device gets: `interface` if set, else the tunnel's name.
    pub fn interface(&self) -> &str {
        match &self.tunnel {
            Tunnel::Udp(u) => u.interface.as_deref().unwrap_or(&self.name),
        }
    }

    pub fn mtu(&self) -> u16 {
        match &self.tunnel {
            Tunnel::Udp(u) => u.mtu.unwrap_or(DEFAULT_MTU),
        }
    }

    /// Checks every rule a profile must meet; the first broken one is reported.
    pub fn validate(&self) -> Result<(), ProfileError> {
        validate::profile(self)
    }
}
