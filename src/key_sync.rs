//! Keeps the in-memory key pool in step with the admin API, and tells the other nodes of a cluster
//! to reload the group's keys. Inserted keys join the pool after their insert; every operator change
//! to existing keys (disable, enable, restore, delete, clear) is a pool command: the pool applies it
//! in memory and stores it on its own ordered writer, so no handler writes a key's health columns.
//! Changed keys are swapped in place rather than reloading the whole group: a reload holds the
//! pool actor for as long as the group's keys take to read, which would stall every group's leases.

use gpt_load_actors::domain::{GroupId, KeyId, KeyStatus, PoolKey};
use gpt_load_actors::key_pool::OperatorCommand;

use gpt_load_actors::cluster::ClusterEvent;
use gpt_load_actors::key_pool::KeyPool;

use crate::cluster::sync::Announcer;
use crate::service::ServiceError;

/// What a key write needs: the pool that applies it and the voice that tells the cluster.
#[derive(Clone)]
pub struct KeySync {
    pub pool: KeyPool,
    pub announcer: Announcer,
}

/// Adds freshly inserted keys.
pub async fn add(state: &KeySync, keys: Vec<PoolKey>) -> Result<(), ServiceError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut groups: Vec<GroupId> = keys.iter().map(|k| k.group_id).collect();
    groups.sort_unstable();
    groups.dedup();
    state.pool.add(keys).await?;
    for group_id in groups {
        state
            .announcer
            .announce(ClusterEvent::KeysChanged { group_id })
            .await;
    }
    Ok(())
}

/// Forgets the cluster-wide failure counts of keys that start over (restored) or are gone.
async fn reset_failures(state: &KeySync, key_ids: &[KeyId]) {
    if key_ids.is_empty() {
        return;
    }
    if let Err(err) = state.announcer.coordinator.reset_failures(key_ids).await {
        tracing::warn!(error = %err, "Could not reset cluster-wide key failure counts.");
    }
}

/// Runs an operator's command through the pool and, once stored, tells the other nodes. Answers
/// the ids it touched.
pub async fn command(
    state: &KeySync,
    command: OperatorCommand,
) -> Result<Vec<KeyId>, ServiceError> {
    let (group_id, restarts) = match &command {
        OperatorCommand::SetStatus {
            group_id, status, ..
        } => (*group_id, *status != KeyStatus::Disabled),
        OperatorCommand::Restore { group_id, .. } | OperatorCommand::Delete { group_id, .. } => {
            (*group_id, true)
        }
    };
    let touched = state.pool.command(command).await?;
    if touched.is_empty() {
        return Ok(touched);
    }
    if restarts {
        reset_failures(state, &touched).await;
    }
    state
        .announcer
        .announce(ClusterEvent::KeysChanged { group_id })
        .await;
    Ok(touched)
}
