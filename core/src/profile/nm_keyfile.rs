//! NetworkManager's WireGuard connections (`.nmconnection` keyfiles, as in
//! `/etc/NetworkManager/system-connections/`), read into a profile with the same checks as a wg-quick file.
//!
//! A keyfile is a GLib key file: `[group]` headers, `key=value` lines, `#` comments, lists separated by `;`,
//! and `\s`, `\t`, `\n`, `\\` escapes. Of its groups, `[connection]` (its `type` must be `wireguard`),
//! `[wireguard]`, each `[wireguard-peer.<public key>]`, and the addresses and DNS of `[ipv4]` and `[ipv6]` make
//! the profile; NetworkManager's other settings (UUIDs, autoconnect, permissions, ...) mean nothing to a tunnel
//! and are passed over.

use super::wg_quick::{RawInterface, RawPeer};
use super::{FileProblem, Profile, Tunnel};

/// The file extension NetworkManager gives its keyfiles.
pub const EXTENSION: &str = "nmconnection";

/// Parses a WireGuard connection; the profile is named by the connection's `interface-name` (its device, as a
/// wg-quick file's name is its interface), else by `fallback_name` (the file's stem).
pub fn parse(fallback_name: &str, text: &str) -> Result<Profile, FileProblem> {
    let mut iface = RawInterface { seen: true, ..Default::default() };
    let mut peers: Vec<RawPeer> = Vec::new();
    let (mut kind, mut interface_name, mut key_flags) = (None, None, None);
    let mut group = String::new();
    for (n, raw_line) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: String, fix: &str| FileProblem::Syntax { line: Some(line_no), message, fix: fix.into() };
        if let Some(header) = line.strip_prefix('[') {
            group = header
                .strip_suffix(']')
                .ok_or_else(|| err(format!("`{line}` is not a [group] line"), "close it with ]"))?
                .to_owned();
            if let Some(key) = group.strip_prefix("wireguard-peer.") {
                peers.push(RawPeer { line: line_no, public_key: Some((line_no, unescape(key))), ..Default::default() });
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(format!("`{line}` is not a key=value line"), "write each setting as key=value"));
        };
        // Localised keys (`id[de]=`) are translations of the same setting: the plain one is enough.
        let (key, value) = (key.trim(), unescape(value.trim()));
        let one = || Some((line_no, value.clone()));
        match (group.as_str(), key) {
            ("connection", "type") => kind = Some(value.clone()),
            ("connection", "interface-name") => interface_name = Some(value.clone()),
            ("wireguard", "private-key") => iface.private_key = one(),
            ("wireguard", "private-key-flags") => key_flags = Some(value.clone()),
            ("wireguard", "listen-port") => iface.listen_port = one(),
            ("wireguard", "mtu") if value != "0" => iface.mtu = one(),
            ("wireguard", "fwmark") if value != "0" => iface.fwmark = one(),
            ("ipv4" | "ipv6", "addresses") => iface.address.extend(list(&value).map(|a| address_of(&a))),
            ("ipv4" | "ipv6", k) if is_address_key(k) => iface.address.push(address_of(&value)),
            ("ipv4" | "ipv6", "dns" | "dns-search") => iface.dns.extend(list(&value)),
            (g, k) if g.starts_with("wireguard-peer.") => {
                let Some(peer) = peers.last_mut() else { continue };
                match k {
                    "endpoint" => peer.endpoint = one(),
                    "allowed-ips" => peer.allowed_ips.extend(list(&value).map(|a| (line_no, a))),
                    "preshared-key" => peer.preshared_key = one(),
                    "persistent-keepalive" if value != "0" => peer.keepalive = one(),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    match kind.as_deref() {
        Some("wireguard") => {}
        Some(other) => {
            return Err(FileProblem::Syntax {
                line: None,
                message: format!("this is a NetworkManager connection of type {other}, not wireguard"),
                fix: "import the WireGuard connections only".into(),
            });
        }
        None => {
            return Err(FileProblem::Syntax {
                line: None,
                message: "there is no [connection] group with type=wireguard".into(),
                fix: "give a NetworkManager keyfile of a WireGuard connection (/etc/NetworkManager/\
                      system-connections/NAME.nmconnection)"
                    .into(),
            });
        }
    }
    if iface.private_key.is_none() && key_flags.as_deref().is_some_and(|f| f != "0") {
        return Err(FileProblem::Syntax {
            line: None,
            message: "NetworkManager keeps this connection's private key outside the file (private-key-flags is \
                      not 0: an agent or a keyring holds it)"
                .into(),
            fix: "import the connection as a wg-quick file instead, with the key written in, or store the key in \
                  the file: nmcli connection modify ID wireguard.private-key-flags 0 wireguard.private-key KEY"
                .into(),
        });
    }
    let tunnel = iface.into_tunnel(peers)?;
    let name = interface_name.unwrap_or_else(|| fallback_name.to_owned());
    let profile = Profile { name, tunnel: Tunnel::Wireguard(tunnel) };
    profile.validate().map_err(FileProblem::Field)?;
    Ok(profile)
}

/// `address1`, `address2`, ...: NetworkManager numbers each address key.
fn is_address_key(key: &str) -> bool {
    key.strip_prefix("address").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// An address entry is `ADDRESS/PREFIX` with, after a comma, the gateway, which a WireGuard device has no use
/// for.
fn address_of(entry: &str) -> String {
    entry.split(',').next().unwrap_or(entry).trim().to_owned()
}

fn list(value: &str) -> impl Iterator<Item = String> + '_ {
    value.split(';').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// GLib's escapes in a value.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;

    fn keyfile(private: &str, peer: &str, kind: &str) -> String {
        format!(
            "[connection]\nid=Home VPN\nuuid=0a6a3c1e-8f07-4a4e-9b0e-3f5b7a0c1d2e\ntype={kind}\nautoconnect=false\n\
             interface-name=wg-home\npermissions=\n\n[wireguard]\nlisten-port=51820\nprivate-key={private}\n\
             mtu=0\n\n[wireguard-peer.{peer}]\nendpoint=vpn.example.org:51820\npersistent-keepalive=25\n\
             allowed-ips=0.0.0.0/0;::/0;\n\n[ipv4]\naddress1=10.8.0.2/24,10.8.0.1\ndns=10.8.0.1;\n\
             dns-search=home.arpa;\nmethod=manual\n\n[ipv6]\naddr-gen-mode=default\naddress1=fd08::2/64\n\
             method=manual\n\n[proxy]\n"
        )
    }

    #[test]
    fn a_wireguard_connection_becomes_a_profile_named_by_its_interface() {
        let private = SecretKey::generate_private();
        let peer = SecretKey::generate_private().public_key();
        let text = keyfile(private.to_base64().as_str(), &peer.to_string(), "wireguard");
        let profile = parse("Home VPN", &text).unwrap();
        assert_eq!(profile.name, "wg-home");
        let Tunnel::Wireguard(w) = &profile.tunnel else { panic!("not wireguard") };
        assert_eq!(w.private_key, private);
        assert_eq!(w.listen_port, Some(51820));
        assert_eq!(w.mtu, None, "mtu=0 is NetworkManager's automatic");
        let addresses: Vec<String> = w.address.iter().map(ToString::to_string).collect();
        assert_eq!(addresses, ["10.8.0.2/24", "fd08::2/64"]);
        assert_eq!(w.dns, ["10.8.0.1".parse::<std::net::IpAddr>().unwrap()]);
        assert_eq!(w.dns_search, ["home.arpa"]);
        assert_eq!(w.peers.len(), 1);
        assert_eq!(w.peers[0].public_key, peer);
        assert_eq!(w.peers[0].persistent_keepalive, Some(25));
        assert_eq!(w.peers[0].allowed_ips.len(), 2);
        assert!(w.peers[0].endpoint.is_some());
    }

    #[test]
    fn other_connections_and_keys_kept_elsewhere_are_refused_with_the_reason() {
        let peer = SecretKey::generate_private().public_key().to_string();
        let vpn = parse("x", &keyfile("", &peer, "vpn")).unwrap_err();
        assert!(vpn.to_string().contains("type vpn, not wireguard"), "{vpn}");
        let agent = keyfile("", &peer, "wireguard").replace("private-key=\n", "private-key-flags=1\n");
        let refused = parse("x", &agent).unwrap_err().to_string();
        assert!(refused.contains("outside the file") && refused.contains("private-key-flags 0"), "{refused}");
        let bad = keyfile(SecretKey::generate_private().to_base64().as_str(), "not-a-key", "wireguard");
        let refused = parse("x", &bad).unwrap_err().to_string();
        assert!(refused.contains("line 14"), "the peer's group names the line: {refused}");
    }

    #[test]
    fn escapes_are_read_as_glib_writes_them() {
        assert_eq!(unescape(r"a\sb\\c\;d"), r"a b\c;d");
        assert!(is_address_key("address12") && !is_address_key("address") && !is_address_key("addresses"));
    }
}
