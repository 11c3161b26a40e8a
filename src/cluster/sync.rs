//! Keeps this node's copies (group registry, key pool) in step with writes made on other nodes,
//! and announces this node's own writes: [`Announcer`] publishes an event, [`ConfigSync`] reloads
//! groups and settings here and then announces it (the admin API's `reload_config`).
//!
//! The writer applies its own change before answering the admin request (so the next request on
//! that node sees it), then publishes an event; every other node applies the event, and the
//! writer skips its own echo. A node whose subscription dropped reloads everything once it is
//! back, because events sent meanwhile are lost.

use std::sync::Arc;

use actix::Addr;
use gpt_load_actors::cluster::{ClusterEvent, Coordinator, EventEnvelope, Notice};
use gpt_load_actors::domain::{GroupId, HealthChange, KeyId};
use gpt_load_actors::group_registry::{GroupRegistryActor, Reload, SharedSnapshot};
use gpt_load_actors::key_pool::KeyPool;
use gpt_load_actors::log_batcher::{LogBatcherActor, SetMaxDelay};
use gpt_load_actors::ports::{HealthBus, PortError};
use tokio::sync::broadcast::error::RecvError;

use crate::config::AppConfig;
use crate::service::ServiceError;

/// This node's voice in the cluster: what a writer uses to tell the other nodes of a change.
#[derive(Clone)]
pub struct Announcer {
    /// The shared store: Redis in a cluster, in-process on a single node.
    pub coordinator: Arc<dyn Coordinator>,
    /// This process's id in the cluster (unique per start), so it skips its own echoes.
    pub node_id: Arc<str>,
}

impl Announcer {
    /// Tells the other nodes of the cluster about a write this node already applied.
    pub async fn announce(&self, event: ClusterEvent) {
        publish(&*self.coordinator, &self.node_id, event).await;
    }
}

/// Groups and settings reloads: applied here after an admin write, announced to the other nodes,
/// and applied here again when another node announces one.
#[derive(Clone)]
pub struct ConfigSync {
    pub config: Arc<AppConfig>,
    pub snapshot: SharedSnapshot,
    pub registry: Addr<GroupRegistryActor>,
    pub logs: Addr<LogBatcherActor>,
    pub announcer: Announcer,
}

impl ConfigSync {
    /// Applies an admin write to groups or settings: reloads them here (waiting until the new
    /// snapshot is published, so the next request on this node sees the write), then tells the
    /// other nodes of the cluster to do the same.
    pub async fn reload_config(&self) -> Result<(), ServiceError> {
        self.reload_config_local().await?;
        self.announcer.announce(ClusterEvent::ConfigChanged).await;
        Ok(())
    }

    /// Tells the other nodes of the cluster about a write this node already applied.
    pub async fn announce(&self, event: ClusterEvent) {
        self.announcer.announce(event).await;
    }

    /// Reloads groups and settings on this node only.
    pub async fn reload_config_local(&self) -> Result<(), ServiceError> {
        self.registry.send(Reload).await??;
        self.logs.do_send(SetMaxDelay(self.log_max_delay()));
        Ok(())
    }

    /// The longest a request log record waits before it is written, with the settings in force.
    pub fn log_max_delay(&self) -> std::time::Duration {
        self.config.log_max_delay(&self.snapshot.load().settings)
    }
}

/// What the listener applies events to.
struct Listener {
    sync: ConfigSync,
    pool: KeyPool,
}

/// Publishes `event` from `node`; a failure is logged, never returned: the write it announces is
/// already committed, and the other nodes reload everything when their subscription recovers.
pub async fn publish(store: &dyn Coordinator, node: &str, event: ClusterEvent) {
    let envelope = EventEnvelope {
        node: node.to_string(),
        event,
    };
    if let Err(err) = store.publish(&envelope).await {
        tracing::warn!(error = %err, event = ?envelope.event, "Could not publish a cluster event.");
    }
}

/// Applies events from other nodes for as long as the actix system runs.
pub fn spawn_listener(sync: ConfigSync, pool: KeyPool) {
    let mut notices = sync.announcer.coordinator.subscribe();
    let state = Listener { sync, pool };
    actix_rt::spawn(async move {
        loop {
            match notices.recv().await {
                Ok(Notice::Event(envelope)) => {
                    if envelope.node.as_str() != &*state.sync.announcer.node_id {
                        apply(&state, envelope.event).await;
                    }
                }
                Ok(Notice::Resynced) => reload_everything(&state).await,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "Missed cluster events; reloading everything.");
                    reload_everything(&state).await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

async fn apply(state: &Listener, event: ClusterEvent) {
    tracing::debug!(?event, "Applying a cluster event.");
    match event {
        ClusterEvent::ConfigChanged => {
            if let Err(err) = state.sync.reload_config_local().await {
                tracing::warn!(error = %err, "Reloading groups and settings failed.");
            }
        }
        ClusterEvent::KeysChanged { group_id } => reload_keys(state, Some(group_id)).await,
        ClusterEvent::GroupDeleted { group_id } => {
            state.pool.remove_group(group_id);
            if let Err(err) = state.sync.reload_config_local().await {
                tracing::warn!(error = %err, "Reloading groups and settings failed.");
            }
        }
        ClusterEvent::KeyHealth {
            group_id,
            key_id,
            change,
        } => state.pool.apply_remote(group_id, key_id, change),
    }
}

async fn reload_keys(state: &Listener, group_id: Option<GroupId>) {
    if let Err(err) = state.pool.load(group_id).await {
        tracing::warn!(error = %err, ?group_id, "Reloading keys failed.");
    }
}

async fn reload_everything(state: &Listener) {
    if let Err(err) = state.sync.reload_config_local().await {
        tracing::warn!(error = %err, "Reloading groups and settings failed.");
    }
    reload_keys(state, None).await;
}

/// The key pool's window on the cluster: failure counts in the store, health changes as events.
pub struct StoreHealthBus {
    pub store: Arc<dyn Coordinator>,
    pub node: Arc<str>,
}

#[async_trait::async_trait]
impl HealthBus for StoreHealthBus {
    async fn count_failure(&self, key_id: KeyId) -> Result<i64, PortError> {
        self.store
            .count_failure(key_id)
            .await
            .map_err(PortError::from)
    }

    fn announce(&self, group_id: GroupId, key_id: KeyId, change: HealthChange) {
        let store = Arc::clone(&self.store);
        let node = Arc::clone(&self.node);
        actix_rt::spawn(async move {
            if matches!(change, HealthChange::Restored) {
                // A restored key starts its count over on every node, or the next failure
                // anywhere would blacklist it again at once.
                if let Err(err) = store.reset_failures(&[key_id]).await {
                    tracing::warn!(key_id, error = %err, "Could not reset a key's cluster-wide failure count.");
                }
            }
            publish(
                &*store,
                &node,
                ClusterEvent::KeyHealth {
                    group_id,
                    key_id,
                    change,
                },
            )
            .await;
        });
    }
}
