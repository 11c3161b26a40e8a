//! The composition root's inventory: every shared handle a started server owns. Only `app` (and
//! the tests, through `RunningApp::state`) hold the whole of it; readers get their own view:
//! [`ProxyState`] for the request path, [`AdminState`] for the admin API, and the background
//! jobs take the few handles they use one by one.

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;

use gpt_load_actors::group_registry::{GroupRegistryActor, SharedSnapshot};
use gpt_load_actors::key_pool::KeyPool;
use gpt_load_actors::log_batcher::{LogBatcherActor, LogCounters};

use crate::admin::state::AdminState;
use crate::cluster::sync::{Announcer, ConfigSync};
use crate::config::AppConfig;
use crate::db::repo::Repo;
use crate::proxy::state::ProxyState;
use crate::service::ServiceError;
use crate::tasks::TaskRegistry;

/// Every shared handle of a started server (cheap to clone).
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

    /// Applies an admin write to groups or settings here, then tells the other nodes (tests).
    pub async fn reload_config(&self) -> Result<(), ServiceError> {
        self.config_sync().reload_config().await
    }

    /// This node's voice in the cluster.
    pub fn announcer(&self) -> Announcer {
        Announcer {
            coordinator: Arc::clone(&self.coordinator),
            node_id: Arc::clone(&self.node_id),
        }
    }

    /// Groups and settings reloads, for the admin API and the cluster listener.
    pub fn config_sync(&self) -> ConfigSync {
        ConfigSync {
            config: Arc::clone(&self.config),
            snapshot: Arc::clone(&self.snapshot),
            registry: self.registry.clone(),
            logs: self.logs.clone(),
            announcer: self.announcer(),
        }
    }

    /// What the request path reads.
    pub fn proxy_state(&self) -> ProxyState {
        ProxyState {
            config: Arc::clone(&self.config),
            snapshot: Arc::clone(&self.snapshot),
            pool: self.pool.clone(),
            repo: self.repo.clone(),
            log_queue: self.log_queue.clone(),
            metrics: Arc::clone(&self.metrics),
            admission: self.admission.clone(),
            stop_deadline: self.stop_deadline.clone(),
            proxy_identities: Arc::clone(&self.proxy_identities),
        }
    }

    /// What the admin API reads and writes.
    pub fn admin_state(&self) -> AdminState {
        AdminState {
            config: Arc::clone(&self.config),
            snapshot: Arc::clone(&self.snapshot),
            pool: self.pool.clone(),
            repo: self.repo.clone(),
            metrics: Arc::clone(&self.metrics),
            log_counters: Arc::clone(&self.log_counters),
            started_at: self.started_at,
            tasks: self.tasks.clone(),
            leadership: self.leadership.clone(),
            draining: Arc::clone(&self.draining),
            admission: self.admission.clone(),
            login_throttle: Arc::clone(&self.login_throttle),
            sync: self.config_sync(),
        }
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
}
