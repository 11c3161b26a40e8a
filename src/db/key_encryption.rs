//! The `key_encryption` record (how stored keys are encrypted) and samples of stored keys, read
//! by the start-up check, the encryption-status endpoint and `migrate-keys`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::repo::now;
use super::schema::{api_keys, key_encryption, request_logs};
use super::{Database, DbError};
use crate::with_conn;

/// The one row id: a database has one key derivation at a time.
pub const RECORD_ID: i32 = 1;

/// How the stored keys are encrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KdfRecord {
    /// The id every encrypted value carries (see [`crate::crypto::KdfSpec::id`]).
    pub kdf_id: String,
    /// The derived key's public check value.
    pub verifier: String,
    pub created_at: NaiveDateTime,
}

/// The record, or `None` when keys are stored in plain text.
pub async fn kdf_record(db: &Database) -> Result<Option<KdfRecord>, DbError> {
    let row: Option<(String, String, NaiveDateTime)> = with_conn!(db, conn => {
        key_encryption::table
            .find(RECORD_ID)
            .select((key_encryption::kdf_id, key_encryption::verifier, key_encryption::created_at))
            .first(conn)
            .await
            .optional()?
    });
    Ok(row.map(|(kdf_id, verifier, created_at)| KdfRecord {
        kdf_id,
        verifier,
        created_at,
    }))
}

/// Records the key derivation of a database that has no record yet. A concurrent writer that got
/// there first makes this [`DbError::Duplicate`].
pub async fn insert_kdf_record(db: &Database, kdf_id: &str, verifier: &str) -> Result<(), DbError> {
    with_conn!(db, conn => {
        diesel::insert_into(key_encryption::table)
            .values((
                key_encryption::id.eq(RECORD_ID),
                key_encryption::kdf_id.eq(kdf_id),
                key_encryption::verifier.eq(verifier),
                key_encryption::created_at.eq(now()),
            ))
            .execute(conn)
            .await?
    });
    Ok(())
}

/// Stored value and hash of up to `limit` keys that have a hash, oldest first.
pub async fn stored_key_sample(
    db: &Database,
    limit: i64,
) -> Result<Vec<(String, String)>, DbError> {
    Ok(with_conn!(db, conn => {
        api_keys::table
            .filter(api_keys::key_hash.ne(""))
            .select((api_keys::key_value, api_keys::key_hash))
            .order(api_keys::id.asc())
            .limit(limit)
            .load(conn)
            .await?
    }))
}

/// Stored key value and hash of up to `limit` request logs that used a key, newest first.
pub async fn stored_log_key_sample(
    db: &Database,
    limit: i64,
) -> Result<Vec<(String, String)>, DbError> {
    Ok(with_conn!(db, conn => {
        request_logs::table
            .filter(request_logs::key_hash.ne(""))
            .select((request_logs::key_value, request_logs::key_hash))
            .order(request_logs::timestamp.desc())
            .limit(limit)
            .load(conn)
            .await?
    }))
}
