//! nftables tables of Culvert's own, through the nftables crate (typed JSON fed to `/usr/sbin/nft -j -f -`).
//! Each table is made whole in one transaction and removed whole; Culvert never touches the rest of the ruleset.

use std::borrow::Cow;
use std::collections::HashSet;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{Expression, NamedExpression, Payload, PayloadField, Prefix};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{Match, NAT, NATFlag, Operator, Statement};
use nftables::types::{NfChainType, NfFamily, NfHook};

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

/// Removing a table that may not exist: one transaction that adds it (a no-op when it exists) and deletes it.
pub fn removal(table: &str) -> Nftables<'static> {
    let table: Cow<'static, str> = table.to_owned().into();
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(Table { family: NfFamily::IP, name: table.clone(), ..Table::default() }));
    batch.delete(NfListObject::Table(Table { family: NfFamily::IP, name: table, ..Table::default() }));
    batch.to_nftables()
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
