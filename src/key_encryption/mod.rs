//! Whether `ENCRYPTION_KEY` fits the stored data: the start-up check that builds the codec
//! ([`startup`]), the dashboard's mismatch report ([`status`]), and the classification of a
//! sample of stored keys both rely on.

pub mod startup;
pub mod status;

use crate::crypto::{is_encrypted_value, plain_hash, KeyCodec};

/// How many stored keys the checks look at.
pub const SAMPLE_SIZE: i64 = 20;

/// GPT-Load's mismatch scenarios (`GET /api/dashboard/encryption-status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// `ENCRYPTION_KEY` fits the data.
    Consistent,
    /// `ENCRYPTION_KEY` is set but the data is plain text.
    DataNotEncrypted,
    /// The data is encrypted but `ENCRYPTION_KEY` is not set.
    KeyNotConfigured,
    /// The data is encrypted under another key.
    KeyMismatch,
}

impl Scenario {
    /// The API spelling (`""` when consistent).
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Consistent => "",
            Scenario::DataNotEncrypted => "data_not_encrypted",
            Scenario::KeyNotConfigured => "key_not_configured",
            Scenario::KeyMismatch => "key_mismatch",
        }
    }
}

/// Shares of a sample of `(stored value, stored hash)` pairs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleRates {
    pub total: usize,
    /// Stored in plain text with a SHA-256 hash.
    pub plain: f64,
    /// Readable by the codec in use, with its hash.
    pub current: f64,
}

impl SampleRates {
    /// Measures `sample` against `codec`.
    pub fn measure(sample: &[(String, String)], codec: &KeyCodec) -> Self {
        let total = sample.len();
        if total == 0 {
            return Self {
                total,
                plain: 0.0,
                current: 0.0,
            };
        }
        let plain = sample.iter().filter(|(v, h)| is_plain(v, h)).count();
        let current = if codec.is_encrypting() {
            sample.iter().filter(|(v, h)| codec.reads(v, h)).count()
        } else {
            0
        };
        Self {
            total,
            plain: plain as f64 / total as f64,
            current: current as f64 / total as f64,
        }
    }
}

/// A value stored without encryption, with the SHA-256 hash plain storage uses.
pub fn is_plain(stored: &str, stored_hash: &str) -> bool {
    !is_encrypted_value(stored) && plain_hash(stored) == stored_hash
}

/// GPT-Load's rules, in order: key set over mostly plain data; key unset over mostly non-plain
/// data; key set and the data readable neither as plain text nor with the key. With no sample,
/// the `key_encryption` record decides: encrypted data without a key, or a key whose verifier
/// differs from the record's.
pub fn classify(
    key_set: bool,
    rates: SampleRates,
    recorded_verifier: Option<&str>,
    codec: &KeyCodec,
) -> Scenario {
    if rates.total > 0 {
        if key_set && rates.plain > 0.8 {
            return Scenario::DataNotEncrypted;
        }
        if !key_set && rates.plain < 0.2 {
            return Scenario::KeyNotConfigured;
        }
        if key_set && rates.plain < 0.2 && rates.current < 0.2 {
            return Scenario::KeyMismatch;
        }
        return Scenario::Consistent;
    }
    match (key_set, recorded_verifier) {
        (false, Some(_)) => Scenario::KeyNotConfigured,
        (true, Some(recorded)) if codec.verifier() != Some(recorded) => Scenario::KeyMismatch,
        _ => Scenario::Consistent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KdfSpec;

    fn sample(codec: &KeyCodec, n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| {
                let key = format!("sk-sample-{i}");
                (codec.encode(&key).unwrap(), codec.hash(&key))
            })
            .collect()
    }

    #[test]
    fn the_four_scenarios_follow_gpt_loads_rules() {
        let spec = KdfSpec::generate_with_cost(64, 1, 1).unwrap();
        let one = KeyCodec::derive("one", &spec).unwrap();
        let two = KeyCodec::derive("two", &spec).unwrap();
        let plain = KeyCodec::plaintext();
        let plain_data = sample(&plain, 20);
        let one_data = sample(&one, 20);
        let check = |key_set, data: &[(String, String)], codec: &KeyCodec| {
            classify(key_set, SampleRates::measure(data, codec), None, codec)
        };
        assert_eq!(check(false, &plain_data, &plain), Scenario::Consistent);
        assert_eq!(check(true, &one_data, &one), Scenario::Consistent);
        assert_eq!(check(true, &plain_data, &one), Scenario::DataNotEncrypted);
        assert_eq!(check(false, &one_data, &plain), Scenario::KeyNotConfigured);
        assert_eq!(check(true, &one_data, &two), Scenario::KeyMismatch);

        let empty = SampleRates::measure(&[], &one);
        let recorded = one.verifier();
        assert_eq!(classify(true, empty, recorded, &one), Scenario::Consistent);
        assert_eq!(classify(true, empty, recorded, &two), Scenario::KeyMismatch);
        assert_eq!(
            classify(false, empty, recorded, &plain),
            Scenario::KeyNotConfigured
        );
        assert_eq!(classify(false, empty, None, &plain), Scenario::Consistent);
        assert_eq!(Scenario::KeyMismatch.as_str(), "key_mismatch");
    }
}
