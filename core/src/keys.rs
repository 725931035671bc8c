//! WireGuard keys: Curve25519 key pairs and preshared keys, written as base64 the way `wg` writes them.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A public key: 32 bytes, shown as 44 characters of base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

/// A private or preshared key. Never shown by `Debug`; zeroed when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a WireGuard key: a key is 32 bytes written as 44 characters of base64, as `wg genkey` prints it")]
pub struct BadKey;

fn decode(text: &str) -> Result<[u8; 32], BadKey> {
    let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| BadKey)?);
    bytes.as_slice().try_into().map_err(|_| BadKey)
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A new private key, clamped as `wg genkey` clamps it.
    pub fn generate_private() -> Self {
        let secret = x25519_dalek::StaticSecret::random_from_rng(rand_core::OsRng);
        let mut bytes = secret.to_bytes();
        bytes[0] &= 248;
        bytes[31] = (bytes[31] & 127) | 64;
        Self::from_bytes(bytes)
    }

    /// A new preshared key: 32 random bytes, as `wg genpsk` makes it.
    pub fn generate_preshared() -> Self {
        let mut bytes = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        Self::from_bytes(bytes)
    }

    /// The public key of this private key.
    pub fn public_key(&self) -> PublicKey {
        let secret = x25519_dalek::StaticSecret::from(*self.0);
        PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether a Diffie-Hellman with `peer` gives a real shared secret. The small-order points (the all-zero key
    /// among them) give all zeros, whoever we are: a session with such a "peer" would have keys anyone can
    /// compute.
    pub fn agrees_with(&self, peer: &PublicKey) -> bool {
        let secret = x25519_dalek::StaticSecret::from(*self.0);
        secret.diffie_hellman(&x25519_dalek::PublicKey::from(peer.0)).was_contributory()
    }

    /// The key as base64, for writing it to a file the user asked for.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(*self.0))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl FromStr for SecretKey {
    type Err = BadKey;
    fn from_str(s: &str) -> Result<Self, BadKey> {
        decode(s).map(Self::from_bytes)
    }
}

impl Serialize for SecretKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for SecretKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = BadKey;
    fn from_str(s: &str) -> Result<Self, BadKey> {
        decode(s).map(PublicKey)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key pair from the WireGuard documentation's examples, checked with `wg pubkey`.
    #[test]
    fn public_key_matches_wg() {
        let private: SecretKey = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=".parse().unwrap();
        assert_eq!(private.public_key().to_string(), "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=");
    }

    #[test]
    fn generated_keys_are_clamped_and_round_trip() {
        let k = SecretKey::generate_private();
        assert_eq!(k.as_bytes()[0] & 7, 0);
        assert_eq!(k.as_bytes()[31] & 0xc0, 0x40);
        let text = k.to_base64();
        assert_eq!(text.len(), 44);
        assert_eq!(text.parse::<SecretKey>().unwrap(), k);
        assert_ne!(SecretKey::generate_preshared(), SecretKey::generate_preshared());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let k = SecretKey::generate_private();
        assert_eq!(format!("{k:?}"), "SecretKey(..)");
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in ["", "abc", "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBm=", "!!!!"] {
            assert!(bad.parse::<PublicKey>().is_err(), "{bad}");
        }
    }
}
