//! The dashboard's encryption report: does the running `ENCRYPTION_KEY` still fit the stored
//! keys? The start-up check refuses a mismatch, so a running server reports one only when the
//! data changed under it (a restored table, a second writer with another key).

use serde::Serialize;

use super::{classify, SampleRates, Scenario, SAMPLE_SIZE};
use crate::crypto::KeyCodec;
use crate::db::key_encryption::{kdf_record, stored_key_sample};
use crate::db::{Database, DbError};

/// `GET /api/dashboard/encryption-status` data, in GPT-Load's shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EncryptionStatus {
    pub has_mismatch: bool,
    /// `""`, `data_not_encrypted`, `key_not_configured` or `key_mismatch`.
    pub scenario_type: String,
    pub message: String,
    pub suggestion: String,
}

impl EncryptionStatus {
    /// The report for a scenario.
    pub fn of(scenario: Scenario) -> Self {
        let (message, suggestion) = match scenario {
            Scenario::Consistent => ("", ""),
            Scenario::DataNotEncrypted => (
                "ENCRYPTION_KEY is set, but the stored upstream keys are in plain text.",
                "Stop every server, run `gpt-load migrate-keys --to <the ENCRYPTION_KEY value>`, then start again; or unset ENCRYPTION_KEY.",
            ),
            Scenario::KeyNotConfigured => (
                "The stored upstream keys are encrypted, but ENCRYPTION_KEY is not set.",
                "Set ENCRYPTION_KEY to the key they were encrypted with; or stop every server and run `gpt-load migrate-keys --from <that key>` to store them in plain text.",
            ),
            Scenario::KeyMismatch => (
                "ENCRYPTION_KEY does not match the key the stored upstream keys were encrypted with.",
                "Set ENCRYPTION_KEY back to that key; or stop every server and run `gpt-load migrate-keys --from <old key> --to <new key>`.",
            ),
        };
        Self {
            has_mismatch: scenario != Scenario::Consistent,
            scenario_type: scenario.as_str().to_string(),
            message: message.to_string(),
            suggestion: suggestion.to_string(),
        }
    }
}

/// Samples up to [`SAMPLE_SIZE`] stored keys and classifies them against the running codec.
pub async fn encryption_status(
    db: &Database,
    key_set: bool,
    codec: &KeyCodec,
) -> Result<EncryptionStatus, DbError> {
    let sample = stored_key_sample(db, SAMPLE_SIZE).await?;
    let record = kdf_record(db).await?;
    let rates = SampleRates::measure(&sample, codec);
    let scenario = classify(
        key_set,
        rates,
        record.as_ref().map(|r| r.verifier.as_str()),
        codec,
    );
    Ok(EncryptionStatus::of(scenario))
}
