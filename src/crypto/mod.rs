//! How key values are stored and looked up: the stored form of a key and its lookup hash.
//!
//! With `ENCRYPTION_KEY` set, a stored value is `v1$<kdf id>$<base64url(nonce ‖ ciphertext ‖ tag)>`:
//! AES-256-GCM-SIV under a key derived by [`kdf`], a fresh random 96-bit nonce per value, and the
//! `v1$<kdf id>$` header as associated data so the header cannot be swapped. Without it, values
//! are stored as they are. Lookups never compare stored values (they differ on every write); they
//! compare [`KeyCodec::hash`]: HMAC-SHA256 under a derived key, or plain SHA-256 when off.

pub mod gptload;
pub mod kdf;

use std::fmt;
use std::sync::Arc;

use aes_gcm_siv::aead::{Aead, Generate as _, KeyInit as _, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use gpt_load_actors::domain::KeySecret;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

pub use kdf::{KdfError, KdfSpec};

/// The format version at the head of every encrypted value.
const VERSION: &str = "v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Turns plain keys into their stored form and back, and hashes them for lookups. Every lookup,
/// dedupe and filter goes through [`KeyCodec::hash`], never through the stored value. Cheap to
/// clone; the key material is shared and zeroed when the last clone drops.
#[derive(Clone, Default)]
pub struct KeyCodec {
    sealer: Option<Arc<Sealer>>,
}

enum Sealer {
    Own(OwnSealer),
    /// Data GPT-Load encrypted, read and written in its format until `migrate-keys` converts it.
    GptLoad(gptload::GptLoadCipher),
}

struct OwnSealer {
    kdf_id: String,
    /// `v1$<kdf id>$`: the prefix of every value and its associated data.
    header: String,
    cipher: Aes256GcmSiv,
    hasher: Hmac<Sha256>,
    verifier: String,
}

impl Sealer {
    fn kdf_id(&self) -> &str {
        match self {
            Sealer::Own(own) => &own.kdf_id,
            Sealer::GptLoad(_) => gptload::KDF_ID,
        }
    }

    fn verifier(&self) -> &str {
        match self {
            Sealer::Own(own) => &own.verifier,
            Sealer::GptLoad(theirs) => &theirs.verifier,
        }
    }

    fn hasher(&self) -> &Hmac<Sha256> {
        match self {
            Sealer::Own(own) => &own.hasher,
            Sealer::GptLoad(theirs) => &theirs.hasher,
        }
    }
}

/// A stored key value could not be turned back into a key. Never carries the value itself.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the value is encrypted but no ENCRYPTION_KEY is configured")]
    Encrypted,
    #[error("the value is not encrypted but ENCRYPTION_KEY is configured")]
    NotEncrypted,
    #[error("the value was encrypted under another key derivation")]
    OtherDerivation,
    #[error("the value is not in the encrypted format")]
    Malformed,
    #[error("the value does not decrypt with this key (wrong key or altered data)")]
    Authentication,
}

/// A key could not be encrypted.
#[derive(Debug, thiserror::Error)]
#[error("key encryption failed: {0}")]
pub struct EncodeError(pub(crate) String);

impl KeyCodec {
    /// Keys stored as plain text (no `ENCRYPTION_KEY`).
    pub fn plaintext() -> Self {
        Self { sealer: None }
    }

    /// Derives the keys from `password` under `spec` (Argon2id: slow by design, so call it once
    /// per process and off the async threads).
    pub fn derive(password: &str, spec: &KdfSpec) -> Result<Self, KdfError> {
        let keys = spec.derive(password.as_bytes())?;
        let kdf_id = spec.id();
        let cipher = Aes256GcmSiv::new_from_slice(keys.cipher_key.as_ref())
            .map_err(|e| KdfError::Derive(e.to_string()))?;
        let hasher = <Hmac<Sha256>>::new_from_slice(keys.hash_key.as_ref())
            .map_err(|e| KdfError::Derive(e.to_string()))?;
        Ok(Self {
            sealer: Some(Arc::new(Sealer::Own(OwnSealer {
                header: format!("{VERSION}${kdf_id}$"),
                kdf_id,
                cipher,
                hasher,
                verifier: keys.verifier,
            }))),
        })
    }

    /// Keys in GPT-Load's format under `password` (PBKDF2: slow by design, call it once per
    /// process and off the async threads).
    pub fn derive_gptload(password: &str) -> Result<Self, KdfError> {
        let cipher = gptload::GptLoadCipher::derive(password)
            .map_err(|e| KdfError::Derive(e.to_string()))?;
        Ok(Self {
            sealer: Some(Arc::new(Sealer::GptLoad(cipher))),
        })
    }

    /// The codec of `password` under a recorded key-derivation id, whichever format it names.
    pub fn derive_recorded(password: &str, kdf_id: &str) -> Result<Self, KdfError> {
        if kdf_id == gptload::KDF_ID {
            return Self::derive_gptload(password);
        }
        Self::derive(password, &KdfSpec::parse(kdf_id)?)
    }

    /// True when values are written in GPT-Load's format.
    pub fn is_gptload_format(&self) -> bool {
        matches!(self.sealer.as_deref(), Some(Sealer::GptLoad(_)))
    }

    /// True when values are encrypted.
    pub fn is_encrypting(&self) -> bool {
        self.sealer.is_some()
    }

    /// The key-derivation id written into every value, when encrypting.
    pub fn kdf_id(&self) -> Option<&str> {
        self.sealer.as_deref().map(Sealer::kdf_id)
    }

    /// The public check value of the derived key, when encrypting.
    pub fn verifier(&self) -> Option<&str> {
        self.sealer.as_deref().map(Sealer::verifier)
    }

    /// The lookup hash: HMAC-SHA256 hex under the derived hash key when encrypting, else SHA-256
    /// hex of the plain key; empty input hashes to empty.
    pub fn hash(&self, plain: &str) -> String {
        if plain.is_empty() {
            return String::new();
        }
        match self.sealer.as_deref() {
            Some(sealer) => {
                let mut mac = sealer.hasher().clone();
                mac.update(plain.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            None => plain_hash(plain),
        }
    }

    /// The value to store for a plain key: a fresh random nonce each time, so two encodings of
    /// one key differ. Empty stays empty (a log row that used no key).
    pub fn encode(&self, plain: &str) -> Result<String, EncodeError> {
        let sealer = match self.sealer.as_deref() {
            None => return Ok(plain.to_string()),
            Some(_) if plain.is_empty() => return Ok(String::new()),
            Some(Sealer::GptLoad(theirs)) => return theirs.encode(plain),
            Some(Sealer::Own(own)) => own,
        };
        let nonce = Nonce::try_generate().map_err(|e| EncodeError(e.to_string()))?;
        let sealed = sealer
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: sealer.header.as_bytes(),
                },
            )
            .map_err(|_| EncodeError("the cipher refused the input".into()))?;
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        Ok(format!("{}{}", sealer.header, URL_SAFE_NO_PAD.encode(raw)))
    }

    /// The plain key of a stored value.
    pub fn decode(&self, stored: &str) -> Result<KeySecret, DecodeError> {
        if stored.is_empty() {
            return Ok(KeySecret::new(String::new()));
        }
        let sealer = match self.sealer.as_deref() {
            // Never hand ciphertext to the pool as if it were a key.
            None if is_encrypted_value(stored) => return Err(DecodeError::Encrypted),
            None => return Ok(KeySecret::new(stored)),
            Some(Sealer::GptLoad(theirs)) => return theirs.decode(stored).map(KeySecret::new),
            Some(Sealer::Own(own)) => own,
        };
        let Some(kdf_id) = kdf_id_of(stored) else {
            return Err(DecodeError::NotEncrypted);
        };
        if kdf_id != sealer.kdf_id {
            return Err(DecodeError::OtherDerivation);
        }
        let body = &stored[sealer.header.len()..];
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| DecodeError::Malformed)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(DecodeError::Malformed);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| DecodeError::Malformed)?;
        let plain = sealer
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: sealer.header.as_bytes(),
                },
            )
            .map_err(|_| DecodeError::Authentication)?;
        match String::from_utf8(plain) {
            Ok(text) => Ok(KeySecret::new(text)),
            Err(err) => {
                err.into_bytes().zeroize();
                Err(DecodeError::Malformed)
            }
        }
    }

    /// Whether `stored` decodes with this codec and its stored hash is this codec's hash of it.
    pub fn reads(&self, stored: &str, stored_hash: &str) -> bool {
        self.decode(stored)
            .is_ok_and(|plain| self.hash(plain.expose()) == stored_hash)
    }
}

/// SHA-256 hex: the hash of a key stored without encryption.
pub fn plain_hash(plain: &str) -> String {
    if plain.is_empty() {
        return String::new();
    }
    hex::encode(Sha256::digest(plain.as_bytes()))
}

/// True when `stored` is in the encrypted format (whichever key and derivation).
pub fn is_encrypted_value(stored: &str) -> bool {
    kdf_id_of(stored).is_some()
}

/// The key-derivation id of an encrypted value.
pub fn kdf_id_of(stored: &str) -> Option<&str> {
    let rest = stored.strip_prefix(VERSION)?.strip_prefix('$')?;
    let (id, _) = rest.split_once('$')?;
    (!id.is_empty()).then_some(id)
}

impl fmt::Debug for KeyCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sealer.as_deref() {
            Some(Sealer::Own(sealer)) => write!(f, "KeyCodec(aes-256-gcm-siv, {})", sealer.kdf_id),
            Some(Sealer::GptLoad(_)) => write!(f, "KeyCodec(aes-256-gcm, {})", gptload::KDF_ID),
            None => f.write_str("KeyCodec(plaintext)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> KdfSpec {
        KdfSpec::generate_with_cost(64, 1, 1).unwrap()
    }

    #[test]
    fn plaintext_hash_is_sha256_hex_and_empty_for_empty() {
        let codec = KeyCodec::plaintext();
        assert_eq!(
            codec.hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(codec.hash(""), "");
        assert_eq!(codec.encode("sk-1").unwrap(), "sk-1");
        assert_eq!(codec.decode("sk-1").unwrap().expose(), "sk-1");
        assert!(codec.reads("sk-1", &plain_hash("sk-1")));
    }

    #[test]
    fn encrypted_values_round_trip_with_a_fresh_nonce_each_time() {
        let codec = KeyCodec::derive("correct horse battery staple", &spec()).unwrap();
        let a = codec.encode("sk-secret-123").unwrap();
        let b = codec.encode("sk-secret-123").unwrap();
        assert_ne!(a, b);
        assert!(
            a.starts_with(&format!("v1${}$", codec.kdf_id().unwrap())),
            "{a}"
        );
        assert!(!a.contains("sk-secret"));
        assert_eq!(codec.decode(&a).unwrap().expose(), "sk-secret-123");
        assert_eq!(codec.decode(&b).unwrap().expose(), "sk-secret-123");
        assert_eq!(codec.encode("").unwrap(), "");
        assert_eq!(codec.decode("").unwrap().expose(), "");
        assert!(codec.reads(&a, &codec.hash("sk-secret-123")));
        assert!(is_encrypted_value(&a));
        assert!(!is_encrypted_value("sk-secret-123"));
    }

    #[test]
    fn hash_is_keyed_deterministic_and_not_plain_sha256() {
        let s = spec();
        let one = KeyCodec::derive("one", &s).unwrap();
        let again = KeyCodec::derive("one", &s).unwrap();
        let two = KeyCodec::derive("two", &s).unwrap();
        assert_eq!(one.hash("sk-1"), again.hash("sk-1"));
        assert_eq!(one.hash("sk-1").len(), 64);
        assert_ne!(one.hash("sk-1"), two.hash("sk-1"));
        assert_ne!(one.hash("sk-1"), plain_hash("sk-1"));
        assert_eq!(one.hash(""), "");
    }

    #[test]
    fn wrong_key_tampering_and_foreign_formats_are_refused() {
        let s = spec();
        let codec = KeyCodec::derive("one", &s).unwrap();
        let stored = codec.encode("sk-secret-123").unwrap();
        let wrong = KeyCodec::derive("two", &s).unwrap();
        assert_eq!(wrong.decode(&stored), Err(DecodeError::Authentication));
        let other = KeyCodec::derive("one", &spec()).unwrap();
        assert_eq!(other.decode(&stored), Err(DecodeError::OtherDerivation));

        let mut tampered = stored.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(codec.decode(&tampered), Err(DecodeError::Authentication));

        assert_eq!(codec.decode("sk-plain"), Err(DecodeError::NotEncrypted));
        assert_eq!(
            codec.decode(&format!("v1${}$!!", codec.kdf_id().unwrap())),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            KeyCodec::plaintext().decode(&stored),
            Err(DecodeError::Encrypted)
        );
    }

    #[test]
    fn debug_never_shows_key_material() {
        let codec = KeyCodec::derive("hunter2-very-secret", &spec()).unwrap();
        let shown = format!("{codec:?}");
        assert!(
            shown.starts_with("KeyCodec(aes-256-gcm-siv, a2id."),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"));
        assert_eq!(
            format!("{:?}", KeyCodec::plaintext()),
            "KeyCodec(plaintext)"
        );
        let secret = codec
            .decode(&codec.encode("sk-abcdefghijkl").unwrap())
            .unwrap();
        assert!(!format!("{secret:?} {secret}").contains("sk-abcdefghijkl"));
    }
}
