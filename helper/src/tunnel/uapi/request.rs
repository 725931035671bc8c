//! Requests of WireGuard's cross-platform userspace API (the protocol `wg` speaks on
//! `/var/run/wireguard/<interface>.sock`): `get=1`, or `set=1` and `key=value` lines, ended by a blank line.
//! Parsed into typed operations whole before anything is applied, with the `errno` the protocol answers for each
//! way a request can be wrong. Never panics on any input.

use std::net::SocketAddr;

use ipnet::IpNet;

/// The most bytes a request may have. Root only may connect, and `wg setconf` of a peer with 100,000 allowed IPs
/// is about 2.5 MB.
pub const MAX_REQUEST: usize = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Get,
    Set(SetDevice),
}

/// What a `set=1` asks of the device, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetDevice {
    pub private_key: Option<[u8; 32]>,
    pub listen_port: Option<u16>,
    /// `Some(0)` removes the mark.
    pub fwmark: Option<u32>,
    pub replace_peers: bool,
    pub peers: Vec<SetPeer>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetPeer {
    pub public_key: [u8; 32],
    pub remove: bool,
    pub update_only: bool,
    /// All zeros removes the preshared key.
    pub preshared_key: Option<[u8; 32]>,
    pub endpoint: Option<SocketAddr>,
    pub persistent_keepalive_interval: Option<u16>,
    pub replace_allowed_ips: bool,
    pub allowed_ips: Vec<AllowedIp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedIp {
    Add(IpNet),
    /// `allowed_ip=-PREFIX`, which newer `wg` sends to remove one.
    Remove(IpNet),
}

/// Why a request is refused, as the protocol's `errno`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not `get=1` or `set=1`, a line without `=`, or not UTF-8: EPROTO.
    #[error("not a request of the userspace API: {0}")]
    Protocol(String),
    /// A key or value the protocol does not allow where it stands: EINVAL.
    #[error("invalid {key}: {value}")]
    Invalid { key: String, value: String },
}

impl RequestError {
    pub fn errno(&self) -> i32 {
        match self {
            Self::Protocol(_) => libc::EPROTO,
            Self::Invalid { .. } => libc::EINVAL,
        }
    }
}

/// Parses one request: its text up to (and without) the blank line that ends it.
pub fn parse(text: &[u8]) -> Result<Request, RequestError> {
    let text = std::str::from_utf8(text).map_err(|_| RequestError::Protocol("not UTF-8".into()))?;
    let mut lines = text.split('\n').filter(|l| !l.is_empty());
    match lines.next() {
        Some("get=1") => match lines.next() {
            None => Ok(Request::Get),
            Some(extra) => Err(RequestError::Protocol(format!("`{}` after get=1", shorten(extra)))),
        },
        Some("set=1") => set(lines).map(Request::Set),
        Some(other) => Err(RequestError::Protocol(format!("`{}` is not get=1 or set=1", shorten(other)))),
        None => Err(RequestError::Protocol("empty request".into())),
    }
}

fn set<'a>(lines: impl Iterator<Item = &'a str>) -> Result<SetDevice, RequestError> {
    let mut device = SetDevice::default();
    for line in lines {
        let (key, value) =
            line.split_once('=').ok_or_else(|| RequestError::Protocol(format!("`{}` has no =", shorten(line))))?;
        let invalid = || RequestError::Invalid { key: key.to_owned(), value: shorten(value) };
        let flag = || match value {
            "true" => Ok(true),
            _ => Err(invalid()),
        };
        // Device keys come before the first public_key; everything after it is about that peer.
        let Some(peer) = device.peers.last_mut().filter(|_| key != "public_key") else {
            match key {
                "private_key" => device.private_key = Some(hex_key(value).ok_or_else(invalid)?),
                "listen_port" => device.listen_port = Some(value.parse().map_err(|_| invalid())?),
                "fwmark" => device.fwmark = Some(value.parse().map_err(|_| invalid())?),
                "replace_peers" => device.replace_peers = flag()?,
                "public_key" => {
                    device
                        .peers
                        .push(SetPeer { public_key: hex_key(value).ok_or_else(invalid)?, ..SetPeer::default() });
                }
                _ => return Err(invalid()),
            }
            continue;
        };
        match key {
            "remove" => peer.remove = flag()?,
            "update_only" => peer.update_only = flag()?,
            "preshared_key" => peer.preshared_key = Some(hex_key(value).ok_or_else(invalid)?),
            "endpoint" => peer.endpoint = Some(value.parse().map_err(|_| invalid())?),
            "persistent_keepalive_interval" => {
                peer.persistent_keepalive_interval = Some(value.parse().map_err(|_| invalid())?);
            }
            "replace_allowed_ips" => peer.replace_allowed_ips = flag()?,
            "allowed_ip" => {
                let (remove, net) = match value.strip_prefix('-') {
                    Some(net) => (true, net),
                    None => (false, value),
                };
                let net: IpNet = net.parse().map_err(|_| invalid())?;
                peer.allowed_ips.push(if remove {
                    AllowedIp::Remove(net.trunc())
                } else {
                    AllowedIp::Add(net.trunc())
                });
            }
            // Only version 1 exists; `wg` sends it with every peer.
            "protocol_version" if value == "1" => {}
            _ => return Err(invalid()),
        }
    }
    Ok(device)
}

/// A key as the protocol writes it: 64 lowercase or uppercase hex digits.
fn hex_key(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |b: u8| char::from(b).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

/// A value as it may appear in an error: at most 64 characters of it.
fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a";

    #[test]
    fn reads_what_wg_setconf_sends() {
        let text = format!(
            "set=1\nprivate_key={KEY}\nlisten_port=51820\nfwmark=0\nreplace_peers=true\npublic_key={KEY}\n\
             protocol_version=1\nreplace_allowed_ips=true\nallowed_ip=10.8.0.2/32\nallowed_ip=-10.8.0.3/32\n\
             endpoint=[2001:db8::1]:51820\npersistent_keepalive_interval=25\npublic_key={KEY}\nremove=true\n"
        );
        let Request::Set(d) = parse(text.as_bytes()).unwrap() else { panic!() };
        assert_eq!((d.listen_port, d.fwmark, d.replace_peers), (Some(51820), Some(0), true));
        assert_eq!(d.private_key.unwrap()[0], 0xe8);
        assert_eq!(d.peers.len(), 2);
        let p = &d.peers[0];
        assert_eq!(
            p.allowed_ips,
            vec![AllowedIp::Add("10.8.0.2/32".parse().unwrap()), AllowedIp::Remove("10.8.0.3/32".parse().unwrap())]
        );
        assert_eq!((p.endpoint.unwrap().port(), p.persistent_keepalive_interval), (51820, Some(25)));
        assert!(d.peers[1].remove);
        assert_eq!(parse(b"get=1\n").unwrap(), Request::Get);
    }

    #[test]
    fn mistakes_get_the_errno_wg_expects() {
        let cases: [(&[u8], i32); 7] = [
            (b"", libc::EPROTO),
            (b"hello\n", libc::EPROTO),
            (b"get=1\nlisten_port=1\n", libc::EPROTO),
            (b"set=1\nlisten_port=70000\n", libc::EINVAL),
            (b"set=1\nallowed_ip=10.0.0.0/8\n", libc::EINVAL),
            (b"set=1\nprivate_key=abc\n", libc::EINVAL),
            (b"set=1\n\xff\n", libc::EPROTO),
        ];
        for (text, errno) in cases {
            assert_eq!(parse(text).map_err(|e| e.errno()), Err(errno), "{:?}", String::from_utf8_lossy(text));
        }
    }
}
