//! Operator commands and views. Commands change the pool in memory first, then queue the stored
//! change on the pool's one writer and answer once it is stored, so no handler writes a key's
//! health columns itself and no queued health write can undo an operator's change.

use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::writer::Job;
use super::KeyPoolActor;
use crate::domain::{GroupId, HealthChange, KeyId, KeyStatus};
use crate::key_state::{FailureClass, State};
use crate::ports::{KeyWrite, PortError};

/// An operator's change to keys of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorCommand {
    /// `Disabled` takes the key out of service until enabled; `Active` enables it (a blacklisted
    /// one too) with a zero failure count, no rests and no demotion.
    SetStatus {
        group_id: GroupId,
        key_id: KeyId,
        status: KeyStatus,
    },
    /// Reactivates these invalid keys (every invalid key of the group when `None`).
    Restore {
        group_id: GroupId,
        key_ids: Option<Vec<KeyId>>,
    },
    /// Deletes keys; with `only`, keys the pool holds in another state are kept.
    Delete {
        group_id: GroupId,
        key_ids: Vec<KeyId>,
        only: Option<KeyStatus>,
    },
}

pub(crate) type Stored = oneshot::Receiver<Result<Vec<KeyId>, PortError>>;

#[derive(Message)]
#[rtype(result = "Stored")]
pub(crate) struct Command(pub OperatorCommand);

impl Handler<Command> for KeyPoolActor {
    type Result = MessageResult<Command>;

    fn handle(&mut self, Command(cmd): Command, _ctx: &mut Self::Context) -> Self::Result {
        let write = match cmd {
            OperatorCommand::SetStatus {
                group_id,
                key_id,
                status,
            } => self.set_status(group_id, key_id, status),
            OperatorCommand::Restore { group_id, key_ids } => self.restore(group_id, key_ids),
            OperatorCommand::Delete {
                group_id,
                key_ids,
                only,
            } => self.delete(group_id, key_ids, only),
        };
        let (ack, stored) = oneshot::channel();
        match write {
            Some(write) => {
                if !self.writer.queue(Job::Operator { write, ack }) {
                    tracing::error!("Key writer is gone; an operator's change was not stored.");
                }
            }
            None => {
                let _ = ack.send(Ok(Vec::new()));
            }
        }
        MessageResult(stored)
    }
}

impl KeyPoolActor {
    fn set_status(
        &mut self,
        group_id: GroupId,
        key_id: KeyId,
        status: KeyStatus,
    ) -> Option<KeyWrite> {
        let enable = status != KeyStatus::Disabled;
        if let Some(group) = self.groups.get_mut(&group_id) {
            if let Some(entry) = group.keys.get_mut(&key_id) {
                if enable {
                    entry.health.restore();
                    group.join_ring(key_id);
                } else {
                    entry.health.state = State::Disabled;
                    group.remove_from_ring(key_id);
                }
                self.publish(group_id);
                self.table.wake(group_id, key_id, None);
                self.table.demote(group_id, key_id, None);
            }
        }
        Some(KeyWrite::Status {
            key_ids: vec![key_id],
            status: if enable {
                KeyStatus::Active
            } else {
                KeyStatus::Disabled
            },
            reset_failures: enable,
        })
    }

    fn restore(&mut self, group_id: GroupId, key_ids: Option<Vec<KeyId>>) -> Option<KeyWrite> {
        let group = self.groups.get(&group_id)?;
        let invalid = |id: &KeyId| {
            group
                .keys
                .get(id)
                .is_some_and(|e| e.health.state == State::Invalid)
        };
        let mut ids: Vec<KeyId> = match key_ids {
            Some(ids) => ids.into_iter().filter(|id| invalid(id)).collect(),
            None => group
                .keys
                .keys()
                .copied()
                .filter(|id| invalid(id))
                .collect(),
        };
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return None;
        }
        // One publish for the whole batch: restoring thousands of keys one publish each would
        // rebuild the ring thousands of times.
        if let Some(group) = self.groups.get_mut(&group_id) {
            for id in &ids {
                if let Some(entry) = group.keys.get_mut(id) {
                    entry.health.restore();
                }
            }
            group.ring.extend(ids.iter().copied());
        }
        self.publish(group_id);
        Some(KeyWrite::Status {
            key_ids: ids,
            status: KeyStatus::Active,
            reset_failures: true,
        })
    }

    fn delete(
        &mut self,
        group_id: GroupId,
        mut key_ids: Vec<KeyId>,
        only: Option<KeyStatus>,
    ) -> Option<KeyWrite> {
        if let (Some(only), Some(group)) = (only, self.groups.get(&group_id)) {
            let wanted = match only {
                KeyStatus::Active => State::Active,
                KeyStatus::Invalid => State::Invalid,
                KeyStatus::Disabled => State::Disabled,
            };
            key_ids.retain(|id| group.keys.get(id).is_none_or(|e| e.health.state == wanted));
        }
        if key_ids.is_empty() {
            return None;
        }
        self.forget(group_id, &key_ids);
        Some(KeyWrite::Delete { key_ids })
    }
}

/// Ends a key's rest now: every rest, or the rest for one model. Answers `None` for a key the
/// pool does not hold, else whether anything was resting. Nothing is stored: rests live in memory.
#[derive(Message)]
#[rtype(result = "Option<bool>")]
pub(crate) struct ResetRests {
    pub group_id: GroupId,
    pub key_id: KeyId,
    pub model: Option<String>,
}

impl Handler<ResetRests> for KeyPoolActor {
    type Result = Option<bool>;

    fn handle(&mut self, msg: ResetRests, _ctx: &mut Self::Context) -> Option<bool> {
        let entry = self
            .groups
            .get_mut(&msg.group_id)?
            .keys
            .get_mut(&msg.key_id)?;
        // The backoff starts over too, so the next rate limit rests the shortest time again.
        match &msg.model {
            Some(model) => {
                entry.health.model_levels.remove(model.as_str());
            }
            None => entry.health.on_success(),
        }
        let was_resting = self
            .table
            .wake(msg.group_id, msg.key_id, msg.model.as_deref());
        if was_resting && msg.model.is_none() {
            self.announce(msg.group_id, msg.key_id, HealthChange::Restored);
        }
        Some(was_resting)
    }
}

/// One per-model rest of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRest {
    /// The model as sent upstream.
    pub model: String,
    pub until: DateTime<Utc>,
}

/// A key's live health as operators see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHealthView {
    pub state: LiveState,
    /// Wall-clock end of the current whole-key rest.
    pub cooldown_until: Option<DateTime<Utc>>,
    /// Rests for single models (the key still serves other models).
    pub model_cooldowns: Vec<ModelRest>,
    /// Demoted after recent key-dead failures: leased only when no other key is left.
    pub demoted: bool,
    pub last_failure: Option<FailureClass>,
}

/// Where a key is right now (a key resting for some models only reads as active).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveState {
    Active,
    CoolingDown,
    Invalid,
    Disabled,
}

impl LiveState {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LiveState::Active => "active",
            LiveState::CoolingDown => "cooling_down",
            LiveState::Invalid => "invalid",
            LiveState::Disabled => "disabled",
        }
    }
}

fn wall(at: Instant, now: Instant, wall_now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    chrono::Duration::from_std(at.saturating_duration_since(now))
        .ok()
        .map(|left| wall_now + left)
}

/// Asks for the live health of some keys of a group (keys the pool does not hold are left out).
#[derive(Message)]
#[rtype(result = "HashMap<KeyId, KeyHealthView>")]
pub(crate) struct DescribeKeys {
    pub group_id: GroupId,
    pub key_ids: Vec<KeyId>,
}

impl Handler<DescribeKeys> for KeyPoolActor {
    type Result = MessageResult<DescribeKeys>;

    fn handle(&mut self, msg: DescribeKeys, _ctx: &mut Self::Context) -> Self::Result {
        let (now, wall_now) = (Instant::now(), Utc::now());
        let Some(group) = self.groups.get(&msg.group_id) else {
            return MessageResult(HashMap::new());
        };
        let view = |id: KeyId, health: &crate::key_state::KeyHealth| {
            let rests = self.table.rests(msg.group_id, id).unwrap_or_default();
            let state = match health.state {
                State::Active if rests.whole.is_some() => LiveState::CoolingDown,
                State::Active => LiveState::Active,
                State::Invalid => LiveState::Invalid,
                State::Disabled => LiveState::Disabled,
            };
            KeyHealthView {
                state,
                cooldown_until: rests.whole.and_then(|at| wall(at, now, wall_now)),
                model_cooldowns: rests
                    .models
                    .iter()
                    .filter_map(|(model, at)| {
                        Some(ModelRest {
                            model: model.to_string(),
                            until: wall(*at, now, wall_now)?,
                        })
                    })
                    .collect(),
                demoted: rests.demoted,
                last_failure: health.last_failure,
            }
        };
        MessageResult(
            msg.key_ids
                .iter()
                .filter_map(|id| Some((*id, view(*id, &group.keys.get(id)?.health))))
                .collect(),
        )
    }
}

/// Counts of a group's keys by live state. `active` includes the `cooling` keys (in rotation,
/// resting as a whole or for some model); the four add up to all keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounts {
    pub active: usize,
    pub cooling: usize,
    pub invalid: usize,
    pub disabled: usize,
}

#[derive(Message)]
#[rtype(result = "PoolCounts")]
pub(crate) struct CountKeys {
    pub group_id: GroupId,
}

impl Handler<CountKeys> for KeyPoolActor {
    type Result = MessageResult<CountKeys>;

    fn handle(&mut self, msg: CountKeys, _ctx: &mut Self::Context) -> Self::Result {
        let mut counts = PoolCounts::default();
        if let Some(group) = self.groups.get(&msg.group_id) {
            for (id, entry) in &group.keys {
                match entry.health.state {
                    State::Active => {
                        counts.active += 1;
                        let resting = self
                            .table
                            .rests(msg.group_id, *id)
                            .is_some_and(|r| r.whole.is_some() || !r.models.is_empty());
                        if resting {
                            counts.cooling += 1;
                        }
                    }
                    State::Invalid => counts.invalid += 1,
                    State::Disabled => counts.disabled += 1,
                }
            }
        }
        MessageResult(counts)
    }
}
