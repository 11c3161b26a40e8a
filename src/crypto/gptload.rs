//! GPT-Load 1.4.x's stored-key format, so a database it encrypted is served as it is.
//!
//! GPT-Load stretches `ENCRYPTION_KEY` with PBKDF2-HMAC-SHA256 (100 000 rounds, a fixed salt,
//! 32 bytes), encrypts with AES-256-GCM under a random 96-bit nonce and no associated data, and
//! stores lowercase hex of nonce ‖ ciphertext ‖ tag. Its lookup hash is HMAC-SHA256 keyed with
//! the same derived key. The derivation is public and unsalted per database, which is why
//! `migrate-keys` offers to move such data to our own format; until then we read and write
//! GPT-Load's, so a database never holds two formats at once.

use aes_gcm::aead::{Aead, Generate as _};
use aes_gcm::{Aes256Gcm, Nonce};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::{DecodeError, EncodeError};

/// The id recorded in `key_encryption.kdf_id` for data in GPT-Load's format.
pub const KDF_ID: &str = "gpt-load.pbkdf2-sha256.i100000";

const SALT: &[u8] = b"gpt-load-encryption-v1";
const ROUNDS: u32 = 100_000;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Our label for the public check value; GPT-Load has none, we record it when adopting.
const VERIFIER_LABEL: &[u8] = b"gpt-load/compat/verifier";

/// AES-256-GCM and the keyed hash under GPT-Load's derivation of one password.
pub struct GptLoadCipher {
    cipher: Aes256Gcm,
    pub(super) hasher: Hmac<Sha256>,
    pub(super) verifier: String,
}

impl GptLoadCipher {
    /// Derives GPT-Load's key from `password` (100 000 HMAC rounds: call it off async threads).
    pub fn derive(password: &str) -> Result<Self, EncodeError> {
        let key = pbkdf2_sha256(password.as_bytes(), SALT, ROUNDS)?;
        let cipher =
            Aes256Gcm::new_from_slice(key.as_ref()).map_err(|e| EncodeError(e.to_string()))?;
        let hasher = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_ref())
            .map_err(|e| EncodeError(e.to_string()))?;
        let mut check = hasher.clone();
        check.update(VERIFIER_LABEL);
        let verifier = hex::encode(check.finalize().into_bytes());
        Ok(Self {
            cipher,
            hasher,
            verifier,
        })
    }

    /// GPT-Load's stored form of `plain`.
    pub fn encode(&self, plain: &str) -> Result<String, EncodeError> {
        let nonce = Nonce::try_generate().map_err(|e| EncodeError(e.to_string()))?;
        let sealed = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .map_err(|_| EncodeError("the cipher refused the input".into()))?;
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        Ok(hex::encode(raw))
    }

    /// The plain text of a value GPT-Load stored.
    pub fn decode(&self, stored: &str) -> Result<String, DecodeError> {
        if !is_gptload_value(stored) {
            return Err(DecodeError::NotEncrypted);
        }
        let raw = hex::decode(stored).map_err(|_| DecodeError::Malformed)?;
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| DecodeError::Malformed)?;
        let plain = self
            .cipher
            .decrypt(&nonce, sealed)
            .map_err(|_| DecodeError::Authentication)?;
        String::from_utf8(plain).map_err(|err| {
            err.into_bytes().zeroize();
            DecodeError::Malformed
        })
    }
}

/// True when `stored` has the shape of a GPT-Load ciphertext: lowercase hex long enough for a
/// nonce, a tag and at least one byte. A plain upstream key of that shape is not a known format.
pub fn is_gptload_value(stored: &str) -> bool {
    stored.len() >= 2 * (NONCE_LEN + TAG_LEN + 1)
        && stored.len().is_multiple_of(2)
        && stored
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// PBKDF2 (RFC 8018) with HMAC-SHA256 for a 32-byte output: one block, so one chain of rounds.
fn pbkdf2_sha256(
    password: &[u8],
    salt: &[u8],
    rounds: u32,
) -> Result<Zeroizing<[u8; 32]>, EncodeError> {
    let prf = <Hmac<Sha256> as KeyInit>::new_from_slice(password)
        .map_err(|e| EncodeError(e.to_string()))?;
    let mut first = prf.clone();
    first.update(salt);
    first.update(&1u32.to_be_bytes());
    let mut u = Zeroizing::new([0u8; 32]);
    u.copy_from_slice(&first.finalize().into_bytes());
    let mut out = Zeroizing::new(*u);
    for _ in 1..rounds {
        let mut mac = prf.clone();
        mac.update(u.as_ref());
        u.copy_from_slice(&mac.finalize().into_bytes());
        for (o, b) in out.iter_mut().zip(u.iter()) {
            *o ^= b;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_the_rfc_7914_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256 (P="passwd", S="salt", c=1, dkLen=64), first 32 bytes.
        let out = pbkdf2_sha256(b"passwd", b"salt", 1).unwrap();
        assert_eq!(
            hex::encode(*out),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn values_round_trip_in_gptloads_shape() {
        let cipher = GptLoadCipher::derive("gpt-load-secret").unwrap();
        let stored = cipher.encode("sk-gpt-load-1").unwrap();
        assert!(is_gptload_value(&stored), "{stored}");
        assert_eq!(stored.len(), 2 * (12 + "sk-gpt-load-1".len() + 16));
        assert_eq!(cipher.decode(&stored).unwrap(), "sk-gpt-load-1");
        let other = GptLoadCipher::derive("another-secret").unwrap();
        assert_eq!(other.decode(&stored), Err(DecodeError::Authentication));
        assert_eq!(cipher.decode("sk-plain"), Err(DecodeError::NotEncrypted));
        assert!(!is_gptload_value("sk-plain"));
    }
}
