//! Keeps the in-memory key pool in step with key writes made by the admin API, so the next
//! proxied request on this node sees them, and tells the other nodes of a cluster to reload the
//! group's keys. Changed keys are swapped in place (remove, then add
//! with their new state) rather than reloading the whole group: a reload holds the pool actor
//! for as long as the group's keys take to read, which would stall every group's leases.

use gpt_load_actors::domain::{GroupId, KeyId, PoolKey};
use gpt_load_actors::key_pool::{AddKeys, RemoveKeys};

use crate::db::models::KeyRow;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::ClusterEvent;

fn pool_gone(err: actix::MailboxError) -> ApiError {
    ApiError::Internal(format!("key pool unavailable: {err}"))
}

/// Adds freshly inserted keys.
pub async fn add(state: &AppState, keys: Vec<PoolKey>) -> Result<(), ApiError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut groups: Vec<GroupId> = keys.iter().map(|k| k.group_id).collect();
    groups.sort_unstable();
    groups.dedup();
    state.pool.send(AddKeys { keys }).await.map_err(pool_gone)?;
    for group_id in groups {
        state.announce(ClusterEvent::KeysChanged { group_id }).await;
    }
    Ok(())
}

/// Forgets the cluster-wide failure counts of keys that start over (restored) or are gone.
async fn reset_failures(state: &AppState, key_ids: &[KeyId]) {
    if let Err(err) = state.coordinator.reset_failures(key_ids).await {
        tracing::warn!(error = %err, "Could not reset cluster-wide key failure counts.");
    }
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
    reset_failures(state, &key_ids).await;
    state
        .pool
        .send(RemoveKeys { group_id, key_ids })
        .await
        .map_err(pool_gone)?;
    state.announce(ClusterEvent::KeysChanged { group_id }).await;
    Ok(())
}

/// Replaces keys whose status or failure count changed with their stored state: active keys
/// rejoin the rotation, invalid ones leave it.
pub async fn refresh(state: &AppState, group_id: GroupId, rows: &[KeyRow]) -> Result<(), ApiError> {
    if rows.is_empty() {
        return Ok(());
    }
    let restarted: Vec<KeyId> = rows
        .iter()
        .filter(|r| r.failure_count == 0)
        .map(|r| r.id)
        .collect();
    reset_failures(state, &restarted).await;
    let ids = rows.iter().map(|r| r.id).collect();
    state
        .pool
        .send(RemoveKeys {
            group_id,
            key_ids: ids,
        })
        .await
        .map_err(pool_gone)?;
    add(state, state.repo.pool_keys(rows)).await
}
