//! How key values are stored and looked up: the stored form of a key and its lookup hash.

use sha2::{Digest, Sha256};

/// Turns plain keys into their stored form and back, and hashes them for lookups. Every lookup,
/// dedupe and filter goes through [`KeyCodec::hash`], never through the stored value.
#[derive(Clone, Debug, Default)]
pub struct KeyCodec;

/// A stored key value could not be turned back into a key.
#[derive(Debug, thiserror::Error)]
#[error("stored key value cannot be decoded")]
pub struct DecodeError;

impl KeyCodec {
    /// Keys stored as plain text (no `ENCRYPTION_KEY`).
    pub fn plaintext() -> Self {
        KeyCodec
    }

    /// The lookup hash: SHA-256 hex of the plain key; empty input hashes to empty.
    pub fn hash(&self, plain: &str) -> String {
        if plain.is_empty() {
            return String::new();
        }
        hex::encode(Sha256::digest(plain.as_bytes()))
    }

    /// The value to store for a plain key.
    pub fn encode(&self, plain: &str) -> String {
        plain.to_string()
    }

    /// The plain key of a stored value.
    pub fn decode(&self, stored: &str) -> Result<String, DecodeError> {
        Ok(stored.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_hex_and_empty_for_empty() {
        let codec = KeyCodec::plaintext();
        assert_eq!(
            codec.hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(codec.hash(""), "");
        assert_eq!(codec.decode(&codec.encode("sk-1")).unwrap(), "sk-1");
    }
}
