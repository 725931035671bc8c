//! Secrets in the keyring: the Secret Service in a desktop session, a mock store in unit tests.

use std::sync::Arc;

use culvert_core::keys::PublicKey;
use keyring_core::{CredentialStore, Entry};
use zeroize::Zeroizing;

/// The keyring service every Culvert secret is stored under.
pub const SERVICE: &str = "culvert";

pub fn private_key_account(profile: &str) -> String {
    format!("{profile}/private_key")
}

pub fn etcd_password_account(profile: &str) -> String {
    format!("{profile}/etcd_password")
}

pub fn psk_account(profile: &str, peer: &PublicKey) -> String {
    format!("{profile}/preshared_key/{peer}")
}

#[derive(Debug, thiserror::Error)]
#[error(
    "the keyring refused to {op}: {source}; unlock your keyring (or start one, such as gnome-keyring) and try again"
)]
pub struct SecretError {
    op: &'static str,
    #[source]
    source: keyring_core::Error,
}

/// Where secrets go. The store is opened on first use, so commands that need no secret work without a keyring.
#[derive(Debug)]
pub struct Secrets {
    store: std::sync::OnceLock<Result<Arc<CredentialStore>, String>>,
    open: fn() -> Result<Arc<CredentialStore>, String>,
}

impl Secrets {
    /// The desktop session's Secret Service (over D-Bus).
    pub fn secret_service() -> Self {
        Self {
            store: std::sync::OnceLock::new(),
            open: || {
                zbus_secret_service_keyring_store::Store::new()
                    .map(|s| s as Arc<CredentialStore>)
                    .map_err(|e| e.to_string())
            },
        }
    }

    /// An in-memory store, for tests of logic.
    pub fn in_memory() -> Self {
        Self {
            store: std::sync::OnceLock::new(),
            open: || keyring_core::mock::Store::new().map(|s| s as Arc<CredentialStore>).map_err(|e| e.to_string()),
        }
    }

    fn entry(&self, account: &str, op: &'static str) -> Result<Entry, SecretError> {
        let store = self
            .store
            .get_or_init(self.open)
            .as_ref()
            .map_err(|e| SecretError { op, source: keyring_core::Error::NoStorageAccess(e.clone().into()) })?;
        Entry::new_in_store(store, SERVICE, account).map_err(|source| SecretError { op, source })
    }

    pub fn set(&self, account: &str, secret: &str) -> Result<(), SecretError> {
        self.entry(account, "store a key")?
            .set_password(secret)
            .map_err(|source| SecretError { op: "store a key", source })
    }

    pub fn get(&self, account: &str) -> Result<Option<Zeroizing<String>>, SecretError> {
        match self.entry(account, "read a key")?.get_password() {
            Ok(s) => Ok(Some(Zeroizing::new(s))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(source) => Err(SecretError { op: "read a key", source }),
        }
    }

    /// Deletes a secret; one that is not there is already deleted.
    pub fn delete(&self, account: &str) -> Result<(), SecretError> {
        match self.entry(account, "delete a key")?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(source) => Err(SecretError { op: "delete a key", source }),
        }
    }
}
