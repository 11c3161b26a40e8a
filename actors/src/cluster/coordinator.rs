//! The port every cluster concern goes through: the leader lock and its fencing epoch,
//! cluster-wide key failure counts, named locks, the admin task claim and the event channel.
//! `src/store/` holds its adapters (Redis, in-process).

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::events::EventEnvelope;

/// A cluster store failure, in the store's own terms but named by kind, not by adapter; its
/// text never carries the address's credentials or any secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The configured address cannot be parsed (the adapter names the setting).
    #[error("{0}")]
    InvalidAddress(String),
    /// The store did not answer at start-up; `store` is the adapter's name for it ("Redis").
    #[error("{store} at {addr} is unreachable: {reason}")]
    Unreachable {
        store: &'static str,
        addr: String,
        reason: String,
    },
    /// A call could not reach the store: no connection, a dropped one, or no answer in time.
    #[error("the cluster store is unavailable: {0}")]
    Unavailable(String),
    /// The store answered a call with an error, or with a value that cannot be read.
    #[error("a cluster store command failed: {0}")]
    Command(String),
    #[error("a cluster event could not be encoded: {0}")]
    Encode(String),
}

impl StoreError {
    /// True when a retry later may succeed (the store is out of reach, not refusing).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unreachable { .. } | StoreError::Unavailable(_)
        )
    }
}

/// The kind survives the port: an unreachable store is `Unavailable` (a 503 worth a retry at
/// the edge), anything else `Other`.
impl From<StoreError> for crate::ports::PortError {
    fn from(err: StoreError) -> Self {
        if err.is_unavailable() {
            crate::ports::PortError::Unavailable(err.to_string())
        } else {
            crate::ports::PortError::Other(err.to_string())
        }
    }
}

/// The result of one attempt to take the leader lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeadAttempt {
    /// This node holds the lock now, for fencing epoch `epoch`.
    Won { epoch: u64 },
    /// Another node holds it, for `epoch` when known.
    Held { epoch: Option<u64> },
}

/// What the subscription delivers.
#[derive(Clone, Debug)]
pub enum Notice {
    /// An event published by some node (possibly this one).
    Event(EventEnvelope),
    /// The subscription was lost and is back: events may have been missed, reload everything.
    Resynced,
}

/// The port every cluster concern goes through.
#[async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// `redis` or `memory`, for `/health` and logs.
    fn kind(&self) -> &'static str;

    /// Round trip to the store.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Takes the leader lock if nobody holds it: `SET NX PX`, then a fencing epoch from `INCR`
    /// that never goes below `min_epoch` (the highest this node has seen, so a store that lost
    /// its data cannot hand out an epoch again).
    async fn try_lead(
        &self,
        node: &str,
        ttl: Duration,
        min_epoch: u64,
    ) -> Result<LeadAttempt, StoreError>;

    /// Extends the lock if this node still holds it for `epoch` (compare-and-expire).
    async fn renew(&self, node: &str, epoch: u64, ttl: Duration) -> Result<bool, StoreError>;

    /// Releases the lock if this node holds it for `epoch` (compare-and-delete).
    async fn resign(&self, node: &str, epoch: u64) -> Result<bool, StoreError>;

    /// Records that the leader of `epoch` is running its singleton jobs now, with the store's
    /// clock, only while it still holds the lock (fenced). Returns false when it does not.
    async fn record_term(&self, node: &str, epoch: u64) -> Result<bool, StoreError>;

    /// Publishes an event to every node.
    async fn publish(&self, event: &EventEnvelope) -> Result<(), StoreError>;

    /// Events and resync notices from now on.
    fn subscribe(&self) -> broadcast::Receiver<Notice>;

    /// Counts one failure of a key across the cluster; returns the new total.
    async fn count_failure(&self, key_id: i64) -> Result<i64, StoreError>;

    /// Forgets the failure counts of keys that were restored or deleted.
    async fn reset_failures(&self, key_ids: &[i64]) -> Result<(), StoreError>;

    /// Takes the named lock `<prefix>lock:<name>` for `owner` if free (`SET NX PX`).
    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Extends a named lock `owner` holds; false when it does not hold it any more.
    async fn refresh_lock(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Releases a named lock if `owner` holds it.
    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError>;

    /// Claims the one cluster-wide admin task slot for `owner` (`SET NX PX`).
    async fn claim_task(&self, owner: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Extends the claim while the task runs; false when it was lost.
    async fn refresh_task(&self, owner: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Releases the claim if `owner` still holds it.
    async fn release_task(&self, owner: &str) -> Result<(), StoreError>;

    /// Stores the JSON status of the current or last task, for every node's status endpoint.
    async fn put_task_status(&self, status: &str) -> Result<(), StoreError>;

    /// The JSON status of the current or last task, if any node stored one.
    async fn task_status(&self) -> Result<Option<String>, StoreError>;
}
