//! The TOML file format of profiles.
//!
//! Files are read into "raw" structs of plain strings and integers first, so that a bad value can be reported
//! with the path of its field rather than as a bare serde message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use super::{FileProblem, LoadError, Profile, ProfileError, Tunnel, UdpPeer, UdpTunnel};

/// The tunnel name a file gives: its stem, as with wg-quick (`lab.toml` is `lab`).
pub fn name_from_path(path: &Path) -> Option<String> {
    path.file_stem().and_then(|s| s.to_str()).map(str::to_owned)
}

/// Reads, parses and validates a profile file.
pub fn load_file(path: &Path) -> Result<Profile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.into(), source })?;
    let invalid = |error| LoadError::Invalid { path: PathBuf::from(path), error };
    let name = name_from_path(path).ok_or_else(|| {
        invalid(FileProblem::Field(ProfileError::new(
            "name",
            "the file name is not valid UTF-8",
            "rename the file, such as lab.toml",
        )))
    })?;
    parse_toml(&name, &text).map_err(invalid)
}

/// Parses and validates the TOML text of the profile called `name`.
pub fn parse_toml(name: &str, text: &str) -> Result<Profile, FileProblem> {
    #[derive(Deserialize)]
    struct KindOnly {
        kind: Option<String>,
    }
    let kind = toml::from_str::<KindOnly>(text).map_err(|e| syntax(text, &e))?.kind;
    let tunnel = match kind.as_deref() {
        Some("udp") => Tunnel::Udp(toml::from_str::<RawUdp>(text).map_err(|e| syntax(text, &e))?.into_tunnel()?),
        Some(other) => {
            return Err(FileProblem::Field(ProfileError::new(
                "kind",
                format!("`{other}` is not a tunnel kind"),
                "set kind = \"udp\"",
            )));
        }
        None => {
            return Err(FileProblem::Field(ProfileError::new(
                "kind",
                "is missing",
                "add a line kind = \"udp\" at the top of the file",
            )));
        }
    };
    let profile = Profile { name: name.to_owned(), tunnel };
    profile.validate()?;
    Ok(profile)
}

fn syntax(text: &str, e: &toml::de::Error) -> FileProblem {
    let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let message = e.message().trim_end().replace('\n', " ");
    let fix = if message.starts_with("unknown field") {
        "remove it or correct its spelling"
    } else if message.starts_with("missing field") {
        "add it: the README shows an example profile of each kind"
    } else {
        "correct the value: the README shows an example profile of each kind"
    };
    FileProblem::Syntax { line, message, fix: fix.into() }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUdp {
    #[serde(rename = "kind")]
    _kind: String,
    interface: Option<String>,
    address: Vec<String>,
    listen_port: i64,
    mtu: Option<i64>,
    #[serde(default)]
    peer: Vec<RawUdpPeer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUdpPeer {
    endpoint: String,
    allowed_ips: Vec<String>,
}

impl RawUdp {
    fn into_tunnel(self) -> Result<UdpTunnel, ProfileError> {
        let address = self
            .address
            .iter()
            .enumerate()
            .map(|(i, a)| interface_address(&format!("address[{i}]"), a))
            .collect::<Result<_, _>>()?;
        let peers = self
            .peer
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(UdpPeer {
                    endpoint: endpoint(&format!("peer[{i}].endpoint"), &p.endpoint)?,
                    allowed_ips: p
                        .allowed_ips
                        .iter()
                        .enumerate()
                        .map(|(j, a)| prefix(&format!("peer[{i}].allowed_ips[{j}]"), a))
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<_, ProfileError>>()?;
        Ok(UdpTunnel {
            interface: self.interface,
            address,
            listen_port: port("listen_port", self.listen_port)?,
            mtu: self
                .mtu
                .map(|m| u16::try_from(m).map_err(|_| out_of_range("mtu", m, "between 576 and 9000")))
                .transpose()?,
            peers,
        })
    }
}

fn out_of_range(field: &str, value: i64, range: &str) -> ProfileError {
    ProfileError::new(field, format!("{value} is out of range"), format!("set `{field}` {range}"))
}

fn port(field: &str, value: i64) -> Result<u16, ProfileError> {
    u16::try_from(value).map_err(|_| out_of_range(field, value, "to a UDP port between 1 and 65535"))
}

/// An address with its prefix length, as `ip addr add` takes it; a bare address is a host address.
pub(crate) fn interface_address(field: &str, text: &str) -> Result<IpNet, ProfileError> {
    let text = text.trim();
    text.parse::<IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| {
        ProfileError::new(
            field,
            format!("`{text}` is not an address with a prefix length"),
            "write it as 10.9.0.1/24 or fd00:9::1/64",
        )
    })
}

/// A network prefix; a bare address is a host route.
pub(crate) fn prefix(field: &str, text: &str) -> Result<IpNet, ProfileError> {
    interface_address(field, text)
        .map_err(|e| ProfileError { fix: "write it as 10.9.0.0/24 or fd00:9::/64".into(), ..e })
}

pub(crate) fn endpoint(field: &str, text: &str) -> Result<SocketAddr, ProfileError> {
    text.trim().parse().map_err(|_| {
        ProfileError::new(
            field,
            format!("`{text}` is not an IP address and port"),
            "write it as 172.31.0.2:8285, or [fd00::2]:8285 for IPv6",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = r#"
kind = "udp"
address = ["10.9.0.1/24", "fd00:9::1/64"]   # IPv4 and IPv6
listen_port = 8285
mtu = 1400
interface = "cv-lab"
[[peer]]
endpoint = "172.31.0.2:8285"
allowed_ips = ["10.9.0.0/24"]
[[peer]]
endpoint = "[fd00:31::2]:8285"
allowed_ips = ["10.10.0.0/16", "fd00:10::/64"]
"#;

    #[test]
    fn parses_the_documented_example() {
        let p = parse_toml("lab", LAB).unwrap();
        assert_eq!(p.name, "lab");
        assert_eq!(p.interface(), "cv-lab");
        assert_eq!(p.mtu(), 1400);
        let Tunnel::Udp(u) = &p.tunnel;
        assert_eq!(u.peers.len(), 2);
        assert_eq!(u.peers[1].endpoint, "[fd00:31::2]:8285".parse().unwrap());
        assert_eq!(u.address[1], "fd00:9::1/64".parse::<IpNet>().unwrap());
    }

    #[test]
    fn defaults_apply() {
        let text = "kind = \"udp\"\naddress = [\"10.9.0.1/24\"]\nlisten_port = 1\n[[peer]]\nendpoint = \"192.0.2.1:1\"\nallowed_ips = [\"10.9.0.0/24\"]\n";
        let p = parse_toml("lab", text).unwrap();
        assert_eq!((p.interface(), p.mtu()), ("lab", super::super::DEFAULT_MTU));
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let text = LAB.replace("listen_port", "lisen_port");
        match parse_toml("lab", &text).unwrap_err() {
            FileProblem::Syntax { line, message, fix } => {
                assert!(message.contains("lisen_port"), "{message}");
                assert_eq!(line, Some(4));
                assert!(fix.contains("spelling"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_peer_keys_are_errors() {
        let text = LAB.replace("allowed_ips = [\"10.9.0.0/24\"]", "allowed_ips = [\"10.9.0.0/24\"]\nallowedips = []");
        assert!(parse_toml("lab", &text).unwrap_err().to_string().contains("allowedips"));
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            ("10.9.0.1/24\", \"fd00:9::1/64", "10.9.0.1/33\", \"fd00:9::1/64", "address[0]"),
            ("172.31.0.2:8285", "172.31.0.2", "peer[0].endpoint"),
            ("fd00:10::/64", "fd00:10::/129", "peer[1].allowed_ips[1]"),
            ("listen_port = 8285", "listen_port = 70000", "listen_port"),
            ("kind = \"udp\"", "kind = \"gre\"", "kind"),
        ];
        for (from, to, field) in cases {
            let text = LAB.replace(from, to);
            match parse_toml("lab", &text).unwrap_err() {
                FileProblem::Field(e) => assert_eq!(e.field, field, "{e}"),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_is_a_syntax_error() {
        assert!(matches!(parse_toml("lab", "kind = \"udp\n"), Err(FileProblem::Syntax { .. })));
        assert!(matches!(parse_toml("lab", "\u{0}\u{1}"), Err(FileProblem::Syntax { .. })));
    }
}
