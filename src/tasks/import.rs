//! The `KEY_IMPORT` task: adds keys to a group in chunks (one transaction each), skipping keys
//! the group already has, and puts each chunk into the key pool as soon as it is stored.

use std::collections::HashSet;

use gpt_load_actors::domain::GroupId;
use serde_json::json;

use super::{KeyJobs, TaskRun};
use crate::key_sync;

/// Keys per chunk and transaction. Larger chunks write fewer SQLite pages in total (see
/// `Repo::import_keys`) but hold the write lock longer; 5,000 keys take about 0.1 s.
const CHUNK: usize = 5000;

/// Imports `keys` (already parsed, maybe with duplicates) into `group_id`.
pub async fn run(state: KeyJobs, task: TaskRun, group_id: GroupId, keys: Vec<String>) {
    match import(&state, &task, group_id, &keys).await {
        Ok(added) => {
            tracing::info!(group_id, added, total = keys.len(), "Key import finished.");
            task.finish(json!({
                "added_count": added,
                "ignored_count": keys.len() - added,
            }));
        }
        Err(err) => {
            tracing::error!(group_id, error = %err, "Key import failed.");
            task.fail(err);
        }
    }
}

async fn import(
    state: &KeyJobs,
    task: &TaskRun,
    group_id: GroupId,
    keys: &[String],
) -> Result<usize, String> {
    let codec = &state.repo.codec;
    let mut seen = HashSet::with_capacity(keys.len());
    let mut added = 0;
    let mut processed = 0;
    for chunk in keys.chunks(CHUNK) {
        let fresh: Vec<String> = chunk
            .iter()
            .filter(|key| seen.insert(codec.hash(key)))
            .cloned()
            .collect();
        let inserted = state
            .repo
            .import_keys(group_id, fresh)
            .await
            .map_err(|e| e.to_string())?;
        added += inserted.len();
        key_sync::add(&state.keys, inserted)
            .await
            .map_err(|e| e.to_string())?;
        processed += chunk.len();
        task.progress(processed);
    }
    Ok(added)
}
