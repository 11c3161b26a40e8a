//! The `KEY_VALIDATION` task: probes a group's keys with bounded concurrency and applies each
//! result through the key pool (GPT-Load §6.3, with this project's failure classes and pool
//! floor), which stores it. Disabled keys are never handed to this task.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use gpt_load_actors::group_registry::GroupView;
use serde_json::json;

use super::{KeyJobs, TaskRun};
use crate::db::models::KeyRow;
use crate::validation::prober::{self, Prober};

/// Validates `keys` of `group`. Must run on the task thread (the prober's client is bound to it).
pub async fn run(state: KeyJobs, task: TaskRun, group: Arc<GroupView>, keys: Vec<KeyRow>) {
    let config = &group.config;
    let timeout = Duration::from_secs(config.key_validation_timeout_secs.max(1) as u64);
    let concurrency = config.key_validation_concurrency.max(1) as usize;
    let prober = Prober::new(timeout);
    let total = keys.len();

    let mut valid = 0usize;
    let mut processed = 0usize;
    let mut changed = 0usize;
    let mut first_error: Option<String> = None;
    let mut results = futures_util::stream::iter(keys)
        .map(|row| {
            let prober = &prober;
            let group = &group;
            let state = &state;
            async move {
                let plain = state.repo.codec.decode(&row.key_value).ok()?;
                let result = prober.probe(group, plain.expose()).await;
                let stored = prober::apply(&state.keys.pool, group, row.id, &result).await;
                Some((result.is_ok(), stored))
            }
        })
        .buffer_unordered(concurrency);
    while let Some(outcome) = results.next().await {
        processed += 1;
        match outcome {
            Some((passed, stored)) => {
                valid += usize::from(passed);
                match stored {
                    Ok(true) => changed += 1,
                    Ok(false) => {}
                    Err(err) => {
                        first_error.get_or_insert_with(|| err.to_string());
                    }
                }
            }
            None => {
                tracing::warn!(group = %group.record.name, "Skipping a key that cannot be decrypted.")
            }
        }
        task.progress(processed);
    }
    drop(results);
    tracing::info!(
        group = %group.record.name,
        total,
        valid,
        changed,
        "Key validation finished."
    );
    match first_error {
        Some(err) => task.fail(format!("storing validation results failed: {err}")),
        None => task.finish(json!({
            "total_keys": total,
            "valid_keys": valid,
            "invalid_keys": total - valid,
        })),
    }
}
