//! Long-running admin tasks (key import, key deletion, key validation): exactly one at a time,
//! started atomically, with progress that `GET /api/tasks/status` reads while it runs. In a
//! cluster "one at a time" is cluster-wide: the slot is a claim in the shared store (`SET NX PX`,
//! refreshed while the task runs, so a crashed node frees it within the TTL), and the status is
//! published there for every node's status endpoint.
//! Tasks run on their own arbiter thread, so a 100,000-key import never competes with the HTTP
//! workers that serve proxy traffic.

pub mod delete;
pub mod import;
pub mod validate;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use actix_rt::{Arbiter, ArbiterHandle};
use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::db::repo::Repo;
use crate::key_sync::KeySync;

/// What the key tasks read and write: the stored keys, and the pool (with the cluster) that
/// follows every change to them.
#[derive(Clone)]
pub struct KeyJobs {
    pub repo: Repo,
    pub keys: KeySync,
}

/// The kinds of task, spelled as GPT-Load reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    KeyValidation,
    KeyImport,
    KeyDelete,
}

impl TaskKind {
    /// The `task_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::KeyValidation => "KEY_VALIDATION",
            TaskKind::KeyImport => "KEY_IMPORT",
            TaskKind::KeyDelete => "KEY_DELETE",
        }
    }
}

/// The state of the current (or last) task, as `GET /api/tasks/status` returns it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct TaskStatus {
    /// `KEY_VALIDATION`, `KEY_IMPORT`, `KEY_DELETE`, or empty when no task ever ran.
    pub task_type: String,
    pub is_running: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group_name: String,
    /// Items handled so far.
    pub processed: i64,
    /// Items in the task.
    pub total: i64,
    /// Type-specific counts once finished: import `{added_count, ignored_count}`, delete
    /// `{deleted_count, ignored_count}`, validation `{total_keys, valid_keys, invalid_keys}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Why the task failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
}

impl TaskStatus {
    fn idle() -> Self {
        TaskStatus {
            task_type: String::new(),
            is_running: false,
            group_name: String::new(),
            processed: 0,
            total: 0,
            result: None,
            error: None,
            started_at: "0001-01-01T00:00:00Z".into(),
            finished_at: None,
            duration_seconds: None,
        }
    }
}

/// Another task is running.
#[derive(Debug, thiserror::Error)]
#[error("a task is already running")]
pub struct TaskBusy;

struct Current {
    status: TaskStatus,
    generation: u64,
}

/// Why a task could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartTaskError {
    #[error(transparent)]
    Busy(#[from] TaskBusy),
    /// The shared store could not say whether another node runs a task.
    #[error("the cluster task slot could not be claimed: {0}")]
    Store(#[from] gpt_load_actors::cluster::StoreError),
}

/// The cluster-wide side of the slot.
struct ClusterSlot {
    store: Arc<dyn gpt_load_actors::cluster::Coordinator>,
    node: Arc<str>,
    ttl: std::time::Duration,
}

/// The task slot and the thread tasks run on.
#[derive(Clone)]
pub struct TaskRegistry {
    current: Arc<Mutex<Option<Current>>>,
    generation: Arc<Mutex<u64>>,
    runner: ArbiterHandle,
    cluster: Option<Arc<ClusterSlot>>,
}

impl TaskRegistry {
    /// A registry with its own arbiter thread. Needs a running actix system.
    pub fn start() -> Self {
        let arbiter = Arbiter::new();
        TaskRegistry {
            current: Arc::new(Mutex::new(None)),
            generation: Arc::new(Mutex::new(0)),
            runner: arbiter.handle(),
            cluster: None,
        }
    }

    /// Makes the slot cluster-wide: claimed in `store` for at most `ttl` past this node's last
    /// sign of life.
    pub fn with_cluster(
        mut self,
        store: Arc<dyn gpt_load_actors::cluster::Coordinator>,
        node: Arc<str>,
        ttl: std::time::Duration,
    ) -> Self {
        self.cluster = Some(Arc::new(ClusterSlot { store, node, ttl }));
        self
    }

    /// Claims the slot (cluster-wide in a cluster), or fails when a task runs anywhere.
    pub async fn start_task(
        &self,
        kind: TaskKind,
        group_name: &str,
        total: usize,
    ) -> Result<TaskRun, StartTaskError> {
        let Some(cluster) = self.cluster.clone() else {
            return Ok(self.try_start(kind, group_name, total)?);
        };
        let claimed = cluster
            .store
            .claim_task(&cluster.node, cluster.ttl)
            .await
            .map_err(StartTaskError::Store)?;
        if !claimed {
            return Err(TaskBusy.into());
        }
        let run = match self.try_start(kind, group_name, total) {
            Ok(run) => run,
            Err(busy) => {
                let _ = cluster.store.release_task(&cluster.node).await;
                return Err(busy.into());
            }
        };
        publish_status(&cluster, &run.status()).await;
        self.keep_claim(cluster, run.generation);
        Ok(run)
    }

    /// While the task of `generation` runs: refreshes the claim and publishes progress.
    fn keep_claim(&self, cluster: Arc<ClusterSlot>, generation: u64) {
        let registry = self.clone();
        let every = (cluster.ttl / 3).min(std::time::Duration::from_secs(1));
        actix_rt::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let status = {
                    let current = registry.current.lock();
                    match current.as_ref() {
                        Some(c) if c.generation == generation => c.status.clone(),
                        _ => return,
                    }
                };
                publish_status(&cluster, &status).await;
                if !status.is_running {
                    let _ = cluster.store.release_task(&cluster.node).await;
                    return;
                }
                match cluster.store.refresh_task(&cluster.node, cluster.ttl).await {
                    Ok(true) => {}
                    Ok(false) => tracing::error!(
                        "The cluster task claim was lost while the task runs; another node may start one."
                    ),
                    Err(err) => {
                        tracing::warn!(error = %err, "Could not refresh the cluster task claim.")
                    }
                }
            }
        });
    }

    /// The current or last task's status anywhere in the cluster: this node's while it runs one,
    /// else the latest one any node published.
    pub async fn cluster_status(&self) -> TaskStatus {
        let local = self.status();
        let Some(cluster) = &self.cluster else {
            return local;
        };
        if local.is_running {
            return local;
        }
        match cluster.store.task_status().await {
            Ok(Some(json)) => match serde_json::from_str::<TaskStatus>(&json) {
                Ok(shared) if shared.started_at >= local.started_at => shared,
                Ok(_) => local,
                Err(err) => {
                    tracing::warn!(error = %err, "Ignored an unreadable shared task status.");
                    local
                }
            },
            Ok(None) => local,
            Err(err) => {
                tracing::warn!(error = %err, "Could not read the shared task status.");
                local
            }
        }
    }

    /// Claims the task slot, or fails when a task is running. Check and claim happen under one
    /// lock, so two concurrent requests can never both start.
    pub fn try_start(
        &self,
        kind: TaskKind,
        group_name: &str,
        total: usize,
    ) -> Result<TaskRun, TaskBusy> {
        let mut current = self.current.lock();
        if current.as_ref().is_some_and(|c| c.status.is_running) {
            return Err(TaskBusy);
        }
        let generation = {
            let mut g = self.generation.lock();
            *g += 1;
            *g
        };
        let started = Utc::now();
        *current = Some(Current {
            status: TaskStatus {
                task_type: kind.as_str().to_string(),
                is_running: true,
                group_name: group_name.to_string(),
                processed: 0,
                total: total as i64,
                result: None,
                error: None,
                started_at: rfc3339(started),
                finished_at: None,
                duration_seconds: None,
            },
            generation,
        });
        Ok(TaskRun {
            registry: self.clone(),
            generation,
            started: Instant::now(),
            done: false,
        })
    }

    /// The current or last task's status.
    pub fn status(&self) -> TaskStatus {
        self.current
            .lock()
            .as_ref()
            .map_or_else(TaskStatus::idle, |c| c.status.clone())
    }

    /// Runs a task on the task thread. `make` is called there, so the future it builds may hold
    /// thread-bound values such as an awc client.
    pub fn spawn<F, Fut>(&self, make: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let sent = self.runner.spawn_fn(move || {
            actix_rt::spawn(async move {
                make().await;
                // Imports and deletions allocate in bulk; give the freed memory back.
                crate::memory::release_free_memory();
            });
        });
        if !sent {
            tracing::error!("The task thread is gone; the task did not start.");
        }
    }

    /// Stops the task thread (at shutdown).
    pub fn shutdown(&self) {
        self.runner.stop();
    }

    fn update(&self, generation: u64, change: impl FnOnce(&mut TaskStatus)) {
        let mut current = self.current.lock();
        if let Some(c) = current.as_mut().filter(|c| c.generation == generation) {
            change(&mut c.status);
        }
    }
}

/// The running task's handle for reporting progress and its end. Dropping it before
/// [`TaskRun::finish`] or [`TaskRun::fail`] (a cancelled future, a stopped thread) marks the
/// task failed, so the slot is never stuck.
pub struct TaskRun {
    registry: TaskRegistry,
    generation: u64,
    started: Instant,
    done: bool,
}

impl TaskRun {
    /// Sets how many items are done.
    pub fn progress(&self, processed: usize) {
        self.registry.update(self.generation, |s| {
            s.processed = processed as i64;
        });
    }

    /// Ends the task with its result.
    pub fn finish(mut self, result: Value) {
        self.end(Some(result), None);
    }

    /// Ends the task with an error.
    pub fn fail(mut self, error: String) {
        self.end(None, Some(error));
    }

    /// A status snapshot including this task's latest progress.
    pub fn status(&self) -> TaskStatus {
        self.registry.status()
    }

    fn end(&mut self, result: Option<Value>, error: Option<String>) {
        self.done = true;
        let elapsed = self.started.elapsed().as_secs_f64();
        self.registry.update(self.generation, |s| {
            s.is_running = false;
            s.result = result;
            s.error = error;
            s.finished_at = Some(rfc3339(Utc::now()));
            s.duration_seconds = Some((elapsed * 1000.0).round() / 1000.0);
        });
    }
}

impl Drop for TaskRun {
    fn drop(&mut self) {
        if !self.done {
            self.end(None, Some("The task was interrupted".into()));
        }
    }
}

async fn publish_status(cluster: &ClusterSlot, status: &TaskStatus) {
    let json = match serde_json::to_string(status) {
        Ok(json) => json,
        Err(err) => {
            tracing::warn!(error = %err, "Could not encode the task status.");
            return;
        }
    };
    if let Err(err) = cluster.store.put_task_status(&json).await {
        tracing::warn!(error = %err, "Could not publish the task status to the cluster.");
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[actix_rt::test]
    async fn one_task_at_a_time_and_drop_releases_the_slot() {
        let registry = TaskRegistry::start();
        assert_eq!(
            serde_json::to_value(registry.status()).unwrap(),
            json!({"task_type": "", "is_running": false, "processed": 0, "total": 0,
                   "started_at": "0001-01-01T00:00:00Z"})
        );
        let run = registry.try_start(TaskKind::KeyImport, "g", 10).unwrap();
        assert!(registry.try_start(TaskKind::KeyDelete, "g", 1).is_err());
        run.progress(4);
        assert_eq!(registry.status().processed, 4);
        run.finish(json!({"added_count": 10}));
        let status = registry.status();
        assert!(!status.is_running);
        assert_eq!(status.result, Some(json!({"added_count": 10})));
        assert!(status.duration_seconds.is_some());

        let run = registry.try_start(TaskKind::KeyDelete, "g", 1).unwrap();
        drop(run);
        let status = registry.status();
        assert!(!status.is_running);
        assert_eq!(status.error.as_deref(), Some("The task was interrupted"));
        assert!(registry.try_start(TaskKind::KeyValidation, "g", 1).is_ok());
        registry.shutdown();
    }
}
