//! What every handler shares: the published group snapshot, the actors and the repository.

use std::sync::Arc;

use actix::Addr;
use std::time::Instant;

use gpt_load_actors::group_registry::{GroupRegistryActor, Reload, SharedSnapshot};
use gpt_load_actors::key_pool::KeyPool;
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
    /// The key pool: leases (no message on the hot path), failure reports, operator commands.
    pub pool: KeyPool,
    pub registry: Addr<GroupRegistryActor>,
    pub logs: Addr<LogBatcherActor>,
    /// Where proxied requests leave their log records (drained by `logs`).
    pub log_queue: gpt_load_actors::log_batcher::RecordQueue,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub log_counters: std::sync::Arc<LogCounters>,
    pub repo: Repo,
    pub started_at: Instant,
    /// The one long-running admin task slot (imports, deletions, validations).
    pub tasks: TaskRegistry,
    /// Whether this node runs the singleton jobs now.
    pub leadership: crate::cluster::Leadership,
    /// This process's id in the cluster (unique per start).
    pub node_id: Arc<str>,
    /// The shared store: Redis in a cluster, in-process on a single node.
    pub coordinator: Arc<dyn crate::store::Coordinator>,
    /// Set once a graceful stop began: `/health` answers 503 so load balancers move on.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// Applies an admin write to groups or settings: reloads them here (waiting until the new
    /// snapshot is published, so the next request on this node sees the write), then tells the
    /// other nodes of the cluster to do the same.
    pub async fn reload_config(&self) -> Result<(), ApiError> {
        self.reload_config_local().await?;
        self.announce(crate::store::ClusterEvent::ConfigChanged)
            .await;
        Ok(())
    }

    /// Tells the other nodes of the cluster about a write this node already applied.
    pub async fn announce(&self, event: crate::store::ClusterEvent) {
        crate::cluster::sync::publish(&*self.coordinator, &self.node_id, event).await;
    }

    /// Reloads groups and settings on this node only.
    pub async fn reload_config_local(&self) -> Result<(), ApiError> {
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
