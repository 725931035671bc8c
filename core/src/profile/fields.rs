//! The values of profile fields as both file formats write them (keys, endpoints, prefixes, tables, marks),
//! each read with an error that names the field and says how to write it.

use std::net::SocketAddr;

use ipnet::IpNet;

use super::{Endpoint, ProfileError, Table};
use crate::keys::{PublicKey, SecretKey};

pub(crate) fn secret_key(field: &str, text: &str) -> Result<SecretKey, ProfileError> {
    text.parse().map_err(|_| {
        ProfileError::new(
            field,
            "is not a WireGuard key",
            "paste the 44-character base64 key that `culvert genkey` or `wg genkey` printed",
        )
    })
}

pub(crate) fn public_key(field: &str, text: &str) -> Result<PublicKey, ProfileError> {
    text.parse().map_err(|_| {
        ProfileError::new(
            field,
            format!("`{}` is not a WireGuard public key", text.trim()),
            "paste the peer's 44-character base64 public key (`culvert pubkey` or `wg pubkey` prints it)",
        )
    })
}

pub(crate) fn wg_endpoint(field: &str, text: &str) -> Result<Endpoint, ProfileError> {
    text.parse().map_err(|why| {
        ProfileError::new(
            field,
            format!("`{}` {why}", text.trim()),
            "write it as 203.0.113.5:51820, [2001:db8::5]:51820 or vpn.example.com:51820",
        )
    })
}

/// wg-quick's rule: DNS entries that parse as addresses are servers, the others search domains.
pub(crate) fn split_dns(entries: &[String]) -> (Vec<std::net::IpAddr>, Vec<String>) {
    let mut servers = Vec::new();
    let mut search = Vec::new();
    for e in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        match e.parse() {
            Ok(ip) => servers.push(ip),
            Err(_) => search.push(e.to_owned()),
        }
    }
    (servers, search)
}

pub(crate) fn table(text: &str) -> Result<Table, ProfileError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(Table::Auto),
        "off" => Ok(Table::Off),
        // Which numbers are tables is the validator's rule, the same for files and requests.
        t => match t.parse::<u32>() {
            Ok(id) => Ok(Table::Id(id)),
            Err(_) => Err(ProfileError::new(
                "table",
                format!("`{text}` is not a routing table"),
                "set it to auto, off, or a table number such as 51820",
            )),
        },
    }
}

/// `off`, `0`, a decimal or a 0x-hex mark; `None` means no mark.
pub(crate) fn fwmark(text: &str) -> Result<Option<u32>, ProfileError> {
    let t = text.trim().to_ascii_lowercase();
    let parsed = if t == "off" {
        Ok(0)
    } else if let Some(hex) = t.strip_prefix("0x") {
        u32::from_str_radix(hex, 16)
    } else {
        t.parse()
    };
    match parsed {
        Ok(0) => Ok(None),
        Ok(mark) => Ok(Some(mark)),
        Err(_) => Err(ProfileError::new(
            "fwmark",
            format!("`{text}` is not a mark"),
            "set it to off, or a number such as 51820 or 0xca6c",
        )),
    }
}

pub(crate) fn out_of_range(field: &str, value: i64, range: &str) -> ProfileError {
    ProfileError::new(field, format!("{value} is out of range"), format!("set `{field}` {range}"))
}

pub(crate) fn port(field: &str, value: i64) -> Result<u16, ProfileError> {
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
