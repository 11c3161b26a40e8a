//! Traits the adapters implement so the actors can load and persist state without knowing how.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;

use crate::domain::{
    GroupId, GroupRecord, HealthChange, KeyId, KeySecret, KeyStatus, PoolKey, RequestRecord,
    SubGroupLink,
};
use crate::group_registry::GroupView;
use crate::key_state::FailureClass;

/// A storage failure: its kind, which the layers above answer differently (an unavailable store
/// is worth a retry, a conflict is the caller's), and a description for logs (never containing
/// key material).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The store is out of reach, refused or dropped the connection, or did not answer in time.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// What the call named does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The write collides with stored data (a unique value taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Any other failure (a query error, malformed stored data).
    #[error("{0}")]
    Other(String),
}

impl PortError {
    /// True when a retry may succeed once the store is back.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, PortError::Unavailable(_))
    }
}

/// Where upstream keys live.
#[async_trait]
pub trait KeyRepo: Send + Sync + 'static {
    /// Every key of one group, or of all groups, decrypted.
    async fn load_keys(&self, group_id: Option<GroupId>) -> Result<Vec<PoolKey>, PortError>;

    /// Persists a key's health after the pool changed it.
    async fn save_key_health(
        &self,
        key_id: KeyId,
        status: KeyStatus,
        failure_count: i64,
    ) -> Result<(), PortError>;

    /// Stores an operator's change in one transaction; answers the ids it touched.
    async fn apply_key_write(&self, write: &KeyWrite) -> Result<Vec<KeyId>, PortError>;
}

/// An operator's change to stored keys, queued by the key pool on its one writer so that it is
/// ordered with the health writes of traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyWrite {
    /// Sets the status; `reset_failures` also zeroes the failure count.
    Status {
        key_ids: Vec<KeyId>,
        status: KeyStatus,
        reset_failures: bool,
    },
    /// Deletes the keys.
    Delete { key_ids: Vec<KeyId> },
}

/// Where groups and system settings live.
#[async_trait]
pub trait ConfigRepo: Send + Sync + 'static {
    /// All groups.
    async fn load_groups(&self) -> Result<Vec<GroupRecord>, PortError>;

    /// Every aggregate membership.
    async fn load_sub_groups(&self) -> Result<Vec<SubGroupLink>, PortError>;

    /// Stored system settings as `key -> string value`.
    async fn load_settings(&self) -> Result<HashMap<String, String>, PortError>;
}

/// Where request logs go.
#[async_trait]
pub trait LogSink: Send + Sync + 'static {
    /// Writes a batch in one transaction: the rows, successful keys' usage counters, and the
    /// hourly statistics (retries excluded; aggregate traffic counted under both groups).
    /// On error nothing of the batch is written.
    async fn write_batch(&self, records: &[RequestRecord]) -> Result<(), PortError>;
}

/// Why a key failed its validation probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeFailure {
    /// Decided like a proxied failure's class, so a probe that meets a 503 or a rate limit does
    /// not count against the key.
    pub class: FailureClass,
    /// `[status N] message` or the transport error, with the key masked.
    pub message: String,
}

/// Sends a channel's validation request for one key. Not `Send`: the HTTP client behind it is
/// bound to the thread that built it.
#[async_trait(?Send)]
pub trait KeyProber {
    /// Passes on any 2xx answer.
    async fn probe(&self, group: &GroupView, key: &KeySecret) -> Result<(), ProbeFailure>;
}

/// What the background validator needs from outside the actors.
#[async_trait]
pub trait ValidationPort: Send + Sync + 'static {
    /// The group's blacklisted (`invalid`) keys, decrypted; disabled keys are never among them.
    async fn invalid_keys(&self, group_id: GroupId) -> Result<Vec<PoolKey>, PortError>;

    /// Stores when the group's invalid keys were last validated.
    async fn mark_validated(&self, group_id: GroupId, at: NaiveDateTime) -> Result<(), PortError>;

    /// A prober whose requests give up after `timeout`, bound to the calling thread.
    fn prober(&self, timeout: Duration) -> Box<dyn KeyProber>;
}

/// How the key pool shares key health with the other nodes of a cluster. Only failures go through
/// it, never successes, so a successful request costs no round trip to the shared store.
#[async_trait]
pub trait HealthBus: Send + Sync + 'static {
    /// Counts one failure of `key_id` across the cluster and returns the cluster-wide count.
    async fn count_failure(&self, key_id: KeyId) -> Result<i64, PortError>;

    /// Tells the other nodes about a change this node made (fire-and-forget).
    fn announce(&self, group_id: GroupId, key_id: KeyId, change: HealthChange);
}
