//! Key health changes made by other nodes of the cluster, applied here without persisting (the node
//! that made the change already stored it) and without announcing them again.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;

use super::KeyPoolActor;
use crate::domain::{GroupId, HealthChange, KeyId};
use crate::key_state::State;

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ApplyRemoteHealth {
    pub group_id: GroupId,
    pub key_id: KeyId,
    pub change: HealthChange,
}

impl Handler<ApplyRemoteHealth> for KeyPoolActor {
    type Result = ();

    fn handle(&mut self, msg: ApplyRemoteHealth, _ctx: &mut Self::Context) {
        let (group_id, key_id) = (msg.group_id, msg.key_id);
        let Some(group) = self.groups.get_mut(&group_id) else {
            return;
        };
        let Some(entry) = group.keys.get_mut(&key_id) else {
            return;
        };
        match (entry.health.state, msg.change) {
            (State::Disabled, _) => {}
            (_, HealthChange::Restored) => {
                self.restore_here(group_id, key_id);
            }
            (State::Invalid, _) => {}
            (State::Active, HealthChange::Blacklisted { failure_count }) => {
                entry.health.state = State::Invalid;
                entry.health.failure_count = entry.health.failure_count.max(failure_count);
                group.remove_from_ring(key_id);
                self.publish(group_id);
            }
            (State::Active, HealthChange::CoolingDown { for_ms, model }) => {
                let until = Instant::now() + Duration::from_millis(for_ms);
                let model: Option<Arc<str>> = model.map(Arc::from);
                self.table.rest(group_id, key_id, model.as_ref(), until);
            }
        }
    }
}

impl KeyPoolActor {
    /// Makes a key active with no failures, no rest and no demotion in this node's pool: a
    /// blacklisted key rejoins the rotation. Persisting and announcing are the caller's business.
    /// Answers whether the key was resting or demoted.
    pub(super) fn restore_here(&mut self, group_id: GroupId, key_id: KeyId) -> bool {
        let Some(group) = self.groups.get_mut(&group_id) else {
            return false;
        };
        let Some(entry) = group.keys.get_mut(&key_id) else {
            return false;
        };
        let was_invalid = entry.health.state == State::Invalid;
        entry.health.restore();
        if was_invalid {
            group.join_ring(key_id);
            self.publish(group_id);
        }
        let demoted = self
            .table
            .rests(group_id, key_id)
            .is_some_and(|r| r.demoted);
        self.table.demote(group_id, key_id, None);
        self.table.wake(group_id, key_id, None) || demoted
    }
}
