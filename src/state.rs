//! What every handler shares: the published group snapshot, the actors and the repository.

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use gpt_load_actors::group_registry::{GroupRegistryActor, Reload, SharedSnapshot};
use gpt_load_actors::key_pool::{KeyPoolActor, UsableKeys};
use gpt_load_actors::log_batcher::{LogBatcherActor, LogCounters, SetFlushInterval};

use crate::config::AppConfig;
use crate::db::repo::Repo;
use crate::http::error::ApiError;
use crate::tasks::TaskRegistry;

/// Shared application state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<AppConfig>,
    pub snapshot: SharedSnapshot,
    pub pool: Addr<KeyPoolActor>,
    /// Leases are read from here without a message to the pool actor.
    pub leases: gpt_load_actors::lease_table::LeaseTable,
    /// Usable key counts per group, published by the pool for lock-free reads.
    pub usable_keys: UsableKeys,
    pub registry: Addr<GroupRegistryActor>,
    pub logs: Addr<LogBatcherActor>,
    /// Where proxied requests leave their log records (drained by `logs`).
    pub log_queue: gpt_load_actors::log_batcher::RecordQueue,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub log_counters: std::sync::Arc<LogCounters>,
    /// How often the pool floor kept a failing key in service (dashboard warning).
    pub floor_hits: Arc<std::sync::atomic::AtomicU64>,
    pub repo: Repo,
    pub started_at: Instant,
    /// The one long-running admin task slot (imports, deletions, validations).
    pub tasks: TaskRegistry,
    /// Whether this node runs the singleton jobs now.
    pub leadership: crate::cluster::Leadership,
}

impl AppState {
    /// Reloads groups and settings and waits until the new snapshot is published, so the next
    /// request on this node sees an admin write.
    pub async fn reload_config(&self) -> Result<(), ApiError> {
        self.registry
            .send(Reload)
            .await
            .map_err(|e| ApiError::Internal(format!("group registry unavailable: {e}")))?
            .map_err(|e| ApiError::Internal(format!("reloading groups failed: {e}")))?;
        self.logs
            .do_send(SetFlushInterval(self.log_flush_interval()));
        Ok(())
    }

    /// Writes every buffered request log now (graceful stop, tests).
    pub async fn flush_logs(&self) -> bool {
        match self.logs.send(gpt_load_actors::log_batcher::FlushAll).await {
            Ok(done) => {
                if !done {
                    tracing::error!("Some request logs could not be written.");
                }
                done
            }
            Err(err) => {
                tracing::error!(error = %err, "The log batcher is gone; buffered request logs are lost.");
                false
            }
        }
    }

    /// The `request_log_write_interval_minutes` setting in force.
    pub fn log_flush_interval(&self) -> std::time::Duration {
        let minutes = self
            .snapshot
            .load()
            .settings
            .request_log_write_interval_minutes()
            .max(0) as u64;
        std::time::Duration::from_secs(minutes * 60)
    }
}
