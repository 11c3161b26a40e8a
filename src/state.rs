//! What every handler shares: the published group snapshot, the actors and the repository.

use std::sync::Arc;

use actix::Addr;
use std::time::Instant;

use gpt_load_actors::group_registry::{GroupRegistryActor, Reload, SharedSnapshot};
use gpt_load_actors::key_pool::KeyPool;
use gpt_load_actors::log_batcher::{LogBatcherActor, LogCounters, SetMaxDelay};

use crate::config::AppConfig;
use crate::db::repo::Repo;
use crate::service::ServiceError;
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
    pub leadership: gpt_load_actors::cluster::Leadership,
    /// This process's id in the cluster (unique per start).
    pub node_id: Arc<str>,
    /// The shared store: Redis in a cluster, in-process on a single node.
    pub coordinator: Arc<dyn gpt_load_actors::cluster::Coordinator>,
    /// Set once a graceful stop began: `/health` answers 503 so load balancers move on.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// Concurrency slots and the request body memory budget, taken after authentication.
    pub admission: crate::http::admission::Admission,
    /// Passes when a graceful stop has lasted `SERVER_GRACEFUL_SHUTDOWN_TIMEOUT`: requests still
    /// in flight are cut then, and recorded as cut by the server.
    pub stop_deadline: crate::proxy::cancel::StopDeadline,
    /// Requests being served: a graceful stop waits for these, not for idle connections.
    pub in_flight: crate::http::admission::InFlight,
    /// Failed admin-key attempts per client address (this node only).
    pub login_throttle: Arc<crate::http::throttle::LoginThrottle>,
    /// The non-secret identities of the proxy keys that authenticated lately.
    pub proxy_identities: Arc<crate::http::credentials::IdentityCache>,
}

impl AppState {
    /// Starts the graceful stop's countdown: requests still in flight when
    /// `SERVER_GRACEFUL_SHUTDOWN_TIMEOUT` has passed are cut and recorded as cut by the server.
    pub fn arm_stop_deadline(&self) {
        self.stop_deadline.arm(std::time::Duration::from_secs(
            self.config.graceful_shutdown_timeout_secs,
        ));
    }

    /// A graceful stop of `server`: no new connection is accepted; requests in flight get the
    /// whole `SERVER_GRACEFUL_SHUTDOWN_TIMEOUT`, then the stop deadline cuts what is left (each
    /// answered and recorded as cut) and every connection closes, idle keep-alive ones included.
    pub async fn drain(&self, server: &actix_web::dev::ServerHandle) {
        /// Time for the requests cut at the deadline to send their answer and record their row.
        const CUT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
        server.pause().await;
        self.arm_stop_deadline();
        let budget =
            std::time::Duration::from_secs(self.config.graceful_shutdown_timeout_secs) + CUT_GRACE;
        if !self.in_flight.until_idle(Instant::now() + budget).await {
            tracing::warn!(
                requests = self.in_flight.count(),
                "Requests still in flight after the stop deadline; closing their connections."
            );
        }
        server.stop(false).await;
    }

    /// Applies an admin write to groups or settings: reloads them here (waiting until the new
    /// snapshot is published, so the next request on this node sees the write), then tells the
    /// other nodes of the cluster to do the same.
    pub async fn reload_config(&self) -> Result<(), ServiceError> {
        self.reload_config_local().await?;
        self.announce(gpt_load_actors::cluster::ClusterEvent::ConfigChanged)
            .await;
        Ok(())
    }

    /// Tells the other nodes of the cluster about a write this node already applied.
    pub async fn announce(&self, event: gpt_load_actors::cluster::ClusterEvent) {
        crate::cluster::sync::publish(&*self.coordinator, &self.node_id, event).await;
    }

    /// Reloads groups and settings on this node only.
    pub async fn reload_config_local(&self) -> Result<(), ServiceError> {
        self.registry.send(Reload).await??;
        self.logs.do_send(SetMaxDelay(self.log_max_delay()));
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

    /// The longest a request log record waits before it is written, with the settings in force.
    pub fn log_max_delay(&self) -> std::time::Duration {
        log_max_delay(&self.config, &self.snapshot.load().settings)
    }
}

/// `REQUEST_LOG_MAX_DELAY_MS`, shortened by `request_log_write_interval_minutes` when that is
/// smaller: the setting (which GPT-Load's UI sets, 1 minute by default) is an upper bound on the
/// delay, no longer the delay itself, so a crash never loses a minute of logs.
pub fn log_max_delay(
    config: &AppConfig,
    settings: &gpt_load_actors::settings::SystemSettings,
) -> std::time::Duration {
    let minutes = settings.request_log_write_interval_minutes().max(0) as u64;
    config
        .request_log_max_delay()
        .min(std::time::Duration::from_secs(minutes.saturating_mul(60)))
}
