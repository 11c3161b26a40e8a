//! What every handler shares: the published group snapshot, the actors and the repository.

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use gpt_load_actors::group_registry::{GroupRegistryActor, Reload, SharedSnapshot};
use gpt_load_actors::key_pool::{KeyPoolActor, UsableKeys};

use crate::config::AppConfig;
use crate::db::repo::Repo;
use crate::http::error::ApiError;

/// Shared application state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<AppConfig>,
    pub snapshot: SharedSnapshot,
    pub pool: Addr<KeyPoolActor>,
    /// Usable key counts per group, published by the pool for lock-free reads.
    pub usable_keys: UsableKeys,
    pub registry: Addr<GroupRegistryActor>,
    pub repo: Repo,
    pub started_at: Instant,
}

impl AppState {
    /// Reloads groups and settings and waits until the new snapshot is published, so the next
    /// request on this node sees an admin write.
    pub async fn reload_config(&self) -> Result<(), ApiError> {
        self.registry
            .send(Reload)
            .await
            .map_err(|e| ApiError::Internal(format!("group registry unavailable: {e}")))?
            .map_err(|e| ApiError::Internal(format!("reloading groups failed: {e}")))
    }
}
