//! The `KEY_DELETE` task: deletes the listed keys of a group in chunks and takes them out of the
//! key pool.

use std::collections::HashSet;

use gpt_load_actors::domain::GroupId;
use gpt_load_actors::key_pool::OperatorCommand;
use serde_json::json;

use super::{KeyJobs, TaskRun};
use crate::key_sync;

/// Keys per chunk, as GPT-Load.
const CHUNK: usize = 1000;

/// Deletes `keys` (already parsed) from `group_id`.
pub async fn run(state: KeyJobs, task: TaskRun, group_id: GroupId, keys: Vec<String>) {
    match delete(&state, &task, group_id, &keys).await {
        Ok(deleted) => {
            tracing::info!(
                group_id,
                deleted,
                total = keys.len(),
                "Key deletion finished."
            );
            task.finish(json!({
                "deleted_count": deleted,
                "ignored_count": keys.len() - deleted,
            }));
        }
        Err(err) => {
            tracing::error!(group_id, error = %err, "Key deletion failed.");
            task.fail(err);
        }
    }
}

async fn delete(
    state: &KeyJobs,
    task: &TaskRun,
    group_id: GroupId,
    keys: &[String],
) -> Result<usize, String> {
    let mut seen = HashSet::with_capacity(keys.len());
    let mut deleted = 0;
    let mut processed = 0;
    for chunk in keys.chunks(CHUNK) {
        let hashes: Vec<String> = chunk
            .iter()
            .map(|k| state.repo.codec.hash(k))
            .filter(|h| seen.insert(h.clone()))
            .collect();
        let ids = state
            .repo
            .keys_by_hashes(group_id, &hashes)
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| r.id)
            .collect();
        // Through the pool's writer, in order with the health writes of traffic.
        let command = OperatorCommand::Delete {
            group_id,
            key_ids: ids,
            only: None,
        };
        deleted += key_sync::command(&state.keys, command)
            .await
            .map_err(|e| e.to_string())?
            .len();
        processed += chunk.len();
        task.progress(processed);
    }
    Ok(deleted)
}
