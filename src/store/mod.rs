//! The adapters of the core's [`Coordinator`] port (`gpt_load_actors::cluster`): Redis when
//! `REDIS_DSN` is set (a cluster), an in-process store otherwise (a single node). It holds what nodes must agree on and nothing
//! the hot path reads: the leader lock and its fencing epoch, cluster-wide key failure counts,
//! the admin task claim, and the event channel that keeps every node's copies current.

pub mod memory;
pub mod redis;

use std::sync::Arc;

use gpt_load_actors::cluster::{Coordinator, StoreError};

use crate::config::AppConfig;

/// Opens the store the configuration asks for. With Redis, a PING must answer before the node
/// starts; nothing is deleted, so a starting node never disturbs running ones.
pub async fn connect(config: &AppConfig) -> Result<Arc<dyn Coordinator>, StoreError> {
    if config.redis_dsn.is_empty() {
        return Ok(Arc::new(memory::MemoryStore::default()));
    }
    let store =
        redis::RedisStore::connect(config.redis_dsn.expose(), &config.redis_key_prefix).await?;
    Ok(Arc::new(store))
}
