//! What the request path reads: the published snapshot, the key pool, where request logs go,
//! the metrics, admission and the stop deadline. Nothing here reloads, announces or administers.

use std::sync::Arc;

use gpt_load_actors::group_registry::SharedSnapshot;
use gpt_load_actors::key_pool::KeyPool;
use gpt_load_actors::log_batcher::RecordQueue;

use crate::config::AppConfig;
use crate::db::repo::Repo;
use crate::http::admission::Admission;
use crate::metrics::Metrics;

/// The proxy handler's shared data (cheap to clone).
#[derive(Clone)]
pub struct ProxyState {
    pub config: Arc<AppConfig>,
    pub snapshot: SharedSnapshot,
    /// The key pool: leases (no message on the hot path) and failure reports.
    pub pool: KeyPool,
    /// Proxy keys are checked against stored group settings and, on a miss, the database.
    pub repo: Repo,
    /// Where proxied requests leave their log records (drained by the log batcher).
    pub log_queue: RecordQueue,
    pub metrics: Arc<Metrics>,
    /// Concurrency slots and the request body memory budget, taken after authentication.
    pub admission: Admission,
    /// Passes when a graceful stop has lasted `SERVER_GRACEFUL_SHUTDOWN_TIMEOUT`: requests still
    /// in flight are cut then, and recorded as cut by the server.
    pub stop_deadline: super::cancel::StopDeadline,
    /// The non-secret identities of the proxy keys that authenticated lately.
    pub proxy_identities: Arc<crate::http::credentials::IdentityCache>,
}
