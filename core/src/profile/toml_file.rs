//! The TOML file format of profiles: the [`Draft`] schema as TOML text.

use super::{Draft, FileProblem, Profile};

/// Parses and validates the TOML text of the profile called `name`.
pub fn parse_toml(name: &str, text: &str) -> Result<Profile, FileProblem> {
    Ok(Draft::from_toml(text)?.into_profile(name)?)
}

/// Writes a profile in the TOML file format [`parse_toml`] reads (the name is the file's, not written).
pub fn write_toml(profile: &Profile) -> String {
    Draft::from(profile).to_toml()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Endpoint, Table, Tunnel};
    use ipnet::IpNet;

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
        let Tunnel::Udp(u) = &p.tunnel else { panic!("not udp") };
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

    #[test]
    fn parses_a_wireguard_profile() {
        let text = r#"
kind = "wireguard"
private_key = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
address = ["10.8.0.1/24"]
listen_port = 51820
dns = ["10.8.0.53", "corp.example"]
table = 1234
fwmark = "0xca6c"
[[peer]]
public_key = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
allowed_ips = ["10.8.0.2/32"]
endpoint = "vpn.example.com:51820"
persistent_keepalive = 25
"#;
        let p = parse_toml("office", text).unwrap();
        let Tunnel::Wireguard(w) = &p.tunnel else { panic!("not wireguard") };
        assert_eq!((w.table, w.fwmark, w.listen_port), (Table::Id(1234), Some(0xca6c), Some(51820)));
        assert_eq!(w.dns_search, vec!["corp.example"]);
        assert_eq!(w.peers[0].endpoint, Some(Endpoint::Host { host: "vpn.example.com".into(), port: 51820 }));
        // The same profile as a wg-quick file, and back.
        let conf = crate::profile::wg_quick::write(&p).unwrap();
        assert_eq!(crate::profile::wg_quick::parse("office", &conf).unwrap().0, p);
        let bad = text.replace("xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "not-a-key");
        match parse_toml("office", &bad).unwrap_err() {
            FileProblem::Field(e) => assert_eq!(e.field, "peer[0].public_key"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_a_vxlan_profile_with_derived_macs() {
        let text = r#"
kind = "vxlan"
vni = 42
local = "172.31.0.1"
address = ["10.244.1.0/32"]
forward = ["cvpods0"]
[[peer]]
vtep = "172.31.0.2"
gateway = "10.244.2.0"
subnets = ["10.244.2.0/24"]
[[peer]]
vtep = "172.31.0.3"
mac = "02:00:00:00:00:03"
"#;
        let p = parse_toml("overlay", text).unwrap();
        let Tunnel::Vxlan(v) = &p.tunnel else { panic!("not vxlan") };
        assert_eq!(v.port(), 4789);
        assert_eq!(v.own_mac().to_string(), "02:2a:ac:1f:00:01");
        assert_eq!(v.peer_mac(&v.peers[0]).to_string(), "02:2a:ac:1f:00:02");
        assert_eq!(v.peer_mac(&v.peers[1]).to_string(), "02:00:00:00:00:03");
        for (from, to, field) in [
            ("vni = 42", "vni = 16777216", "vni"),
            ("gateway = \"10.244.2.0\"\n", "", "peer[0].gateway"),
            ("vtep = \"172.31.0.3\"", "vtep = \"172.31.0.1\"", "peer[1].vtep"),
            ("vtep = \"172.31.0.3\"", "vtep = \"fd00::3\"", "peer[1].vtep"),
            ("mac = \"02:00:00:00:00:03\"", "mac = \"01:00:00:00:00:03\"", "peer[1].mac"),
        ] {
            match parse_toml("overlay", &text.replace(from, to)).unwrap_err() {
                FileProblem::Field(e) => assert_eq!(e.field, field, "{e}"),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    /// Every kind's profile, written and read back, is the same profile.
    #[test]
    fn written_profiles_read_back_the_same() {
        let texts = [
            LAB.to_string(),
            "kind = \"tap\"\nlisten_port = 1\nmac = \"02:00:00:00:00:01\"\n[[peer]]\nendpoint = \"192.0.2.1:1\"\n".into(),
            "kind = \"hostgw\"\nforward = [\"br0\"]\n[[peer]]\nvia = \"192.0.2.1\"\nsubnets = [\"10.1.0.0/24\"]\n".into(),
            "kind = \"vxlan\"\nvni = 7\nport = 8472\nlocal = \"192.0.2.1\"\nbridge = \"br0\"\n[[peer]]\nvtep = \"192.0.2.2\"\n".into(),
            "kind = \"wireguard\"\nprivate_key = \"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\"\naddress = [\"10.8.0.1/24\"]\n\
             dns = [\"10.8.0.53\", \"corp.example\"]\ntable = \"off\"\nfwmark = 51820\n[[peer]]\n\
             public_key = \"xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\"\n\
             preshared_key = \"/UwcSPg38hW/D9Y3tcS1FOV0K1wuURMbS0sesJEP5ak=\"\nallowed_ips = [\"0.0.0.0/0\"]\n\
             endpoint = \"vpn.example.com:51820\"\npersistent_keepalive = 25\n"
                .into(),
        ];
        for text in texts {
            let p = parse_toml("x", &text).unwrap();
            let written = write_toml(&p);
            assert_eq!(parse_toml("x", &written).unwrap(), p, "{written}");
        }
    }
}
