//! wg-quick's `.conf` format: read into a profile, and written back out from one.
//!
//! Reading follows wg-quick: section and key names in any case, `#` comments, comma-separated lists, list keys
//! that may repeat, `DNS` entries that are not addresses taken as search domains, and AllowedIPs masked to their
//! network as `wg` masks them. The hooks `PreUp`, `PostUp`, `PreDown` and `PostDown` are refused: they are shell
//! commands, and the helper that brings tunnels up runs as root on behalf of users.

use std::fmt::Write;

use super::fields::{fwmark, interface_address, prefix, public_key, secret_key, split_dns, table, wg_endpoint};
use super::{FileProblem, Profile, ProfileError, Table, Tunnel, WireguardPeer, WireguardTunnel};

/// Parses and validates a wg-quick file; also returns notes for the user about what was accepted but ignored.
pub fn parse(name: &str, text: &str) -> Result<(Profile, Vec<String>), FileProblem> {
    let mut notes = Vec::new();
    let mut iface = RawInterface::default();
    let mut peers: Vec<RawPeer> = Vec::new();
    let mut section = Section::None;
    for (n, raw_line) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = raw_line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: String, fix: &str| FileProblem::Syntax { line: Some(line_no), message, fix: fix.into() };
        if line.starts_with('[') {
            section = match line.to_ascii_lowercase().as_str() {
                "[interface]" if !iface.seen => {
                    iface.seen = true;
                    Section::Interface
                }
                "[interface]" => return Err(err("a second [Interface] section".into(), "merge the two into one")),
                "[peer]" => {
                    peers.push(RawPeer { line: line_no, ..Default::default() });
                    Section::Peer
                }
                _ => return Err(err(format!("unknown section {line}"), "use [Interface] and [Peer] sections only")),
            };
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(format!("`{line}` is not a `Key = Value` line"), "write each setting as Key = Value"));
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        let list = || value.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        match (&section, key.as_str()) {
            (Section::None, _) => {
                return Err(err(
                    format!("`{key}` comes before any section"),
                    "put settings under [Interface] or [Peer]",
                ));
            }
            (Section::Interface, "privatekey") => set_once(&mut iface.private_key, value, "PrivateKey", line_no)?,
            (Section::Interface, "address") => iface.address.extend(list()),
            (Section::Interface, "listenport") => set_once(&mut iface.listen_port, value, "ListenPort", line_no)?,
            (Section::Interface, "mtu") => set_once(&mut iface.mtu, value, "MTU", line_no)?,
            (Section::Interface, "dns") => iface.dns.extend(list()),
            (Section::Interface, "table") => set_once(&mut iface.table, value, "Table", line_no)?,
            (Section::Interface, "fwmark") => set_once(&mut iface.fwmark, value, "FwMark", line_no)?,
            (Section::Interface, "saveconfig") => {
                notes.push(format!("line {line_no}: SaveConfig is ignored: Culvert never rewrites your file"));
            }
            (Section::Interface, hook @ ("preup" | "postup" | "predown" | "postdown")) => {
                return Err(err(
                    format!("{} runs shell commands, which Culvert refuses", hook_name(hook)),
                    "remove it: Culvert's helper runs as root for every user, so it must never run commands from a \
                     profile; do what the hook did separately",
                ));
            }
            (Section::Peer, k) => {
                let peer = peers.last_mut().ok_or_else(|| err("no [Peer]".into(), "add a [Peer] line"))?;
                match k {
                    "publickey" => set_once(&mut peer.public_key, value, "PublicKey", line_no)?,
                    "presharedkey" => set_once(&mut peer.preshared_key, value, "PresharedKey", line_no)?,
                    "allowedips" => peer.allowed_ips.extend(list().map(|v| (line_no, v))),
                    "endpoint" => set_once(&mut peer.endpoint, value, "Endpoint", line_no)?,
                    "persistentkeepalive" => set_once(&mut peer.keepalive, value, "PersistentKeepalive", line_no)?,
                    other => {
                        return Err(err(
                            format!("unknown key `{other}` in [Peer]"),
                            "use PublicKey, PresharedKey, AllowedIPs, Endpoint or PersistentKeepalive",
                        ));
                    }
                }
            }
            (Section::Interface, other) => {
                return Err(err(
                    format!("unknown key `{other}` in [Interface]"),
                    "use PrivateKey, Address, ListenPort, MTU, DNS, Table or FwMark",
                ));
            }
        }
    }
    let tunnel = iface.into_tunnel(peers)?;
    let profile = Profile { name: name.to_owned(), tunnel: Tunnel::Wireguard(tunnel) };
    profile.validate().map_err(for_conf)?;
    Ok((profile, notes))
}

/// The wg-quick key of a profile field's key (`allowed_ips` is `AllowedIPs`).
fn conf_key(toml_key: &str) -> Option<&'static str> {
    Some(match toml_key {
        "address" => "Address",
        "allowed_ips" => "AllowedIPs",
        "endpoint" => "Endpoint",
        "public_key" => "PublicKey",
        "preshared_key" => "PresharedKey",
        "persistent_keepalive" => "PersistentKeepalive",
        "private_key" => "PrivateKey",
        "listen_port" => "ListenPort",
        "mtu" => "MTU",
        "dns" | "dns_search" => "DNS",
        "table" => "Table",
        "fwmark" => "FwMark",
        _ => return None,
    })
}

/// A profile error in the words of a wg-quick file: where it is (`[Peer] 2 AllowedIPs`), its keys in the fix
/// instead of the TOML ones, and for what the file name decides (the tunnel's and the interface's name), to
/// rename the file. The validator and the helper speak of profile fields; this is how a `.conf` user hears them.
pub fn for_conf(e: ProfileError) -> ProfileError {
    let key_of = |path: &str| path.split('[').next().unwrap_or(path).to_owned();
    let field = match e.field.strip_prefix("peer[").and_then(|rest| rest.split_once("].")) {
        Some((i, rest)) => {
            let n = i.parse::<usize>().map_or_else(|_| i.to_owned(), |i| (i + 1).to_string());
            format!("[Peer] {n} {}", conf_key(&key_of(rest)).unwrap_or(rest))
        }
        None => match key_of(&e.field).as_str() {
            "name" | "interface" => "file name".to_owned(),
            "peer" => "[Peer]".to_owned(),
            key => conf_key(key).map_or_else(|| e.field.clone(), str::to_owned),
        },
    };
    let fix = match e.field.as_str() {
        "name" | "interface" => {
            "rename the file: its name without .conf names the tunnel and its interface, 1 to 15 letters, digits, \
             '_', '.' or '-', such as wg0.conf"
                .to_owned()
        }
        "address" => "add Address = 10.8.0.1/24 under [Interface]".to_owned(),
        "peer" => "add a [Peer] section for each peer, with its PublicKey and AllowedIPs".to_owned(),
        _ => {
            let mut fix = e.fix.clone();
            for key in [
                "allowed_ips",
                "listen_port",
                "public_key",
                "preshared_key",
                "persistent_keepalive",
                "mtu",
                "table",
                "fwmark",
                "dns",
                "private_key",
            ] {
                if let Some(conf) = conf_key(key) {
                    fix = replace_word(&fix, key, conf);
                }
            }
            fix
        }
    };
    ProfileError { field, problem: e.problem, fix }
}

/// `text` with each whole-word `word` (not part of a longer identifier) replaced by `with`.
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + word.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(ident) || after.is_some_and(ident) {
            out.push_str(word);
        } else {
            out.push_str(with);
        }
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

fn hook_name(key: &str) -> &'static str {
    match key {
        "preup" => "PreUp",
        "postup" => "PostUp",
        "predown" => "PreDown",
        _ => "PostDown",
    }
}

#[derive(PartialEq)]
enum Section {
    None,
    Interface,
    Peer,
}

fn set_once(slot: &mut Option<(usize, String)>, value: &str, key: &str, line: usize) -> Result<(), FileProblem> {
    if let Some((first, _)) = slot {
        return Err(FileProblem::Syntax {
            line: Some(line),
            message: format!("{key} is given twice (first on line {first})"),
            fix: "keep one of them".into(),
        });
    }
    *slot = Some((line, value.to_owned()));
    Ok(())
}

/// An `[Interface]` as written, each value with its line; NetworkManager's keyfiles are read into it too.
#[derive(Default)]
pub(super) struct RawInterface {
    pub(super) seen: bool,
    pub(super) private_key: Option<(usize, String)>,
    pub(super) address: Vec<String>,
    pub(super) listen_port: Option<(usize, String)>,
    pub(super) mtu: Option<(usize, String)>,
    pub(super) dns: Vec<String>,
    pub(super) table: Option<(usize, String)>,
    pub(super) fwmark: Option<(usize, String)>,
}

#[derive(Default)]
pub(super) struct RawPeer {
    pub(super) line: usize,
    pub(super) public_key: Option<(usize, String)>,
    pub(super) preshared_key: Option<(usize, String)>,
    pub(super) allowed_ips: Vec<(usize, String)>,
    pub(super) endpoint: Option<(usize, String)>,
    pub(super) keepalive: Option<(usize, String)>,
}

/// A bad value, reported at its line with the problem and the fix.
fn at_line(line: usize, e: ProfileError) -> FileProblem {
    FileProblem::Syntax { line: Some(line), message: e.problem, fix: e.fix }
}

fn number<T: std::str::FromStr>(
    slot: &Option<(usize, String)>,
    key: &str,
    range: &str,
) -> Result<Option<T>, FileProblem> {
    slot.as_ref()
        .map(|(line, v)| {
            v.parse().map_err(|_| FileProblem::Syntax {
                line: Some(*line),
                message: format!("{key} `{v}` is not a number in range"),
                fix: format!("set {key} {range}"),
            })
        })
        .transpose()
}

impl RawInterface {
    pub(super) fn into_tunnel(self, peers: Vec<RawPeer>) -> Result<WireguardTunnel, FileProblem> {
        if !self.seen {
            return Err(FileProblem::Syntax {
                line: None,
                message: "there is no [Interface] section".into(),
                fix: "a wg-quick file starts with [Interface] and its PrivateKey and Address".into(),
            });
        }
        let Some((key_line, key)) = &self.private_key else {
            return Err(FileProblem::Syntax {
                line: None,
                message: "[Interface] has no PrivateKey".into(),
                fix: "add PrivateKey = <the output of `culvert genkey`>".into(),
            });
        };
        let address =
            self.address.iter().map(|a| interface_address("Address", a)).collect::<Result<Vec<_>, _>>().map_err(
                |e| FileProblem::Syntax { line: None, message: format!("Address: {}", e.problem), fix: e.fix },
            )?;
        let (dns, dns_search) = split_dns(&self.dns);
        let mut out_peers = Vec::new();
        for p in peers {
            let Some((pk_line, pk)) = &p.public_key else {
                return Err(FileProblem::Syntax {
                    line: Some(p.line),
                    message: "this [Peer] has no PublicKey".into(),
                    fix: "add PublicKey = <the peer's public key>".into(),
                });
            };
            let mut allowed_ips = Vec::new();
            for (line, a) in &p.allowed_ips {
                // `wg` masks host bits away; so does Culvert when reading wg-quick files.
                allowed_ips.push(prefix("AllowedIPs", a).map_err(|e| at_line(*line, e))?.trunc());
            }
            out_peers.push(WireguardPeer {
                public_key: public_key("PublicKey", pk).map_err(|e| at_line(*pk_line, e))?,
                preshared_key: p
                    .preshared_key
                    .as_ref()
                    .map(|(line, k)| secret_key("PresharedKey", k).map_err(|e| at_line(*line, e)))
                    .transpose()?,
                allowed_ips,
                endpoint: p
                    .endpoint
                    .as_ref()
                    .map(|(line, e)| wg_endpoint("Endpoint", e).map_err(|e| at_line(*line, e)))
                    .transpose()?,
                persistent_keepalive: match &p.keepalive {
                    Some((_, v)) if v.eq_ignore_ascii_case("off") => None,
                    _ => number(&p.keepalive, "PersistentKeepalive", "between 1 and 65535 seconds, or off")?
                        .filter(|k| *k > 0),
                },
            });
        }
        Ok(WireguardTunnel {
            interface: None,
            private_key: secret_key("PrivateKey", key).map_err(|e| at_line(*key_line, e))?,
            address,
            listen_port: number(&self.listen_port, "ListenPort", "between 0 and 65535")?,
            mtu: number(&self.mtu, "MTU", "between 1280 and 9000")?,
            dns,
            dns_search,
            table: self
                .table
                .as_ref()
                .map(|(line, t)| table(t).map_err(|e| at_line(*line, e)))
                .transpose()?
                .unwrap_or_default(),
            fwmark: self
                .fwmark
                .as_ref()
                .map(|(line, f)| fwmark(f).map_err(|e| at_line(*line, e)))
                .transpose()?
                .flatten(),
            // wg-quick has no key for these: `culvert enable --kill-switch` sets them on a system tunnel.
            kill_switch: false,
            allow_lan: false,
            peers: out_peers,
        })
    }
}

/// Writes a wireguard profile as a file wg-quick accepts. Other kinds have no wg-quick form.
pub fn write(profile: &Profile) -> Option<String> {
    let Tunnel::Wireguard(w) = &profile.tunnel else { return None };
    let mut out = String::new();
    let join = |items: Vec<String>| items.join(", ");
    let _ = writeln!(out, "# {} (exported by Culvert)", profile.name);
    let _ = writeln!(out, "[Interface]");
    let _ = writeln!(out, "PrivateKey = {}", w.private_key.to_base64().as_str());
    let _ = writeln!(out, "Address = {}", join(w.address.iter().map(ToString::to_string).collect()));
    if let Some(port) = w.listen_port {
        let _ = writeln!(out, "ListenPort = {port}");
    }
    if let Some(mtu) = w.mtu {
        let _ = writeln!(out, "MTU = {mtu}");
    }
    if !w.dns.is_empty() || !w.dns_search.is_empty() {
        let entries = w.dns.iter().map(ToString::to_string).chain(w.dns_search.iter().cloned()).collect();
        let _ = writeln!(out, "DNS = {}", join(entries));
    }
    match w.table {
        Table::Auto => {}
        Table::Off => {
            let _ = writeln!(out, "Table = off");
        }
        Table::Id(id) => {
            let _ = writeln!(out, "Table = {id}");
        }
    }
    if let Some(mark) = w.fwmark {
        let _ = writeln!(out, "FwMark = {mark}");
    }
    for p in &w.peers {
        let _ = writeln!(out, "\n[Peer]");
        let _ = writeln!(out, "PublicKey = {}", p.public_key);
        if let Some(psk) = &p.preshared_key {
            let _ = writeln!(out, "PresharedKey = {}", psk.to_base64().as_str());
        }
        let _ = writeln!(out, "AllowedIPs = {}", join(p.allowed_ips.iter().map(ToString::to_string).collect()));
        if let Some(ep) = &p.endpoint {
            let _ = writeln!(out, "Endpoint = {ep}");
        }
        if let Some(k) = p.persistent_keepalive {
            let _ = writeln!(out, "PersistentKeepalive = {k}");
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Endpoint;

    const WG0: &str = "
# a comment
[Interface]
PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
address = 10.192.122.1/24, fd00:7::1/64   # two at once
Address = 10.10.0.1/16
ListenPort = 51820
DNS = 10.192.122.53, corp.example
SaveConfig = true

[Peer]
PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
AllowedIPs = 10.192.122.3/32, 10.192.124.1/24
Endpoint = 192.95.5.67:1234

[peer]
PUBLICKEY = TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=
PresharedKey = /UwcSPg38hW/D9Y3tcS1FOV0K1wuURMbS0sesJEP5ak=
AllowedIPs = 10.192.122.4/32
Endpoint = vpn.example.com:51820
PersistentKeepalive = 25
";

    #[test]
    fn reads_the_wg_quick_example() {
        let (p, notes) = parse("wg0", WG0).unwrap();
        let Tunnel::Wireguard(w) = &p.tunnel else { panic!() };
        assert_eq!(p.interface(), "wg0");
        assert_eq!(w.address.len(), 3);
        assert_eq!(w.listen_port, Some(51820));
        assert_eq!(w.dns, vec!["10.192.122.53".parse::<std::net::IpAddr>().unwrap()]);
        assert_eq!(w.dns_search, vec!["corp.example"]);
        assert_eq!(w.peers[0].allowed_ips[1], "10.192.124.0/24".parse().unwrap(), "host bits are masked");
        assert_eq!(w.peers[1].endpoint, Some(Endpoint::Host { host: "vpn.example.com".into(), port: 51820 }));
        assert_eq!(w.peers[1].persistent_keepalive, Some(25));
        assert!(w.peers[1].preshared_key.is_some());
        assert!(notes[0].contains("SaveConfig"), "{notes:?}");
    }

    #[test]
    fn written_files_read_back_the_same() {
        let (p, _) = parse("wg0", WG0).unwrap();
        let text = write(&p).unwrap();
        let (again, notes) = parse("wg0", &text).unwrap();
        assert_eq!(again, p, "{text}");
        assert!(notes.is_empty());
    }

    #[test]
    fn hooks_are_refused_with_the_reason() {
        for hook in ["PostUp", "preup", "PreDown", "POSTDOWN"] {
            let text = WG0.replace("SaveConfig = true", &format!("{hook} = iptables -A FORWARD -j ACCEPT"));
            let e = parse("wg0", &text).unwrap_err().to_string();
            assert!(e.contains("line 9") && e.contains("shell commands") && e.contains("root"), "{e}");
        }
    }

    #[test]
    fn mistakes_point_at_their_line() {
        let cases = [
            ("ListenPort = 51820", "ListenPort = 70000", "line 7", "ListenPort"),
            ("Endpoint = 192.95.5.67:1234", "Endpoint = 192.95.5.67", "line 14", "no port"),
            ("AllowedIPs = 10.192.122.4/32", "AllowedIPs = 10.192.122.4/33", "line 19", "prefix"),
            ("ListenPort = 51820", "ListenPort = 51820\nListenPort = 1", "line 8", "twice"),
            ("SaveConfig = true", "Bogus = 1", "line 9", "unknown key `bogus`"),
            ("PUBLICKEY = TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=", "PublicKey = nope", "line 17", "public key"),
        ];
        for (from, to, line, what) in cases {
            let e = parse("wg0", &WG0.replace(from, to)).unwrap_err().to_string();
            assert!(e.contains(line) && e.contains(what), "{to}: {e}");
        }
    }

    #[test]
    fn a_file_without_interface_or_key_says_what_is_missing() {
        assert!(parse("x", "[Peer]\nPublicKey = x").unwrap_err().to_string().contains("[Interface]"));
        assert!(parse("x", "[Interface]\nAddress = 10.0.0.1/24").unwrap_err().to_string().contains("PrivateKey"));
    }

    /// A .conf file's errors advise its own keys, or renaming the file, never TOML it cannot hold.
    #[test]
    fn errors_speak_wg_quick() {
        let long = parse("a-very-long-tunnel-name", WG0).unwrap_err().to_string();
        assert!(long.contains("file name") && long.contains("rename the file"), "{long}");
        assert!(!long.contains("set `interface`"), "{long}");
        let no_address = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n[Peer]\n\
                          PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nAllowedIPs = 10.1.0.0/24\n";
        let e = parse("wg0", no_address).unwrap_err().to_string();
        assert!(e.contains("Address = ") && !e.contains("address = ["), "{e}");
        let looping = WG0.replace("AllowedIPs = 10.192.122.4/32", "AllowedIPs = 10.192.122.4/32, 192.95.0.0/16");
        let e = parse("wg0", &looping).unwrap_err().to_string();
        assert!(e.contains("[Peer] 2 AllowedIPs") && e.contains("narrow AllowedIPs"), "{e}");
        let e = for_conf(ProfileError::new(
            "listen_port",
            "UDP port 51820 is already in use",
            "choose another listen_port",
        ));
        assert_eq!(e.to_string(), "ListenPort: UDP port 51820 is already in use; choose another ListenPort");
        assert_eq!(
            replace_word("my_listen_port and listen_port", "listen_port", "ListenPort"),
            "my_listen_port and ListenPort"
        );
    }

    /// Found by the fuzzer: `Endpoint = 192.95.5.67:+423` was taken as the host name "192.95.5.67" with port 423,
    /// and written back as an address, so the file did not read back as the profile it gave.
    #[test]
    fn endpoints_read_as_they_are_written() {
        for bad in ["192.95.5.67:+423", "192.0.2.300:51820", "vpn.example.com:", "vpn.example.com:-1", "host:0x10"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
        for good in
            ["vpn.example.com:51820", "vpn.example.com.:1", "192.0.2.1:51820", "[2001:db8::1]:51820", "a-1.b2:9"]
        {
            let e: Endpoint = good.parse().unwrap();
            assert_eq!(e.to_string().parse::<Endpoint>().unwrap(), e, "{good}");
        }
    }
}
