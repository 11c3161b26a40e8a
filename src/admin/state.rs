//! What the admin API reads and writes: the repository, the key pool, the task slot, the
//! cluster's view, and the reload that follows every write to groups or settings.

use std::sync::Arc;
use std::time::Instant;

use gpt_load_actors::cluster::Leadership;
use gpt_load_actors::group_registry::SharedSnapshot;
use gpt_load_actors::key_pool::KeyPool;
use gpt_load_actors::log_batcher::LogCounters;

use crate::cluster::sync::ConfigSync;
use crate::config::AppConfig;
use crate::db::repo::Repo;
use crate::http::admission::Admission;
use crate::http::throttle::LoginThrottle;
use crate::key_sync::KeySync;
use crate::metrics::Metrics;
use crate::service::ServiceError;
use crate::tasks::{KeyJobs, TaskRegistry};

/// The admin handlers' shared data (cheap to clone).
#[derive(Clone)]
pub struct AdminState {
    pub config: Arc<AppConfig>,
    pub snapshot: SharedSnapshot,
    /// The key pool: counts for the UI, operator commands.
    pub pool: KeyPool,
    pub repo: Repo,
    pub metrics: Arc<Metrics>,
    pub log_counters: Arc<LogCounters>,
    pub started_at: Instant,
    /// The one long-running admin task slot (imports, deletions, validations).
    pub tasks: TaskRegistry,
    /// Whether this node runs the singleton jobs now.
    pub leadership: Leadership,
    /// Set once a graceful stop began: `/health` answers 503 so load balancers move on.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// Concurrency slots: an authenticated admin request holds one while it runs.
    pub admission: Admission,
    /// Failed admin-key attempts per client address (this node only).
    pub login_throttle: Arc<LoginThrottle>,
    /// Reloads groups and settings here and announces the write to the cluster.
    pub sync: ConfigSync,
}

impl AdminState {
    /// Applies an admin write to groups or settings here, then tells the other nodes.
    pub async fn reload_config(&self) -> Result<(), ServiceError> {
        self.sync.reload_config().await
    }

    /// Reloads groups and settings on this node only.
    pub async fn reload_config_local(&self) -> Result<(), ServiceError> {
        self.sync.reload_config_local().await
    }

    /// Tells the other nodes of the cluster about a write this node already applied.
    pub async fn announce(&self, event: gpt_load_actors::cluster::ClusterEvent) {
        self.sync.announce(event).await;
    }

    /// The handle key writes go through: the pool applies them, the cluster hears of them.
    pub fn key_sync(&self) -> KeySync {
        KeySync {
            pool: self.pool.clone(),
            announcer: self.sync.announcer.clone(),
        }
    }

    /// What a long-running key task takes with it onto the task thread.
    pub fn key_jobs(&self) -> KeyJobs {
        KeyJobs {
            repo: self.repo.clone(),
            keys: self.key_sync(),
        }
    }
}
