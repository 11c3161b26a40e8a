//! The `KEY_IMPORT` task: adds keys to a group in chunks, skipping keys the group already has,
//! and puts each chunk into the key pool as soon as it is stored.

use std::collections::HashSet;

use gpt_load_actors::domain::GroupId;
use serde_json::json;

use super::TaskRun;
use crate::key_sync;
use crate::state::AppState;

/// Keys per chunk: one duplicate lookup and one multi-row insert each (the repository splits
/// them further into statements of 500 rows).
const CHUNK: usize = 1000;

/// Imports `keys` (already parsed, maybe with duplicates) into `group_id`.
pub async fn run(state: AppState, task: TaskRun, group_id: GroupId, keys: Vec<String>) {
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
    state: &AppState,
    task: &TaskRun,
    group_id: GroupId,
    keys: &[String],
) -> Result<usize, String> {
    let codec = &state.repo.codec;
    let mut seen = HashSet::with_capacity(keys.len());
    let mut added = 0;
    let mut processed = 0;
    for chunk in keys.chunks(CHUNK) {
        let mut fresh: Vec<(String, String)> = Vec::with_capacity(chunk.len());
        for key in chunk {
            let hash = codec.hash(key);
            if seen.insert(hash.clone()) {
                fresh.push((key.clone(), hash));
            }
        }
        let hashes: Vec<String> = fresh.iter().map(|(_, h)| h.clone()).collect();
        let existing = state
            .repo
            .existing_hashes(group_id, &hashes)
            .await
            .map_err(|e| e.to_string())?;
        let plain: Vec<String> = fresh
            .into_iter()
            .filter(|(_, h)| !existing.contains(h))
            .map(|(k, _)| k)
            .collect();
        let inserted = state
            .repo
            .insert_keys(group_id, &plain)
            .await
            .map_err(|e| e.to_string())?;
        added += inserted.len();
        key_sync::add(state, inserted)
            .await
            .map_err(|e| e.to_string())?;
        processed += chunk.len();
        task.progress(processed);
    }
    Ok(added)
}
