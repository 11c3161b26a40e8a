//! Synchronous bulk key operations: add, delete, restore, clear and test. Inserts go to the
//! database, then to the key pool; changes to existing keys (delete, restore, clear) are pool
//! commands, stored by the pool's one writer in one transaction each and answered once stored.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix_web::web;
use gpt_load_actors::domain::{GroupId, KeyId, KeyStatus};
use gpt_load_actors::key_pool::OperatorCommand;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::i18n::{t, tf, Msg};
use super::keys::{first_unfit_key, parse_keys_text, UnfitKey, SYNC_BATCH_LIMIT};
use super::require_group;
use super::response::{done, ok, Envelope, ErrorBody, NoData, Reply};
use super::state::AdminState;
use crate::admin::error::AdminError;
use crate::key_sync;
use crate::validation::prober::{self, Prober};

/// Body of the calls that take a list of keys.
#[derive(Debug, Deserialize, ToSchema)]
pub struct KeysTextRequest {
    #[serde(deserialize_with = "super::response::whole")]
    pub group_id: i64,
    /// Keys as a JSON array of strings, or separated by whitespace, commas or semicolons; at
    /// least one key, at most 5,000 for the synchronous calls.
    #[schema(pattern = "[^\\s,;]")]
    pub keys_text: String,
}

/// Body of the calls that act on a whole group.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GroupIdRequest {
    #[serde(deserialize_with = "super::response::whole")]
    pub group_id: i64,
}

/// Result of `add-multiple`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddKeysResult {
    pub added_count: usize,
    /// Input keys not added (duplicates within the input or already in the group).
    pub ignored_count: usize,
    pub total_in_group: i64,
}

/// Result of `delete-multiple`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteKeysResult {
    pub deleted_count: usize,
    pub ignored_count: usize,
    pub total_in_group: i64,
}

/// Result of `restore-multiple`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreKeysResult {
    pub restored_count: usize,
    pub ignored_count: usize,
    pub total_in_group: i64,
}

/// One tested key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyTestResult {
    pub key_value: String,
    pub is_valid: bool,
    /// Why the key failed; left out when valid, as GPT-Load does.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// Result of `test-multiple`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyTestResults {
    pub results: Vec<KeyTestResult>,
    /// Milliseconds the whole test took.
    pub total_duration: u64,
}

/// A positive `group_id` from a body.
pub fn body_group_id(group_id: i64) -> Result<i64, AdminError> {
    if group_id <= 0 {
        return Err(AdminError::Validation(t(Msg::GroupIdFieldRequired)));
    }
    Ok(group_id)
}

/// Parses `keys_text`: not blank, at least one key, at most `limit` keys when given.
pub fn parse_batch(keys_text: &str, limit: Option<usize>) -> Result<Vec<String>, AdminError> {
    if keys_text.trim().is_empty() {
        return Err(AdminError::Validation(t(Msg::KeysTextEmpty)));
    }
    let keys = parse_keys_text(keys_text);
    if keys.is_empty() {
        return Err(AdminError::Validation(t(Msg::NoValidKeys)));
    }
    if let Some(limit) = limit.filter(|l| keys.len() > *l) {
        return Err(AdminError::Validation(tf(
            Msg::BatchTooLarge,
            &[("limit", &limit)],
        )));
    }
    Ok(keys)
}

/// Refuses key text that would store an unusable key (see [`first_unfit_key`]), naming its line
/// or entry and the character, never the key. The whole import is refused rather than the bad
/// key skipped: a key broken by a stray CR usually means the rest of the paste is broken too.
pub fn check_importable(keys_text: &str) -> Result<(), AdminError> {
    let code = |c: char| format!("U+{:04X}", u32::from(c));
    match first_unfit_key(keys_text) {
        None => Ok(()),
        Some(UnfitKey::OnLine(line, c)) => Err(AdminError::Validation(tf(
            Msg::KeyUnfitOnLine,
            &[("line", &line), ("char", &code(c))],
        ))),
        Some(UnfitKey::InEntry(entry, c)) => Err(AdminError::Validation(tf(
            Msg::KeyUnfitInEntry,
            &[("entry", &entry), ("char", &code(c))],
        ))),
    }
}

/// The group and the parsed keys of a synchronous bulk call: the group must exist and the list
/// must hold 1 to 5,000 keys.
async fn listed_keys(
    state: &AdminState,
    body: &KeysTextRequest,
) -> Result<(i64, Vec<String>), AdminError> {
    let group_id = body_group_id(body.group_id)?;
    require_group(state, group_id).await?;
    let keys = parse_batch(&body.keys_text, Some(SYNC_BATCH_LIMIT))?;
    Ok((group_id, keys))
}

fn unique_hashes(state: &AdminState, keys: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    keys.iter()
        .map(|k| state.repo.codec.hash(k))
        .filter(|h| seen.insert(h.clone()))
        .collect()
}

/// Ids of the group's keys with these hashes.
async fn listed_ids(
    state: &AdminState,
    group_id: GroupId,
    hashes: &[String],
) -> Result<Vec<KeyId>, AdminError> {
    let rows = state.repo.keys_by_hashes(group_id, hashes).await?;
    Ok(rows.iter().map(|r| r.id).collect())
}

/// Ids of the group's stored keys (of one status when given).
async fn stored_ids(
    state: &AdminState,
    group_id: GroupId,
    status: Option<KeyStatus>,
) -> Result<Vec<KeyId>, AdminError> {
    let rows = state.repo.group_keys(group_id, status).await?;
    Ok(rows.iter().map(|r| r.id).collect())
}

/// Deletes keys through the pool (with `only`, keys the pool holds in another state stay);
/// answers how many were deleted.
async fn delete(
    state: &AdminState,
    group_id: GroupId,
    key_ids: Vec<KeyId>,
    only: Option<KeyStatus>,
) -> Result<usize, AdminError> {
    let command = OperatorCommand::Delete {
        group_id,
        key_ids,
        only,
    };
    Ok(key_sync::command(&state.key_sync(), command).await?.len())
}

/// Restores invalid keys through the pool (all of the group's when `None`); answers how many.
async fn restore(
    state: &AdminState,
    group_id: GroupId,
    key_ids: Option<Vec<KeyId>>,
) -> Result<usize, AdminError> {
    let command = OperatorCommand::Restore { group_id, key_ids };
    Ok(key_sync::command(&state.key_sync(), command).await?.len())
}

/// Add up to 5,000 keys at once (deprecated in GPT-Load in favour of `add-async`).
#[utoipa::path(post, path = "/api/keys/add-multiple", tag = "keys", request_body = KeysTextRequest,
    responses((status = 200, body = Envelope<AddKeysResult>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_multiple(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    body: web::Json<KeysTextRequest>,
) -> Reply<AddKeysResult> {
    let (group_id, keys) = listed_keys(&state, &body).await?;
    check_importable(&body.keys_text)?;
    let input_count = keys.len();
    let mut seen = HashSet::new();
    let unique: Vec<String> = keys
        .into_iter()
        .filter(|k| seen.insert(state.repo.codec.hash(k)))
        .collect();
    let added = state.repo.import_keys(group_id, unique).await?;
    let added_count = added.len();
    key_sync::add(&state.key_sync(), added).await?;
    let total = state.repo.count_keys(group_id).await?;
    ok(AddKeysResult {
        added_count,
        ignored_count: input_count - added_count,
        total_in_group: total,
    })
}

/// Delete up to 5,000 listed keys of a group.
#[utoipa::path(post, path = "/api/keys/delete-multiple", tag = "keys", request_body = KeysTextRequest,
    responses((status = 200, body = Envelope<DeleteKeysResult>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_multiple(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    body: web::Json<KeysTextRequest>,
) -> Reply<DeleteKeysResult> {
    let (group_id, keys) = listed_keys(&state, &body).await?;
    let hashes = unique_hashes(&state, &keys);
    let ids = listed_ids(&state, group_id, &hashes).await?;
    let deleted_count = delete(&state, group_id, ids, None).await?;
    let total = state.repo.count_keys(group_id).await?;
    ok(DeleteKeysResult {
        deleted_count,
        ignored_count: keys.len() - deleted_count,
        total_in_group: total,
    })
}

/// Reactivate up to 5,000 listed keys that are invalid (others are ignored).
#[utoipa::path(post, path = "/api/keys/restore-multiple", tag = "keys", request_body = KeysTextRequest,
    responses((status = 200, body = Envelope<RestoreKeysResult>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn restore_multiple(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    body: web::Json<KeysTextRequest>,
) -> Reply<RestoreKeysResult> {
    let (group_id, keys) = listed_keys(&state, &body).await?;
    let hashes = unique_hashes(&state, &keys);
    let ids = listed_ids(&state, group_id, &hashes).await?;
    let restored = restore(&state, group_id, Some(ids)).await?;
    let total = state.repo.count_keys(group_id).await?;
    ok(RestoreKeysResult {
        restored_count: restored,
        ignored_count: keys.len() - restored,
        total_in_group: total,
    })
}

/// Reactivate every invalid key of a group.
#[utoipa::path(post, path = "/api/keys/restore-all-invalid", tag = "keys", request_body = GroupIdRequest,
    responses((status = 200, body = Envelope<NoData>, description = "Message \"{n} keys restored\""),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn restore_all_invalid(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    body: web::Json<GroupIdRequest>,
) -> Reply<NoData> {
    let group_id = body_group_id(body.group_id)?;
    require_group(&state, group_id).await?;
    let restored = restore(&state, group_id, None).await?;
    done(tf(Msg::KeysRestored, &[("count", &restored)]))
}

/// Delete every invalid key of a group.
#[utoipa::path(post, path = "/api/keys/clear-all-invalid", tag = "keys", request_body = GroupIdRequest,
    responses((status = 200, body = Envelope<NoData>, description = "Message \"{n} invalid keys cleared\""),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn clear_all_invalid(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    body: web::Json<GroupIdRequest>,
) -> Reply<NoData> {
    let group_id = body_group_id(body.group_id)?;
    require_group(&state, group_id).await?;
    let ids = stored_ids(&state, group_id, Some(KeyStatus::Invalid)).await?;
    let count = delete(&state, group_id, ids, Some(KeyStatus::Invalid)).await?;
    done(tf(Msg::InvalidKeysCleared, &[("count", &count)]))
}

/// Delete every key of a group.
#[utoipa::path(post, path = "/api/keys/clear-all", tag = "keys", request_body = GroupIdRequest,
    responses((status = 200, body = Envelope<NoData>, description = "Message \"{n} keys cleared\""),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn clear_all(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    body: web::Json<GroupIdRequest>,
) -> Reply<NoData> {
    let group_id = body_group_id(body.group_id)?;
    require_group(&state, group_id).await?;
    let ids = stored_ids(&state, group_id, None).await?;
    let count = delete(&state, group_id, ids, None).await?;
    done(tf(Msg::KeysCleared, &[("count", &count)]))
}

/// Test up to 5,000 listed keys one after another with the group's validation request. Results
/// update the keys like a validation run (a pass reactivates, a failure counts by its class and
/// within the pool floor); disabled keys are tested but never change.
#[utoipa::path(post, path = "/api/keys/test-multiple", tag = "keys", request_body = KeysTextRequest,
    responses((status = 200, body = Envelope<KeyTestResults>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn test_multiple(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    body: web::Json<KeysTextRequest>,
) -> Reply<KeyTestResults> {
    let started = Instant::now();
    let (group_id, keys) = listed_keys(&state, &body).await?;
    let group = state
        .snapshot
        .load()
        .by_id
        .get(&group_id)
        .cloned()
        .ok_or_else(|| AdminError::NotFound(t(Msg::GroupNotFound)))?;
    let hashes = unique_hashes(&state, &keys);
    let rows = state.repo.keys_by_hashes(group_id, &hashes).await?;
    let by_hash: HashMap<&str, _> = rows.iter().map(|r| (r.key_hash.as_str(), r)).collect();
    let timeout = Duration::from_secs(group.config.key_validation_timeout_secs.max(1) as u64);
    let prober = Prober::new(timeout);
    let mut results = Vec::with_capacity(keys.len());
    for key in keys {
        let hash = state.repo.codec.hash(&key);
        let Some(row) = by_hash.get(hash.as_str()).copied() else {
            results.push(KeyTestResult {
                key_value: key,
                is_valid: false,
                error: t(Msg::KeyNotInGroup),
            });
            continue;
        };
        let result = prober.probe(&group, &key).await;
        prober::apply(&state.pool, &group, row.id, &result).await?;
        results.push(KeyTestResult {
            key_value: key,
            is_valid: result.is_ok(),
            error: result.err().map(|f| f.message).unwrap_or_default(),
        });
    }
    ok(KeyTestResults {
        results,
        total_duration: started.elapsed().as_millis() as u64,
    })
}
