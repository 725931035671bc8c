//! What a `set=1` makes of a WireGuard tunnel's profile: the request's operations, in order, on the profile the
//! tunnel is at, giving the profile to apply (the same way `culvert apply` does). What `wg syncconf` sends again
//! unchanged gives back the same profile, so that applying it costs the peers nothing.

use culvert_core::keys::{PublicKey, SecretKey};
use culvert_core::profile::{Endpoint, WireguardPeer, WireguardTunnel};

use super::request::{AllowedIp, SetDevice};

/// `current` changed as `set` says. `bound_port` is the port the tunnel's socket has: a profile that left the
/// port to the kernel keeps doing so when `set` names the port it got.
pub fn apply_set(current: &WireguardTunnel, bound_port: u16, set: &SetDevice) -> WireguardTunnel {
    let mut next = current.clone();
    if let Some(key) = set.private_key {
        next.private_key = SecretKey::from_bytes(key);
    }
    if let Some(port) = set.listen_port
        && !(current.listen_port.is_none() && port == bound_port)
    {
        next.listen_port = Some(port);
    }
    if let Some(mark) = set.fwmark {
        next.fwmark = (mark != 0).then_some(mark);
    }
    if set.replace_peers {
        next.peers.clear();
    }
    for op in &set.peers {
        let key = PublicKey(op.public_key);
        let at = next.peers.iter().position(|p| p.public_key == key);
        if op.remove {
            if let Some(at) = at {
                next.peers.remove(at);
            }
            continue;
        }
        let at = match at {
            Some(at) => at,
            None if op.update_only => continue,
            None => {
                next.peers.push(WireguardPeer {
                    public_key: key,
                    preshared_key: None,
                    allowed_ips: vec![],
                    endpoint: None,
                    persistent_keepalive: None,
                });
                next.peers.len() - 1
            }
        };
        let peer = &mut next.peers[at];
        if let Some(psk) = op.preshared_key {
            peer.preshared_key = (psk != [0; 32]).then(|| SecretKey::from_bytes(psk));
        }
        if let Some(endpoint) = op.endpoint {
            // Unchanged, a host-name endpoint stays a name (for re-resolution), not what it resolved to.
            if !matches!(&peer.endpoint, Some(Endpoint::Host { .. })) || op.endpoint != resolved(current, &key) {
                peer.endpoint = Some(Endpoint::Addr(endpoint));
            }
        }
        if let Some(interval) = op.persistent_keepalive_interval {
            peer.persistent_keepalive = (interval != 0).then_some(interval);
        }
        if op.replace_allowed_ips {
            peer.allowed_ips.clear();
        }
        // A set of what the peer has, made at the first change: `wg setconf` may give one peer 130,560 of them,
        // and looking each up in the list took minutes.
        let mut has: Option<std::collections::HashSet<ipnet::IpNet>> = None;
        for change in &op.allowed_ips {
            let has = has.get_or_insert_with(|| peer.allowed_ips.iter().copied().collect());
            match change {
                AllowedIp::Add(net) => {
                    if has.insert(*net) {
                        peer.allowed_ips.push(*net);
                    }
                }
                AllowedIp::Remove(net) => {
                    if has.remove(net) {
                        peer.allowed_ips.retain(|n| n != net);
                    }
                }
            }
        }
    }
    next
}

/// The address a peer's endpoint is now, when the profile gave it as an address (a name's is not known here).
fn resolved(current: &WireguardTunnel, key: &PublicKey) -> Option<std::net::SocketAddr> {
    current.peers.iter().find(|p| p.public_key == *key).and_then(|p| match &p.endpoint {
        Some(Endpoint::Addr(a)) => Some(*a),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::uapi::request::{Request, parse};

    fn tunnel() -> WireguardTunnel {
        let text = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.8.0.1/24\n\
                    [Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nAllowedIPs = 10.8.0.2/32\n\
                    Endpoint = 172.31.0.2:51821\nPersistentKeepalive = 25\n";
        let p = culvert_core::profile::wg_quick::parse("wg0", text).unwrap().0;
        let culvert_core::profile::Tunnel::Wireguard(w) = p.tunnel else { panic!() };
        w
    }

    fn set(text: &str) -> SetDevice {
        match parse(text.as_bytes()).unwrap() {
            Request::Set(s) => s,
            Request::Get => panic!(),
        }
    }

    fn hex(key: &PublicKey) -> String {
        key.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn what_syncconf_sends_again_unchanged_changes_nothing() {
        let t = tunnel();
        let p = hex(&t.peers[0].public_key);
        let private: String = t.private_key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let again = set(&format!(
            "set=1\nprivate_key={private}\nlisten_port=40000\npublic_key={p}\nendpoint=172.31.0.2:51821\n\
             persistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.8.0.2/32\n"
        ));
        assert_eq!(apply_set(&t, 40000, &again), t, "the port the kernel picked stays the kernel's");
        let setconf = set(&format!(
            "set=1\nreplace_peers=true\npublic_key={p}\nendpoint=172.31.0.2:51821\npersistent_keepalive_interval=25\n\
             allowed_ip=10.8.0.2/32\n"
        ));
        assert_eq!(apply_set(&t, 40000, &setconf), t);
    }

    #[test]
    fn peers_are_added_changed_and_removed_as_wg_set_says() {
        let t = tunnel();
        let new = SecretKey::generate_private().public_key();
        let added = apply_set(
            &t,
            1,
            &set(&format!("set=1\npublic_key={}\nendpoint=172.32.0.2:51822\nallowed_ip=10.8.0.3/32\n", hex(&new))),
        );
        assert_eq!(added.peers.len(), 2);
        assert_eq!(added.peers[1].endpoint, Some(Endpoint::Addr("172.32.0.2:51822".parse().unwrap())));
        let old = hex(&t.peers[0].public_key);
        let changed = apply_set(
            &added,
            1,
            &set(&format!(
                "set=1\npublic_key={old}\nallowed_ip=-10.8.0.2/32\nallowed_ip=10.8.9.0/24\npersistent_keepalive_interval=0\n"
            )),
        );
        assert_eq!(changed.peers[0].allowed_ips, vec!["10.8.9.0/24".parse().unwrap()]);
        assert_eq!(changed.peers[0].persistent_keepalive, None);
        let removed = apply_set(&changed, 1, &set(&format!("set=1\npublic_key={}\nremove=true\n", hex(&new))));
        assert_eq!(removed.peers.len(), 1);
        let only_update = apply_set(&removed, 1, &set(&format!("set=1\npublic_key={}\nupdate_only=true\n", hex(&new))));
        assert_eq!(only_update, removed, "update_only never adds a peer");
        let unmarked = apply_set(&removed, 1, &set("set=1\nfwmark=0\n"));
        assert_eq!(unmarked.fwmark, None);
    }
}
