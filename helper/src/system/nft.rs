//! nftables tables of Culvert's own, through the nftables crate (typed JSON fed to `/usr/sbin/nft -j -f -`).
//! Each table is made whole in one transaction and removed whole; Culvert never touches the rest of the ruleset.

use std::borrow::Cow;
use std::collections::HashSet;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, SetItem};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{Match, NAT, NATFlag, Operator, Reject, RejectType, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook, RejectCode};

/// The path is pinned: the helper runs as root and must not run whatever `nft` a PATH finds first.
const NFT: &str = "/usr/sbin/nft";

/// Linux's source-NAT priority in the postrouting hook (`srcnat`).
const SRCNAT: i32 = 100;

#[derive(Debug, thiserror::Error)]
#[error("nftables: {message}")]
pub struct NftError {
    pub message: String,
}

/// The table holding an overlay's NAT, named for its tunnel.
pub fn masq_table(tunnel: &str) -> String {
    format!("culvert-masq-{tunnel}")
}

/// flannel's `--ip-masq` rules, for the pods of `subnet` in `network`: traffic between pods keeps its
/// addresses; pod traffic leaving the network (multicast aside) is masqueraded; and traffic from this host to
/// other hosts' pods leaves from this host's overlay address, so that their replies come back through the
/// overlay.
pub fn masq_ruleset(table: &str, network: Ipv4Net, subnet: Ipv4Net) -> Nftables<'static> {
    let table: Cow<'static, str> = table.to_owned().into();
    let mut batch = Batch::new();
    // Adding then deleting makes the transaction replace a table left by a crash instead of failing on it.
    batch.add(NfListObject::Table(Table { family: NfFamily::IP, name: table.clone(), ..Table::default() }));
    batch.delete(NfListObject::Table(Table { family: NfFamily::IP, name: table.clone(), ..Table::default() }));
    batch.add(NfListObject::Table(Table { family: NfFamily::IP, name: table.clone(), ..Table::default() }));
    batch.add(NfListObject::Chain(Chain {
        family: NfFamily::IP,
        table: table.clone(),
        name: "postrouting".into(),
        _type: Some(NfChainType::NAT),
        hook: Some(NfHook::Postrouting),
        prio: Some(SRCNAT),
        ..Chain::default()
    }));
    let multicast: Ipv4Net = "224.0.0.0/4".parse().unwrap_or_default();
    let rules: [Vec<Statement<'static>>; 4] = [
        vec![addr("saddr", Operator::EQ, network), addr("daddr", Operator::EQ, network), Statement::Return(None)],
        vec![addr("saddr", Operator::EQ, network), addr("daddr", Operator::NEQ, multicast), masquerade()],
        vec![addr("saddr", Operator::NEQ, network), addr("daddr", Operator::EQ, subnet), Statement::Return(None)],
        vec![addr("saddr", Operator::NEQ, network), addr("daddr", Operator::EQ, network), masquerade()],
    ];
    for expr in rules {
        batch.add(NfListObject::Rule(Rule {
            family: NfFamily::IP,
            table: table.clone(),
            chain: "postrouting".into(),
            expr: expr.into(),
            ..Rule::default()
        }));
    }
    batch.to_nftables()
}

fn addr(field: &'static str, op: Operator, net: Ipv4Net) -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
            protocol: "ip".into(),
            field: field.into(),
        }))),
        right: Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(net.network().to_string().into())),
            len: u32::from(net.prefix_len()),
        })),
        op,
    })
}

fn masquerade() -> Statement<'static> {
    Statement::Masquerade(Some(NAT {
        addr: None,
        family: None,
        port: None,
        flags: Some(HashSet::from([NATFlag::FullyRandom])),
    }))
}

/// Removing an overlay's NAT table, which may not exist.
pub fn removal(table: &str) -> Nftables<'static> {
    removal_of(NfFamily::IP, table)
}

/// Removing a table that may not exist: one transaction that adds it (a no-op when it exists) and deletes it.
fn removal_of(family: NfFamily, table: &str) -> Nftables<'static> {
    let table: Cow<'static, str> = table.to_owned().into();
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(Table { family, name: table.clone(), ..Table::default() }));
    batch.delete(NfListObject::Table(Table { family, name: table, ..Table::default() }));
    batch.to_nftables()
}

/// The kill switch's table, `inet culvert`: one for the host, apart from overlays' NAT tables.
pub const KILL_SWITCH_TABLE: &str = "culvert";

/// What one full tunnel lets through the kill switch: its interface, culvertd's own packets for it (marked with
/// its fwmark: to its endpoints, wherever a roaming peer moves), and with `allow_lan` the local networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    pub interface: String,
    pub fwmark: u32,
    pub allow_lan: bool,
}

/// The local networks `allow_lan` lets through: the private and link-local ranges (and their local multicast),
/// as Mullvad's "local network sharing" does, so that the rule holds on whatever LAN the host moves to.
const LAN_V4: [&str; 6] =
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "224.0.0.0/24", "255.255.255.255/32"];
const LAN_V6: [&str; 3] = ["fe80::/10", "fc00::/7", "ff02::/16"];
/// Neighbour discovery, which IPv6 needs on every link (router and neighbour solicitations and advertisements).
const NDP: [&str; 4] = ["nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert"];

/// The kill switch over `passages` (none: lockdown with no tunnel, which lets nothing out): output and forward
/// chains that drop by default. Output lets through loopback, each tunnel's interface and marked packets,
/// culvertd's own DNS lookups (marked [`super::CONTROL_MARK`]), DHCP and neighbour discovery, and the LAN where
/// a tunnel allows it; other DNS to port 53 goes only through a tunnel,
/// everything else is refused (an error at once, rather than a wait). Forwarding passes only to and from the
/// tunnels. IPv6 needs no rule of its own: a tunnel without an IPv6 default route leaves IPv6 to the underlay,
/// where it is dropped.
///
/// Made whole in one transaction, which replaces whatever table of that name is there.
pub fn kill_switch_ruleset(passages: &[Passage]) -> Nftables<'static> {
    let table: Cow<'static, str> = KILL_SWITCH_TABLE.into();
    let family = NfFamily::INet;
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(Table { family, name: table.clone(), ..Table::default() }));
    batch.delete(NfListObject::Table(Table { family, name: table.clone(), ..Table::default() }));
    batch.add(NfListObject::Table(Table { family, name: table.clone(), ..Table::default() }));
    for (name, hook) in [("output", NfHook::Output), ("forward", NfHook::Forward)] {
        batch.add(NfListObject::Chain(Chain {
            family,
            table: table.clone(),
            name: name.into(),
            _type: Some(NfChainType::Filter),
            hook: Some(hook),
            prio: Some(0),
            policy: Some(NfChainPolicy::Drop),
            ..Chain::default()
        }));
    }
    let accept = || Statement::Accept(None);
    let mut output: Vec<Vec<Statement<'static>>> = vec![vec![meta_eq(MetaKey::Oifname, text("lo")), accept()]];
    for p in passages {
        output.push(vec![meta_eq(MetaKey::Mark, Expression::Number(p.fwmark)), accept()]);
        output.push(vec![meta_eq(MetaKey::Oifname, text(&p.interface)), accept()]);
    }
    // culvertd's own lookups of endpoint names (super::resolver), to the host's servers; everyone else's DNS
    // goes into a tunnel or is refused.
    for proto in ["udp", "tcp"] {
        output.push(vec![
            meta_eq(MetaKey::Mark, Expression::Number(super::CONTROL_MARK)),
            port(proto, "dport", 53),
            accept(),
        ]);
    }
    for proto in ["udp", "tcp"] {
        output.push(vec![port(proto, "dport", 53), reject(RejectCode::PortUnreach)]);
    }
    output.push(vec![port("udp", "sport", 68), port("udp", "dport", 67), accept()]);
    output.push(vec![port("udp", "sport", 546), port("udp", "dport", 547), accept()]);
    output.push(vec![one_of("icmpv6", "type", NDP.iter().map(|t| Expression::String((*t).into()))), accept()]);
    if passages.iter().any(|p| p.allow_lan) {
        for (proto, nets) in [("ip", &LAN_V4[..]), ("ip6", &LAN_V6[..])] {
            output.push(vec![one_of(proto, "daddr", nets.iter().map(|n| prefix(n))), accept()]);
        }
    }
    output.push(vec![reject(RejectCode::AdminProhibited)]);
    let mut forward = Vec::new();
    for p in passages {
        forward.push(vec![meta_eq(MetaKey::Oifname, text(&p.interface)), accept()]);
        forward.push(vec![meta_eq(MetaKey::Iifname, text(&p.interface)), accept()]);
    }
    for (chain, rules) in [("output", output), ("forward", forward)] {
        for expr in rules {
            batch.add(NfListObject::Rule(Rule {
                family,
                table: table.clone(),
                chain: chain.into(),
                expr: expr.into(),
                ..Rule::default()
            }));
        }
    }
    batch.to_nftables()
}

/// Removing the kill switch's table, which may not exist.
pub fn kill_switch_removal() -> Nftables<'static> {
    removal_of(NfFamily::INet, KILL_SWITCH_TABLE)
}

fn text(s: &str) -> Expression<'static> {
    Expression::String(s.to_owned().into())
}

fn meta_eq(key: MetaKey, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match { left: Expression::Named(NamedExpression::Meta(Meta { key })), right, op: Operator::EQ })
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
        protocol: protocol.into(),
        field: field.into(),
    })))
}

fn port(protocol: &'static str, field: &'static str, number: u16) -> Statement<'static> {
    Statement::Match(Match {
        left: payload(protocol, field),
        right: Expression::Number(number.into()),
        op: Operator::EQ,
    })
}

fn one_of(
    protocol: &'static str,
    field: &'static str,
    items: impl Iterator<Item = Expression<'static>>,
) -> Statement<'static> {
    Statement::Match(Match {
        left: payload(protocol, field),
        right: Expression::Named(NamedExpression::Set(items.map(SetItem::Element).collect())),
        op: Operator::IN,
    })
}

fn prefix(net: &str) -> Expression<'static> {
    let (addr, len) = net.split_once('/').unwrap_or((net, "32"));
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(addr.to_owned().into())),
        len: len.parse().unwrap_or(32),
    }))
}

fn reject(code: RejectCode) -> Statement<'static> {
    Statement::Reject(Some(Reject::new(Some(RejectType::ICMPX), Some(code))))
}

/// Applies `ruleset` in one transaction; nft runs on a blocking thread.
pub async fn apply(ruleset: Nftables<'static>) -> Result<(), NftError> {
    tokio::task::spawn_blocking(move || {
        nftables::helper::apply_ruleset_with_args(&ruleset, Some(NFT), &[] as &[&str]).map_err(|e| NftError {
            message: match &e {
                nftables::helper::NftablesError::NftExecution { .. } => {
                    format!("{e}; install the nftables package, which gives {NFT}")
                }
                _ => e.to_string(),
            },
        })
    })
    .await
    .map_err(|e| NftError { message: e.to_string() })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kill_switch_drops_by_default_and_lets_each_tunnel_through() {
        let passages = [
            Passage { interface: "wg0".into(), fwmark: 51820, allow_lan: false },
            Passage { interface: "wg1".into(), fwmark: 51821, allow_lan: true },
        ];
        let json = serde_json::to_value(kill_switch_ruleset(&passages)).unwrap();
        let text = json.to_string();
        let commands = json["nftables"].as_array().unwrap();
        assert_eq!(commands[1]["delete"]["table"]["family"], "inet", "{text}");
        let chains: Vec<_> = commands.iter().filter_map(|c| c["add"]["chain"].as_object()).collect();
        assert_eq!(chains.len(), 2);
        assert!(chains.iter().all(|c| c["policy"] == "drop" && c["table"] == "culvert"), "{text}");
        let rules: Vec<String> =
            commands.iter().filter(|c| c["add"]["rule"].is_object()).map(|c| c["add"]["rule"].to_string()).collect();
        let position = |needle: &str| rules.iter().position(|r| r.contains(needle)).unwrap_or(usize::MAX);
        // Tunnels first, then culvertd's own lookups, then DNS refused, and the LAN only because wg1 allows it;
        // the last word is a refusal.
        assert!(position("51821") < position(r#""right":53"#), "{text}");
        let control = position(&format!(r#""right":{}"#, crate::system::CONTROL_MARK));
        assert!(control < position("port-unreachable") && rules[control].contains("accept"), "{text}");
        assert!(position(r#""oifname"}},"op":"==","right":"wg1""#) < position(r#""right":53"#), "{text}");
        assert!(text.contains(r#""prefix":{"addr":"192.168.0.0","len":16}"#), "{text}");
        let last_out = rules.iter().rfind(|r| r.contains(r#""chain":"output""#)).unwrap();
        assert!(last_out.contains("admin-prohibited"), "{text}");
        assert_eq!(rules.iter().filter(|r| r.contains(r#""chain":"forward""#)).count(), 4);
        // Without allow_lan, no LAN rule; lockdown with no tunnel lets only loopback, DHCP and NDP out.
        let none = serde_json::to_value(kill_switch_ruleset(&passages[..1])).unwrap().to_string();
        assert!(!none.contains("192.168.0.0"), "{none}");
        let lockdown = serde_json::to_value(kill_switch_ruleset(&[])).unwrap().to_string();
        assert!(
            lockdown.matches(r#""key":"mark""#).count() == 2 && lockdown.contains("nd-neighbor-solicit"),
            "{lockdown}"
        );
    }

    #[test]
    fn the_masq_rules_are_flannels_in_a_table_of_their_own() {
        let json = serde_json::to_value(masq_ruleset(
            "culvert-masq-ov",
            "10.5.0.0/16".parse().unwrap(),
            "10.5.3.0/24".parse().unwrap(),
        ))
        .unwrap();
        let text = json.to_string();
        let commands = json["nftables"].as_array().unwrap();
        assert_eq!(commands.len(), 8, "{text}");
        assert!(commands[1]["delete"]["table"]["name"] == "culvert-masq-ov", "{text}");
        assert_eq!(commands[3]["add"]["chain"]["hook"], "postrouting");
        assert_eq!(commands[3]["add"]["chain"]["type"], "nat");
        assert!(text.contains(r#""prefix":{"addr":"10.5.3.0","len":24}"#), "{text}");
        assert!(text.contains("fully-random"), "{text}");
        assert_eq!(commands.iter().filter(|c| c["add"]["rule"].is_object()).count(), 4);
    }
}
