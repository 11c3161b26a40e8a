//! Keeps the in-memory key pool in step with key writes made by the admin API, so the next
//! proxied request on this node sees them. Changed keys are swapped in place (remove, then add
//! with their new state) rather than reloading the whole group: a reload holds the pool actor
//! for as long as the group's keys take to read, which would stall every group's leases.

use gpt_load_actors::domain::{GroupId, KeyId, PoolKey};
use gpt_load_actors::key_pool::{AddKeys, RemoveKeys};

use crate::db::models::KeyRow;
use crate::http::error::ApiError;
use crate::state::AppState;

fn pool_gone(err: actix::MailboxError) -> ApiError {
    ApiError::Internal(format!("key pool unavailable: {err}"))
}

/// Adds freshly inserted keys.
pub async fn add(state: &AppState, keys: Vec<PoolKey>) -> Result<(), ApiError> {
    if keys.is_empty() {
        return Ok(());
    }
    state.pool.send(AddKeys { keys }).await.map_err(pool_gone)
}

/// Forgets deleted keys.
pub async fn remove(
    state: &AppState,
    group_id: GroupId,
    key_ids: Vec<KeyId>,
) -> Result<(), ApiError> {
    if key_ids.is_empty() {
        return Ok(());
    }
    state
        .pool
        .send(RemoveKeys { group_id, key_ids })
        .await
        .map_err(pool_gone)
}

/// Replaces keys whose status or failure count changed with their stored state: active keys
/// rejoin the rotation, invalid ones leave it.
pub async fn refresh(state: &AppState, group_id: GroupId, rows: &[KeyRow]) -> Result<(), ApiError> {
    if rows.is_empty() {
        return Ok(());
    }
    remove(state, group_id, rows.iter().map(|r| r.id).collect()).await?;
    add(state, state.repo.pool_keys(rows)).await
}
