//! Creating and editing profiles in the app's forms, with exactly the rules of the CLI and the helper.
//!
//! A form's draft is the profile file's schema ([`Draft`]) as JSON: the keys of the README's examples (`kind`,
//! `address`, `listen_port`, `peer`...), its TypeScript type generated from the Rust one. It is read and checked
//! by culvert-core as a file is, so every error names the same field with the same fix as `culvert up` would. A
//! WireGuard draft's secrets may be left out when editing: the stored ones are kept.

use culvert_core::keys::SecretKey;
use culvert_core::profile::{Draft, FileProblem, Profile, Tunnel};
use serde::{Deserialize, Serialize};
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

/// What a form sends: the [`Draft`]'s keys as far as they are filled in. It may lack keys or hold values of the
/// wrong type; [`parse`] says which, as it would of a file.
#[derive(Debug, Clone, PartialEq, Deserialize, TS)]
#[ts(export)]
pub struct FormDraft(#[ts(type = "Record<string, unknown>")] pub serde_json::Value);

/// A stored profile opened for editing: its draft without secrets, and this host's public key if it has one.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export)]
pub struct Editable {
    pub draft: Draft,
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

/// The draft as a profile, the secrets it leaves out taken from `stored`: its private key, and each peer's
/// preshared key (by the peer's public key).
pub fn parse(name: &str, draft: FormDraft, stored: Option<&Profile>) -> Result<Profile, FormError> {
    let mut draft = Draft::from_json(draft.0).map_err(problem)?;
    if let (Draft::Wireguard(d), Some(Profile { tunnel: Tunnel::Wireguard(w), .. })) = (&mut draft, stored) {
        d.private_key.get_or_insert_with(|| w.private_key.to_base64().to_string());
        for peer in &mut d.peer {
            let stored_psk = w
                .peers
                .iter()
                .find(|p| p.public_key.to_string() == peer.public_key)
                .and_then(|p| p.preshared_key.as_ref());
            if let (None, Some(psk)) = (&peer.preshared_key, stored_psk) {
                peer.preshared_key = Some(psk.to_base64().to_string());
            }
        }
    }
    if let (Draft::Overlay(d), Some(Profile { tunnel: Tunnel::Overlay(o), .. })) = (&mut draft, stored)
        && d.etcd_username.is_some()
        && d.etcd_password.is_none()
    {
        d.etcd_password = o.etcd_password.as_ref().map(|p| p.expose().to_owned());
    }
    let mut profile = draft.into_profile(name).map_err(|e| problem(FileProblem::Field(e)))?;
    // An overlay's PEM files are read here, by the app, as the CLI reads them: culvertd reads no user's file. A
    // relative path is taken from the home directory.
    let home = std::env::var_os("HOME").map_or_else(|| std::path::PathBuf::from("/"), std::path::PathBuf::from);
    culvert_core::profile::read_etcd_files(&mut profile, &home).map_err(|e| match e {
        culvert_core::profile::LoadError::Invalid { error, .. } => problem(error),
        other => FormError { field: None, problem: other.to_string(), fix: String::new() },
    })?;
    Ok(profile)
}

/// A stored profile's draft, without its secrets.
pub fn editable(profile: &Profile) -> Editable {
    let public_key = match &profile.tunnel {
        Tunnel::Wireguard(w) => Some(w.private_key.public_key().to_string()),
        _ => None,
    };
    Editable { draft: Draft::from(profile).without_secrets(), public_key }
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
        let e = parse("office", FormDraft(d.clone()), None).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("peer[0].allowed_ips[0]"));
        d["peer"][0]["allowed_ips"] = json!(["10.8.0.2/32"]);
        d["listen_port"] = json!(70000);
        assert_eq!(parse("office", FormDraft(d.clone()), None).unwrap_err().field.as_deref(), Some("listen_port"));
        let e = parse("bad name", FormDraft(json!({"kind": "hostgw", "peer": []})), None).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"), "{e:?}");
        let e = parse("gw", FormDraft(json!({"kind": "hostgw", "peer": []})), None).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("peer"), "{e:?}");
    }

    #[test]
    fn editing_keeps_the_stored_key_and_never_shows_it() {
        let stored =
            parse("office", FormDraft(wg(Some("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="))), None).unwrap();
        let e = editable(&stored);
        let Draft::Wireguard(d) = &e.draft else { panic!("{:?}", e.draft) };
        assert_eq!(d.private_key, None);
        assert_eq!(e.public_key.as_deref(), Some("HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="));
        let saved = parse("office", FormDraft(serde_json::to_value(&e.draft).unwrap()), Some(&stored)).unwrap();
        assert_eq!(saved, stored);
        // A new WireGuard profile needs its key, and the error says which field.
        let e = parse("office", FormDraft(wg(None)), None).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("private_key"), "{e:?}");
    }

    #[test]
    fn editing_keeps_the_stored_preshared_keys() {
        let mut d = wg(Some("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="));
        d["peer"][0]["preshared_key"] = json!("/UwcSPg38hW/D9Y3tcS1FOV0K1wuURMbS0sesJEP5ak=");
        let stored = parse("office", FormDraft(d.clone()), None).unwrap();
        let e = editable(&stored);
        let Draft::Wireguard(w) = &e.draft else { panic!("{:?}", e.draft) };
        assert_eq!(w.peer[0].preshared_key, None);
        assert_eq!(parse("office", FormDraft(serde_json::to_value(&e.draft).unwrap()), Some(&stored)).unwrap(), stored);
    }

    #[test]
    fn generated_key_pairs_match() {
        let k = keypair();
        let private: SecretKey = k.private_key.parse().unwrap();
        assert_eq!(private.public_key().to_string(), k.public_key);
    }
}
