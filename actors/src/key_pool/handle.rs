//! The one handle to the key pool: leases read the published table without a message; failures,
//! probes, operator commands and views are messages to the actor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::Addr;

use super::failure::{ApplyProbe, ReportFailure, Settle};
use super::lease::{Lease, LeaseTable, Standing};
use super::operator::{Command, CountKeys, DescribeKeys, ResetRests};
use super::remote::ApplyRemoteHealth;
use super::{AddKeys, ForgetKeys, KeyPoolActor, LoadKeys, RemoveGroup};
use super::{FailureReport, KeyHealthView, OperatorCommand, PoolCounts, ProbeApplied};
use crate::domain::{GroupId, HealthChange, KeyId, PoolKey};
use crate::key_state::{FailureClass, HealthPolicy};
use crate::ports::PortError;

/// Why the pool could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("key pool unavailable: {0}")]
    Gone(#[from] actix::MailboxError),
    #[error("key pool writer stopped before storing the change")]
    WriterGone,
    #[error("storing keys failed: {0}")]
    Store(#[from] PortError),
}

/// The key pool, cheap to clone.
#[derive(Clone)]
pub struct KeyPool {
    addr: Addr<KeyPoolActor>,
    table: LeaseTable,
    floor_hits: Arc<AtomicU64>,
}

impl KeyPool {
    pub(super) fn new(
        addr: Addr<KeyPoolActor>,
        table: LeaseTable,
        floor_hits: Arc<AtomicU64>,
    ) -> Self {
        Self {
            addr,
            table,
            floor_hits,
        }
    }

    /// A key for a request for `model` (as sent upstream), skipping keys it already tried.
    pub fn lease(
        &self,
        group_id: GroupId,
        model: Option<&str>,
        exclude: &[KeyId],
    ) -> Option<Lease> {
        self.table.lease(group_id, model, exclude)
    }

    /// Keys of a group in rotation (aggregates skip members with none before choosing).
    pub fn in_rotation(&self, group_id: GroupId) -> usize {
        self.table.in_rotation(group_id)
    }

    /// How often the floor kept a failing key in rotation (for the dashboard).
    pub fn floor_hits(&self) -> u64 {
        self.floor_hits.load(Ordering::Relaxed)
    }

    /// Reports a failed attempt and waits until the pool applied it, so the retry that follows
    /// already sees the key resting, demoted or blacklisted.
    pub async fn report_failure(&self, report: FailureReport) -> Result<(), PoolError> {
        Ok(self.addr.send(ReportFailure(report)).await?)
    }

    /// Reports a success with `lease`: only leases handed out resting or demoted are sent (it
    /// ends their rest), so ready leases cost no message.
    pub fn report_success(&self, group_id: GroupId, lease: &Lease, model: Option<&str>) {
        if lease.standing != Standing::Ready {
            self.addr.do_send(Settle {
                group_id,
                key_id: lease.key_id,
                model: model.map(Arc::from),
            });
        }
    }

    /// Applies a validation probe (`None`: passed) as traffic would, within the floor.
    pub async fn apply_probe(
        &self,
        group_id: GroupId,
        key_id: KeyId,
        failure: Option<FailureClass>,
        policy: HealthPolicy,
        floor_percent: i64,
    ) -> Result<ProbeApplied, PoolError> {
        Ok(self
            .addr
            .send(ApplyProbe {
                group_id,
                key_id,
                failure,
                policy,
                floor_percent,
            })
            .await?)
    }

    /// Runs an operator's command: applied in memory at once, answered once stored, with the
    /// ids it touched.
    pub async fn command(&self, command: OperatorCommand) -> Result<Vec<KeyId>, PoolError> {
        let stored = self.addr.send(Command(command)).await?;
        Ok(stored.await.map_err(|_| PoolError::WriterGone)??)
    }

    /// Ends a key's rests (all, or the one for `model`); `None` for a key the pool does not hold.
    pub async fn reset_rests(
        &self,
        group_id: GroupId,
        key_id: KeyId,
        model: Option<String>,
    ) -> Result<Option<bool>, PoolError> {
        Ok(self
            .addr
            .send(ResetRests {
                group_id,
                key_id,
                model,
            })
            .await?)
    }

    /// The live health of some keys of a group.
    pub async fn describe(
        &self,
        group_id: GroupId,
        key_ids: Vec<KeyId>,
    ) -> Result<HashMap<KeyId, KeyHealthView>, PoolError> {
        Ok(self.addr.send(DescribeKeys { group_id, key_ids }).await?)
    }

    /// A group's keys counted by live state.
    pub async fn count(&self, group_id: GroupId) -> Result<PoolCounts, PoolError> {
        Ok(self.addr.send(CountKeys { group_id }).await?)
    }

    /// Replaces one group's keys (or every group's) with what the repository holds.
    pub async fn load(&self, group_id: Option<GroupId>) -> Result<usize, PoolError> {
        Ok(self.addr.send(LoadKeys { group_id }).await??)
    }

    /// Adds keys just inserted into the repository.
    pub async fn add(&self, keys: Vec<PoolKey>) -> Result<(), PoolError> {
        Ok(self.addr.send(AddKeys { keys }).await?)
    }

    /// Forgets keys already deleted from the repository.
    pub async fn forget(&self, group_id: GroupId, key_ids: Vec<KeyId>) -> Result<(), PoolError> {
        Ok(self.addr.send(ForgetKeys { group_id, key_ids }).await?)
    }

    /// Forgets a deleted group.
    pub fn remove_group(&self, group_id: GroupId) {
        self.addr.do_send(RemoveGroup { group_id });
    }

    /// Applies a change another node of the cluster made.
    pub fn apply_remote(&self, group_id: GroupId, key_id: KeyId, change: HealthChange) {
        self.addr.do_send(ApplyRemoteHealth {
            group_id,
            key_id,
            change,
        });
    }
}
