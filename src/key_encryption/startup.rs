//! The start-up check: build the codec from `ENCRYPTION_KEY` and refuse to serve when it does not
//! fit the stored data, naming the `migrate-keys` command that reconciles them.

use std::time::Instant;

use zeroize::Zeroizing;

use super::{is_plain, SAMPLE_SIZE};
use crate::crypto::gptload::{self, is_gptload_value};
use crate::crypto::{is_encrypted_value, plain_hash, KdfError, KdfSpec, KeyCodec};
use crate::db::key_encryption::{
    insert_kdf_record, kdf_record, stored_key_sample, stored_log_key_sample, KdfRecord,
};
use crate::db::{Database, DbError};

/// Why the server will not start with this `ENCRYPTION_KEY`. Messages never include a key.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionMismatch {
    #[error("ENCRYPTION_KEY is set, but the stored upstream keys are in plain text. To encrypt them, stop every server and run `gpt-load migrate-keys --to <the ENCRYPTION_KEY value>`, then start again; or unset ENCRYPTION_KEY to keep them in plain text.")]
    DataNotEncrypted,
    #[error("The stored upstream keys are encrypted, but ENCRYPTION_KEY is not set. Set ENCRYPTION_KEY to the key they were encrypted with; or, to store them in plain text, stop every server and run `gpt-load migrate-keys --from <that key>` first.")]
    KeyNotConfigured,
    #[error("ENCRYPTION_KEY does not match the key the stored upstream keys were encrypted with. Set ENCRYPTION_KEY back to that key; or, to switch keys, stop every server and run `gpt-load migrate-keys --from <old key> --to <the new ENCRYPTION_KEY value>` first.")]
    KeyMismatch,
    #[error("{unreadable} of {sampled} sampled upstream keys cannot be read with the configured ENCRYPTION_KEY ({state}): the stored data is in a mixed state, e.g. a table restored from another backup. Find the unreadable rows with `gpt-load migrate-keys --dry-run` and the flags that describe the data (`--from <key>` when encrypted, `--to <key>` when plain), and restore them from a consistent backup.")]
    Inconsistent {
        unreadable: usize,
        sampled: usize,
        state: &'static str,
    },
    #[error("The stored upstream keys are encrypted ({encrypted} of {sampled} sampled), but the key_encryption record that says how is missing, e.g. api_keys was restored from another backup than key_encryption. Restore both tables from the same backup.")]
    RecordMissing { encrypted: usize, sampled: usize },
    #[error("{foreign} of {sampled} sampled upstream keys are in a format this version does not know (neither plain text, its own encryption nor GPT-Load's). Decrypt them with the tool that encrypted them, then start this server and encrypt again with `gpt-load migrate-keys --to <key>`.")]
    UnknownFormat { foreign: usize, sampled: usize },
    #[error("The stored upstream keys are encrypted in GPT-Load's format, but ENCRYPTION_KEY is not set. Start with the ENCRYPTION_KEY GPT-Load used (the same .env).")]
    GptLoadKeyNotConfigured,
    #[error("ENCRYPTION_KEY is not the key GPT-Load encrypted the stored upstream keys with (they are in GPT-Load's format). Start with the ENCRYPTION_KEY GPT-Load used (the same .env).")]
    GptLoadKeyMismatch,
    #[error("the key_encryption record is unreadable ({0}); restore it from a backup")]
    BadRecord(KdfError),
    #[error("could not derive the encryption key: {0}")]
    Kdf(KdfError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Checks `encryption_key` (empty = off) against the stored data and returns the codec to use.
///
/// Encrypted data must come with the key whose verifier is recorded, and every sampled key must
/// decrypt; plain data must come without a key. A database with no keys yet and a key set gets a
/// fresh key derivation recorded, so every node that starts later derives the same key.
pub async fn open_codec(
    db: &Database,
    encryption_key: &str,
) -> Result<KeyCodec, EncryptionMismatch> {
    let keys = stored_key_sample(db, SAMPLE_SIZE).await?;
    let logs = stored_log_key_sample(db, SAMPLE_SIZE).await?;
    // With no keys left, request logs still tell how data was stored.
    let sample = if keys.is_empty() { &logs } else { &keys };
    let record = kdf_record(db).await?;
    if record.is_none() && is_gptload_sample(sample) {
        return open_gptload_codec(db, encryption_key, &keys, &logs).await;
    }
    if record.is_none() {
        check_unrecorded(sample)?;
    }

    if encryption_key.is_empty() {
        return match record {
            Some(_) => Err(EncryptionMismatch::KeyNotConfigured),
            None => Ok(KeyCodec::plaintext()),
        };
    }
    let record = match record {
        Some(record) => record,
        // Plain keys stored, and a key set: the operator must migrate first.
        None if !sample.is_empty() => return Err(EncryptionMismatch::DataNotEncrypted),
        None => match record_new_derivation(db, encryption_key).await? {
            Recorded::Mine(codec) => return Ok(codec),
            Recorded::Theirs(record) => record,
        },
    };
    let codec = derive(encryption_key, &record).await?;
    if codec.verifier() != Some(record.verifier.as_str()) {
        return Err(EncryptionMismatch::KeyMismatch);
    }
    let unreadable = keys.iter().filter(|(v, h)| !codec.reads(v, h)).count();
    if unreadable > 0 {
        return Err(EncryptionMismatch::Inconsistent {
            unreadable,
            sampled: keys.len(),
            state: "encrypted",
        });
    }
    let unreadable_logs = logs.iter().filter(|(v, h)| !codec.reads(v, h)).count();
    if unreadable_logs > 0 {
        tracing::warn!(
            unreadable = unreadable_logs,
            sampled = logs.len(),
            "Some request logs hold key values this ENCRYPTION_KEY cannot read; the logs page shows them as failed-to-decrypt."
        );
    }
    Ok(codec)
}

/// Every sampled value has the shape of GPT-Load's ciphertext: a database it encrypted, adopted.
pub fn is_gptload_sample(sample: &[(String, String)]) -> bool {
    // A plain key that happens to be long lowercase hex carries its plain SHA-256 hash.
    !sample.is_empty()
        && sample
            .iter()
            .all(|(v, h)| is_gptload_value(v) && plain_hash(v) != *h)
}

/// First start with `encryption_key` on keys GPT-Load encrypted: they must all read with its
/// derivation of the key; then that format is recorded, so every later start (and every other
/// node) checks the key against the record like for our own format.
async fn open_gptload_codec(
    db: &Database,
    encryption_key: &str,
    keys: &[(String, String)],
    logs: &[(String, String)],
) -> Result<KeyCodec, EncryptionMismatch> {
    if encryption_key.is_empty() {
        return Err(EncryptionMismatch::GptLoadKeyNotConfigured);
    }
    let codec = derive_with(encryption_key, gptload::KDF_ID).await?;
    let sample = if keys.is_empty() { logs } else { keys };
    let unreadable = sample.iter().filter(|(v, h)| !codec.reads(v, h)).count();
    if unreadable == sample.len() {
        return Err(EncryptionMismatch::GptLoadKeyMismatch);
    }
    if unreadable > 0 {
        return Err(EncryptionMismatch::Inconsistent {
            unreadable,
            sampled: sample.len(),
            state: "encrypted in GPT-Load's format",
        });
    }
    let verifier = codec.verifier().unwrap_or_default().to_string();
    match insert_kdf_record(db, gptload::KDF_ID, &verifier).await {
        Ok(()) | Err(DbError::Duplicate) => {}
        Err(err) => return Err(err.into()),
    }
    match kdf_record(db).await? {
        Some(record) if record.kdf_id == gptload::KDF_ID && record.verifier == verifier => {}
        _ => return Err(EncryptionMismatch::GptLoadKeyMismatch),
    }
    tracing::info!("The stored upstream keys are in GPT-Load's encrypted format: they are read and written in that format (convert them with `gpt-load migrate-keys` when you choose).");
    Ok(codec)
}

/// Without a `key_encryption` record the data must be plain text: say precisely what else it is.
fn check_unrecorded(sample: &[(String, String)]) -> Result<(), EncryptionMismatch> {
    let sampled = sample.len();
    let plain = sample.iter().filter(|(v, h)| is_plain(v, h)).count();
    let encrypted = sample.iter().filter(|(v, _)| is_encrypted_value(v)).count();
    let foreign = sampled - plain - encrypted;
    if plain == sampled {
        Ok(())
    } else if encrypted > 0 && plain == 0 && foreign == 0 {
        Err(EncryptionMismatch::RecordMissing { encrypted, sampled })
    } else if foreign * 5 > sampled * 4 {
        Err(EncryptionMismatch::UnknownFormat { foreign, sampled })
    } else {
        Err(EncryptionMismatch::Inconsistent {
            unreadable: sampled - plain,
            sampled,
            state: "plain text",
        })
    }
}

enum Recorded {
    Mine(KeyCodec),
    Theirs(KdfRecord),
}

/// First start with a key on an empty database: pick a salt and record it. Another node may have
/// recorded its own a moment earlier; then its record wins and is used instead.
async fn record_new_derivation(
    db: &Database,
    password: &str,
) -> Result<Recorded, EncryptionMismatch> {
    let spec = KdfSpec::generate().map_err(EncryptionMismatch::Kdf)?;
    let codec = derive_spec(password, spec.clone()).await?;
    let verifier = codec.verifier().unwrap_or_default().to_string();
    match insert_kdf_record(db, &spec.id(), &verifier).await {
        Ok(()) => {
            tracing::info!(kdf = %spec.id(), "Recorded a new key derivation: upstream keys will be stored encrypted.");
            Ok(Recorded::Mine(codec))
        }
        Err(DbError::Duplicate) => match kdf_record(db).await? {
            Some(record) => Ok(Recorded::Theirs(record)),
            None => Err(EncryptionMismatch::Db(DbError::NotFound)),
        },
        Err(err) => Err(err.into()),
    }
}

/// The codec of `password` under the recorded derivation.
pub async fn derive(password: &str, record: &KdfRecord) -> Result<KeyCodec, EncryptionMismatch> {
    if record.kdf_id != gptload::KDF_ID {
        KdfSpec::parse(&record.kdf_id).map_err(EncryptionMismatch::BadRecord)?;
    }
    derive_with(password, &record.kdf_id).await
}

/// Key stretching on a blocking thread: it takes tens of milliseconds of CPU by design.
async fn derive_with(password: &str, kdf_id: &str) -> Result<KeyCodec, EncryptionMismatch> {
    let kdf_id = kdf_id.to_string();
    derive_off_thread(password, move |password| {
        KeyCodec::derive_recorded(password, &kdf_id)
    })
    .await
}

/// Argon2id on a blocking thread: it takes tens of milliseconds of CPU by design.
pub async fn derive_spec(password: &str, spec: KdfSpec) -> Result<KeyCodec, EncryptionMismatch> {
    derive_off_thread(password, move |password| KeyCodec::derive(password, &spec)).await
}

/// Runs a key derivation on a blocking thread (it is slow by design) and logs how long it took.
async fn derive_off_thread<F>(password: &str, derive: F) -> Result<KeyCodec, EncryptionMismatch>
where
    F: FnOnce(&str) -> Result<KeyCodec, KdfError> + Send + 'static,
{
    let password = Zeroizing::new(password.to_string());
    let started = Instant::now();
    let codec = tokio::task::spawn_blocking(move || derive(&password))
        .await
        .map_err(|e| EncryptionMismatch::Kdf(KdfError::Derive(e.to_string())))?
        .map_err(EncryptionMismatch::Kdf)?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Derived the key-encryption key."
    );
    Ok(codec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_hex_key_is_not_taken_for_gptload_ciphertext() {
        let hex_key = "0123456789abcdef".repeat(4);
        assert!(is_gptload_value(&hex_key), "it has the shape");
        assert!(!is_gptload_sample(&[(
            hex_key.clone(),
            plain_hash(&hex_key)
        )]));
        let cipher = crate::crypto::gptload::GptLoadCipher::derive("k").unwrap();
        let stored = cipher.encode("sk-1").unwrap();
        assert!(is_gptload_sample(&[(stored, "a-keyed-hash".into())]));
        assert!(!is_gptload_sample(&[]));
    }
}
