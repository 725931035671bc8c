//! Creating and editing profiles in the app's forms, with exactly the rules of the CLI and the helper.
//!
//! A form's draft is the profile's TOML table as a JSON object (the keys of the README's examples: `kind`,
//! `address`, `listen_port`, `peer`...). It is checked by turning it into TOML text and parsing that with
//! culvert-core, so every error names the same field with the same fix as `culvert up` would. A WireGuard
//! draft's `private_key` may be left out when editing: the stored key is kept.

use culvert_core::keys::SecretKey;
use culvert_core::profile::{self, FileProblem, Profile, Tunnel};
use serde::Serialize;
use ts_rs::TS;

use crate::model::ProfileSummary;

/// What is wrong with a draft: the field (as `peer[0].allowed_ips[1]`), the problem and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct FormError {
    pub field: Option<String>,
    pub problem: String,
    pub fix: String,
}

/// A stored profile opened for editing: its draft without secrets, and this host's public key if it has one.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export)]
pub struct Editable {
    #[ts(type = "Record<string, unknown>")]
    pub draft: serde_json::Value,
    pub public_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct KeyPair {
    pub private_key: String,
    pub public_key: String,
}

fn problem(e: FileProblem) -> FormError {
    match e {
        FileProblem::Field(f) => FormError { field: Some(f.field), problem: f.problem, fix: f.fix },
        // serde names a missing key in its message: the form can put the error beside that input.
        FileProblem::Syntax { message, fix, .. } => {
            let field =
                message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()).map(str::to_owned);
            FormError { field, problem: message, fix }
        }
    }
}

/// The draft as a profile, its private key taken from `stored` when the draft has none.
pub fn parse(name: &str, draft: &serde_json::Value, stored: Option<&Profile>) -> Result<Profile, FormError> {
    let mut table: toml::Table = serde_json::from_value(draft.clone()).map_err(|e| FormError {
        field: None,
        problem: format!("the form's data is not a profile: {e}"),
        fix: "fill in the fields again".into(),
    })?;
    // Secrets the form never holds come back from the stored profile: its private key, and each peer's
    // preshared key (by the peer's public key).
    if table.get("kind").and_then(toml::Value::as_str) == Some("wireguard")
        && let Some(Profile { tunnel: Tunnel::Wireguard(w), .. }) = stored
    {
        if !table.contains_key("private_key") {
            table.insert("private_key".into(), toml::Value::String(w.private_key.to_base64().to_string()));
        }
        if let Some(toml::Value::Array(peers)) = table.get_mut("peer") {
            for peer in peers.iter_mut().filter_map(toml::Value::as_table_mut) {
                let key = peer.get("public_key").and_then(toml::Value::as_str).map(str::to_owned);
                let stored_psk = w
                    .peers
                    .iter()
                    .find(|p| Some(p.public_key.to_string()) == key)
                    .and_then(|p| p.preshared_key.as_ref());
                if let (false, Some(psk)) = (peer.contains_key("preshared_key"), stored_psk) {
                    peer.insert("preshared_key".into(), toml::Value::String(psk.to_base64().to_string()));
                }
            }
        }
    }
    let text = toml::to_string(&table).map_err(|e| FormError {
        field: None,
        problem: format!("the form's data is not a profile: {e}"),
        fix: "fill in the fields again".into(),
    })?;
    profile::parse_toml(name, &text).map_err(problem)
}

/// A stored profile's draft, without its secrets.
pub fn editable(profile: &Profile) -> Editable {
    let mut table: toml::Table = profile::write_toml(profile).parse().unwrap_or_default();
    table.remove("private_key");
    if let Some(toml::Value::Array(peers)) = table.get_mut("peer") {
        for peer in peers.iter_mut().filter_map(toml::Value::as_table_mut) {
            peer.remove("preshared_key");
        }
    }
    let public_key = match &profile.tunnel {
        Tunnel::Wireguard(w) => Some(w.private_key.public_key().to_string()),
        _ => None,
    };
    Editable { draft: serde_json::to_value(table).unwrap_or_default(), public_key }
}

pub fn summary(p: &Profile) -> ProfileSummary {
    ProfileSummary { name: p.name.clone(), kind: Some(p.kind()), encrypted: p.kind().encrypted(), problem: None }
}

pub fn keypair() -> KeyPair {
    let k = SecretKey::generate_private();
    KeyPair { public_key: k.public_key().to_string(), private_key: k.to_base64().to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wg(private: Option<&str>) -> serde_json::Value {
        let mut v = json!({
            "kind": "wireguard",
            "address": ["10.8.0.1/24"],
            "peer": [{"public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "allowed_ips": ["10.8.0.2/32"]}]
        });
        if let Some(k) = private {
            v["private_key"] = json!(k);
        }
        v
    }

    #[test]
    fn errors_name_the_field_as_the_cli_does() {
        let mut d = wg(Some("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="));
        d["peer"][0]["allowed_ips"] = json!(["10.8.0.2/33"]);
        let e = parse("office", &d, None).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("peer[0].allowed_ips[0]"));
        d["peer"][0]["allowed_ips"] = json!(["10.8.0.2/32"]);
        d["listen_port"] = json!(70000);
        assert_eq!(parse("office", &d, None).unwrap_err().field.as_deref(), Some("listen_port"));
        let e = parse("bad name", &json!({"kind": "hostgw", "peer": []}), None).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"), "{e:?}");
        let e = parse("gw", &json!({"kind": "hostgw", "peer": []}), None).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("peer"), "{e:?}");
    }

    #[test]
    fn editing_keeps_the_stored_key_and_never_shows_it() {
        let stored = parse("office", &wg(Some("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=")), None).unwrap();
        let e = editable(&stored);
        assert!(e.draft.get("private_key").is_none(), "{}", e.draft);
        assert_eq!(e.public_key.as_deref(), Some("HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="));
        let saved = parse("office", &e.draft, Some(&stored)).unwrap();
        assert_eq!(saved, stored);
        // A new WireGuard profile needs its key, and the error says which field.
        let e = parse("office", &wg(None), None).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("private_key"), "{e:?}");
    }

    #[test]
    fn editing_keeps_the_stored_preshared_keys() {
        let mut d = wg(Some("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="));
        d["peer"][0]["preshared_key"] = json!("/UwcSPg38hW/D9Y3tcS1FOV0K1wuURMbS0sesJEP5ak=");
        let stored = parse("office", &d, None).unwrap();
        let e = editable(&stored);
        assert!(e.draft["peer"][0].get("preshared_key").is_none());
        assert_eq!(parse("office", &e.draft, Some(&stored)).unwrap(), stored);
    }

    #[test]
    fn generated_key_pairs_match() {
        let k = keypair();
        let private: SecretKey = k.private_key.parse().unwrap();
        assert_eq!(private.public_key().to_string(), k.public_key);
    }
}
