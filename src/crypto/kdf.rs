//! Password-based derivation of the key-encryption and key-hashing keys from `ENCRYPTION_KEY`.
//!
//! `ENCRYPTION_KEY` is any string an operator chose, so it is stretched with Argon2id (memory-hard:
//! a leaked backup cannot be brute-forced cheaply on GPUs) under a random per-database salt. The
//! algorithm, its cost and the salt are written into a short id ([`KdfSpec::id`]) that every stored
//! value carries, so the cost can be raised later and an old value still says how to read it.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Argon2id memory cost in KiB (19 MiB), time cost and lanes: OWASP's recommended minimum for
/// Argon2id, which keeps one derivation well under a second on a small machine.
pub const DEFAULT_M_COST: u32 = 19 * 1024;
/// Argon2id passes over memory.
pub const DEFAULT_T_COST: u32 = 2;
/// Argon2id lanes.
pub const DEFAULT_P_COST: u32 = 1;

/// Upper bounds accepted when parsing an id, so a corrupted or hostile id cannot make a start-up
/// allocate gigabytes or spin for minutes.
const MAX_M_COST: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 16;

const SALT_LEN: usize = 16;
/// The algorithm tag at the head of every id; a future KDF gets a new tag.
const TAG: &str = "a2id";

/// Domain separation: one password-derived master key yields independent keys per purpose.
const CIPHER_LABEL: &[u8] = b"gpt-load/v1/aes-256-gcm-siv";
const HASH_LABEL: &[u8] = b"gpt-load/v1/key-hash";
const VERIFIER_LABEL: &[u8] = b"gpt-load/v1/verifier";

/// Why a key could not be derived.
#[derive(Debug, thiserror::Error)]
pub enum KdfError {
    #[error("malformed key-derivation id: {0}")]
    Malformed(&'static str),
    #[error("key-derivation cost out of range: {0}")]
    Cost(String),
    #[error("the system random number generator failed: {0}")]
    Random(String),
    #[error("key derivation failed: {0}")]
    Derive(String),
}

/// How a key is derived from the password: Argon2id with these costs and this salt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KdfSpec {
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub salt: [u8; SALT_LEN],
}

/// The keys derived from one password under one [`KdfSpec`]. Zeroed on drop.
pub struct DerivedKeys {
    pub(crate) cipher_key: Zeroizing<[u8; 32]>,
    pub(crate) hash_key: Zeroizing<[u8; 32]>,
    /// A public check value: lets a start-up tell a wrong password from the right one without
    /// touching any stored key.
    pub(crate) verifier: String,
}

impl KdfSpec {
    /// The default costs with a fresh random salt.
    pub fn generate() -> Result<Self, KdfError> {
        Self::generate_with_cost(DEFAULT_M_COST, DEFAULT_T_COST, DEFAULT_P_COST)
    }

    /// Given costs with a fresh random salt.
    pub fn generate_with_cost(m_cost: u32, t_cost: u32, p_cost: u32) -> Result<Self, KdfError> {
        use aes_gcm_siv::aead::Generate as _;
        let salt = <[u8; SALT_LEN]>::try_generate().map_err(|e| KdfError::Random(e.to_string()))?;
        let spec = Self {
            m_cost,
            t_cost,
            p_cost,
            salt,
        };
        spec.check()?;
        Ok(spec)
    }

    /// `a2id.v19.m<KiB>.t<passes>.p<lanes>.<salt, base64url>`: everything needed to derive the
    /// key again, and nothing secret.
    pub fn id(&self) -> String {
        format!(
            "{TAG}.v19.m{}.t{}.p{}.{}",
            self.m_cost,
            self.t_cost,
            self.p_cost,
            URL_SAFE_NO_PAD.encode(self.salt)
        )
    }

    /// Parses an id written by [`KdfSpec::id`].
    pub fn parse(id: &str) -> Result<Self, KdfError> {
        let parts: Vec<&str> = id.split('.').collect();
        let [tag, version, m, t, p, salt] = parts.as_slice() else {
            return Err(KdfError::Malformed("expected six dot-separated parts"));
        };
        if *tag != TAG {
            return Err(KdfError::Malformed("unknown algorithm"));
        }
        if *version != "v19" {
            return Err(KdfError::Malformed("unknown Argon2 version"));
        }
        let number = |part: &str, prefix: char| {
            part.strip_prefix(prefix)
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or(KdfError::Malformed("bad cost parameter"))
        };
        let salt = URL_SAFE_NO_PAD
            .decode(salt)
            .ok()
            .and_then(|s| <[u8; SALT_LEN]>::try_from(s.as_slice()).ok())
            .ok_or(KdfError::Malformed("bad salt"))?;
        let spec = Self {
            m_cost: number(m, 'm')?,
            t_cost: number(t, 't')?,
            p_cost: number(p, 'p')?,
            salt,
        };
        spec.check()?;
        Ok(spec)
    }

    fn check(&self) -> Result<(), KdfError> {
        if self.m_cost > MAX_M_COST || self.t_cost > MAX_T_COST || self.p_cost > MAX_P_COST {
            return Err(KdfError::Cost(format!(
                "m={} t={} p={} exceeds m={MAX_M_COST} t={MAX_T_COST} p={MAX_P_COST}",
                self.m_cost, self.t_cost, self.p_cost
            )));
        }
        Params::new(self.m_cost, self.t_cost, self.p_cost, Some(32))
            .map(|_| ())
            .map_err(|e| KdfError::Cost(e.to_string()))
    }

    /// Runs Argon2id over `password` (slow by design: call once per process, off the async
    /// threads) and splits the result into the cipher key, the hash key and the verifier.
    pub fn derive(&self, password: &[u8]) -> Result<DerivedKeys, KdfError> {
        let params = Params::new(self.m_cost, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| KdfError::Cost(e.to_string()))?;
        let mut master = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(password, &self.salt, master.as_mut())
            .map_err(|e| KdfError::Derive(e.to_string()))?;
        let cipher_key = expand(&master, CIPHER_LABEL)?;
        let hash_key = expand(&master, HASH_LABEL)?;
        let verifier = hex::encode(*expand(&master, VERIFIER_LABEL)?);
        Ok(DerivedKeys {
            cipher_key,
            hash_key,
            verifier,
        })
    }
}

/// HMAC-SHA256(master, label): an independent 32-byte key per purpose.
fn expand(master: &[u8; 32], label: &[u8]) -> Result<Zeroizing<[u8; 32]>, KdfError> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(master)
        .map_err(|e| KdfError::Derive(e.to_string()))?;
    mac.update(label);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> KdfSpec {
        KdfSpec::generate_with_cost(64, 1, 1).unwrap()
    }

    #[test]
    fn id_round_trips_and_carries_the_salt() {
        let spec = cheap();
        let id = spec.id();
        assert!(id.starts_with("a2id.v19.m64.t1.p1."), "{id}");
        assert_eq!(KdfSpec::parse(&id).unwrap(), spec);
        assert_ne!(cheap().salt, spec.salt, "every spec gets its own salt");
    }

    #[test]
    fn parse_rejects_malformed_and_absurd_ids() {
        for id in [
            "",
            "a2id.v19.m64.t1.p1",
            "scrypt.v19.m64.t1.p1.AAAAAAAAAAAAAAAAAAAAAA",
            "a2id.v16.m64.t1.p1.AAAAAAAAAAAAAAAAAAAAAA",
            "a2id.v19.mX.t1.p1.AAAAAAAAAAAAAAAAAAAAAA",
            "a2id.v19.m64.t1.p1.short",
            "a2id.v19.m99999999.t1.p1.AAAAAAAAAAAAAAAAAAAAAA",
            "a2id.v19.m64.t0.p1.AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(KdfSpec::parse(id).is_err(), "{id}");
        }
    }

    #[test]
    fn derivation_depends_on_password_and_salt() {
        let spec = cheap();
        let a = spec.derive(b"one").unwrap();
        let b = spec.derive(b"one").unwrap();
        let c = spec.derive(b"two").unwrap();
        let d = cheap().derive(b"one").unwrap();
        assert_eq!(*a.cipher_key, *b.cipher_key);
        assert_eq!(a.verifier, b.verifier);
        assert_ne!(*a.cipher_key, *c.cipher_key);
        assert_ne!(a.verifier, c.verifier);
        assert_ne!(*a.cipher_key, *d.cipher_key);
        assert_ne!(*a.cipher_key, *a.hash_key, "purposes get separate keys");
    }
}
