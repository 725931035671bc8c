//! Longest-prefix match from destination addresses to peers (WireGuard's "AllowedIPs").
//!
//! One hash map per prefix length in use, searched from the longest: a lookup costs one hash probe per
//! distinct prefix length, whatever the number of prefixes.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, Clone)]
pub struct AllowedIps<T> {
    v4: Vec<(u8, HashMap<u32, T>)>,
    v6: Vec<(u8, HashMap<u128, T>)>,
}

impl<T> Default for AllowedIps<T> {
    fn default() -> Self {
        Self { v4: Vec::new(), v6: Vec::new() }
    }
}

fn mask32(addr: u32, len: u8) -> u32 {
    if len == 0 { 0 } else { addr & (u32::MAX << (32 - u32::from(len))) }
}

fn mask128(addr: u128, len: u8) -> u128 {
    if len == 0 { 0 } else { addr & (u128::MAX << (128 - u32::from(len))) }
}

fn table<K, T>(tables: &mut Vec<(u8, HashMap<K, T>)>, len: u8) -> &mut HashMap<K, T> {
    let at = match tables.binary_search_by(|(l, _)| len.cmp(l)) {
        Ok(at) => at,
        Err(at) => {
            tables.insert(at, (len, HashMap::new()));
            at
        }
    };
    &mut tables[at].1
}

impl<T: Copy> AllowedIps<T> {
    /// Adds `net`, replacing what it mapped to before.
    pub fn insert(&mut self, net: IpNet, value: T) {
        match net {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                table(&mut self.v4, len).insert(mask32(n.addr().to_bits(), len), value);
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                table(&mut self.v6, len).insert(mask128(n.addr().to_bits(), len), value);
            }
        }
    }

    /// The value of the longest prefix containing `addr`.
    pub fn find(&self, addr: IpAddr) -> Option<T> {
        match addr {
            IpAddr::V4(a) => {
                let bits = a.to_bits();
                self.v4.iter().find_map(|(len, map)| map.get(&mask32(bits, *len)).copied())
            }
            IpAddr::V6(a) => {
                // An IPv4-mapped destination is routed as the IPv4 address it carries.
                if let Some(v4) = a.to_ipv4_mapped() {
                    return self.find(IpAddr::V4(v4));
                }
                let bits = a.to_bits();
                self.v6.iter().find_map(|(len, map)| map.get(&mask128(bits, *len)).copied())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(entries: &[(&str, usize)]) -> AllowedIps<usize> {
        let mut t = AllowedIps::default();
        for (net, v) in entries {
            t.insert(net.parse().unwrap(), *v);
        }
        t
    }

    fn find(t: &AllowedIps<usize>, a: &str) -> Option<usize> {
        t.find(a.parse().unwrap())
    }

    #[test]
    fn longest_prefix_wins() {
        let t = t(&[("10.0.0.0/8", 1), ("10.9.0.0/16", 2), ("10.9.0.7/32", 3), ("0.0.0.0/0", 4)]);
        assert_eq!(find(&t, "10.9.0.7"), Some(3));
        assert_eq!(find(&t, "10.9.0.8"), Some(2));
        assert_eq!(find(&t, "10.1.2.3"), Some(1));
        assert_eq!(find(&t, "192.0.2.1"), Some(4));
    }

    #[test]
    fn no_match_is_none() {
        let t = t(&[("10.9.0.0/24", 1), ("fd00:9::/64", 2)]);
        assert_eq!(find(&t, "10.9.1.1"), None);
        assert_eq!(find(&t, "fd00:9::1234"), Some(2));
        assert_eq!(find(&t, "fd00:a::1"), None);
        assert_eq!(find(&t, "::ffff:10.9.0.3"), Some(1));
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let a = t(&[("10.0.0.0/8", 1), ("10.9.0.0/16", 2)]);
        let b = t(&[("10.9.0.0/16", 2), ("10.0.0.0/8", 1)]);
        for addr in ["10.9.1.1", "10.1.1.1"] {
            assert_eq!(find(&a, addr), find(&b, addr));
        }
    }
}
