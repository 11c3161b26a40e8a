//! The key pool: every group's upstream keys in memory, leased in the order of [`lease`], failures
//! applied by the policy in [`failure`] (rests per key and model, blacklisting within the floor),
//! changes from other nodes in [`remote`], operator commands and views in [`operator`], and one
//! ordered [`writer`] for every stored change. [`KeyPoolActor::start`] returns the one
//! [`KeyPool`] handle the rest of the program uses.

mod failure;
mod handle;
pub mod lease;
mod operator;
mod remote;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use actix::prelude::*;

use crate::domain::{GroupId, HealthChange, KeyId, KeySecret, KeyStatus, PoolKey};
use crate::key_state::{KeyHealth, State};
use crate::ports::{HealthBus, KeyRepo, PortError};

pub use failure::{FailureReport, ProbeApplied};
pub use handle::{KeyPool, PoolError};
pub use lease::{Lease, Standing};
pub use operator::{KeyHealthView, LiveState, ModelRest, OperatorCommand, PoolCounts};

use writer::{Job, Writer};

struct Entry {
    secret: Arc<KeySecret>,
    health: KeyHealth,
}

/// One group's keys: all of them by id, and the ring (lease order) of those in rotation.
#[derive(Default)]
struct GroupKeys {
    ring: Vec<KeyId>,
    keys: HashMap<KeyId, Entry>,
}

impl GroupKeys {
    /// The group as stored; keys the pool held before keep their backoff and last failure.
    fn from_keys(keys: Vec<PoolKey>, mut previous: Option<GroupKeys>) -> Self {
        let mut group = GroupKeys::default();
        for key in keys {
            let id = key.id;
            let old = previous.as_mut().and_then(|p| p.keys.remove(&id));
            group.insert(key);
            if let (Some(old), Some(entry)) = (old, group.keys.get_mut(&id)) {
                let health = &mut entry.health;
                health.cooldown_level = old.health.cooldown_level;
                health.model_levels = old.health.model_levels;
                health.last_failure = old.health.last_failure;
                health.last_failed_at = old.health.last_failed_at;
            }
        }
        group
    }

    fn insert(&mut self, key: PoolKey) {
        // The ring holds exactly the active keys: the map says whether this one is in it, without
        // scanning the ring (imports insert keys by the hundred thousand).
        let in_ring = self
            .keys
            .get(&key.id)
            .is_some_and(|e| e.health.state == State::Active);
        match (key.status == KeyStatus::Active, in_ring) {
            (true, false) => self.ring.push(key.id),
            (false, true) => self.remove_from_ring(key.id),
            _ => {}
        }
        let state = match key.status {
            KeyStatus::Active => State::Active,
            KeyStatus::Invalid => State::Invalid,
            KeyStatus::Disabled => State::Disabled,
        };
        self.keys.insert(
            key.id,
            Entry {
                secret: Arc::new(key.secret),
                health: KeyHealth::new(state, key.failure_count),
            },
        );
    }

    /// Keys an operator has not disabled: the base of the floor.
    fn enabled(&self) -> usize {
        self.keys
            .values()
            .filter(|e| e.health.state != State::Disabled)
            .count()
    }

    fn remove_from_ring(&mut self, id: KeyId) {
        self.ring.retain(|k| *k != id);
    }

    fn join_ring(&mut self, id: KeyId) {
        if !self.ring.contains(&id) {
            self.ring.push(id);
        }
    }
}

/// The key pool actor. Reached only through its [`KeyPool`] handle.
pub struct KeyPoolActor {
    repo: Arc<dyn KeyRepo>,
    groups: HashMap<GroupId, GroupKeys>,
    table: lease::LeaseTable,
    floor_hits: Arc<AtomicU64>,
    writer: Writer,
    /// The cluster's shared failure counts and health events; `None` on a single node.
    bus: Option<Arc<dyn HealthBus>>,
}

impl KeyPoolActor {
    /// Starts an empty pool persisting through `repo` (sharing health with a cluster through
    /// `bus`) and returns its handle; load it with [`KeyPool::load`].
    pub fn start(repo: Arc<dyn KeyRepo>, bus: Option<Arc<dyn HealthBus>>) -> KeyPool {
        let table = lease::LeaseTable::default();
        let floor_hits = Arc::new(AtomicU64::new(0));
        let actor = KeyPoolActor {
            writer: Writer::spawn(Arc::clone(&repo)),
            repo,
            groups: HashMap::new(),
            table: table.clone(),
            floor_hits: Arc::clone(&floor_hits),
            bus,
        };
        KeyPool::new(actor.start(), table, floor_hits)
    }

    fn announce(&self, group_id: GroupId, key_id: KeyId, change: HealthChange) {
        if let Some(bus) = &self.bus {
            bus.announce(group_id, key_id, change);
        }
    }

    /// Publishes a group's ring after its membership changed.
    fn publish(&self, group_id: GroupId) {
        match self.groups.get(&group_id) {
            Some(group) => {
                let keys = group
                    .ring
                    .iter()
                    .filter_map(|id| Some((*id, Arc::clone(&group.keys.get(id)?.secret))))
                    .collect();
                self.table.publish(group_id, keys);
            }
            None => self.table.remove(group_id),
        }
    }

    /// Queues a health write on the writer.
    fn persist(
        &self,
        key_id: KeyId,
        health: &KeyHealth,
        ack: Option<tokio::sync::oneshot::Sender<()>>,
    ) {
        let status = match health.state {
            State::Invalid => KeyStatus::Invalid,
            State::Disabled => KeyStatus::Disabled,
            State::Active => KeyStatus::Active,
        };
        let queued = self.writer.queue(Job::Health {
            key_id,
            status,
            failure_count: health.failure_count,
            ack,
        });
        if !queued {
            tracing::warn!(
                key_id,
                "Key health writer is gone; change kept in memory only."
            );
        }
    }
}

impl Actor for KeyPoolActor {
    type Context = Context<Self>;
}

/// Replaces the pool of one group (or of every group) with what the repository holds.
#[derive(Message)]
#[rtype(result = "Result<usize, PortError>")]
pub(crate) struct LoadKeys {
    pub group_id: Option<GroupId>,
}

impl Handler<LoadKeys> for KeyPoolActor {
    type Result = AtomicResponse<Self, Result<usize, PortError>>;

    fn handle(&mut self, msg: LoadKeys, _ctx: &mut Self::Context) -> Self::Result {
        let repo = Arc::clone(&self.repo);
        AtomicResponse::new(Box::pin(
            async move { repo.load_keys(msg.group_id).await }
                .into_actor(self)
                .map(move |loaded, act, _ctx| {
                    let keys = loaded?;
                    let count = keys.len();
                    let mut by_group: HashMap<GroupId, Vec<PoolKey>> = HashMap::new();
                    for key in keys {
                        by_group.entry(key.group_id).or_default().push(key);
                    }
                    // Groups held now and groups stored, each once (a group in both must not be
                    // replaced and then dropped as if it had no keys).
                    let gids: std::collections::HashSet<GroupId> = match msg.group_id {
                        Some(gid) => std::collections::HashSet::from([gid]),
                        None => act.groups.keys().chain(by_group.keys()).copied().collect(),
                    };
                    for gid in gids {
                        let previous = act.groups.remove(&gid);
                        if let Some(keys) = by_group.remove(&gid) {
                            act.groups.insert(gid, GroupKeys::from_keys(keys, previous));
                        }
                        act.publish(gid);
                    }
                    tracing::debug!(keys = count, "Loaded key pool.");
                    Ok(count)
                }),
        ))
    }
}

/// Adds freshly imported keys to their groups' rings.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AddKeys {
    pub keys: Vec<PoolKey>,
}

impl Handler<AddKeys> for KeyPoolActor {
    type Result = ();

    fn handle(&mut self, msg: AddKeys, _ctx: &mut Self::Context) {
        let mut touched = Vec::new();
        for key in msg.keys {
            if !touched.contains(&key.group_id) {
                touched.push(key.group_id);
            }
            self.groups.entry(key.group_id).or_default().insert(key);
        }
        for gid in touched {
            self.publish(gid);
        }
    }
}

/// Forgets keys already deleted from the repository (by a background task or another node).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ForgetKeys {
    pub group_id: GroupId,
    pub key_ids: Vec<KeyId>,
}

impl Handler<ForgetKeys> for KeyPoolActor {
    type Result = ();

    fn handle(&mut self, msg: ForgetKeys, _ctx: &mut Self::Context) {
        self.forget(msg.group_id, &msg.key_ids);
    }
}

impl KeyPoolActor {
    fn forget(&mut self, group_id: GroupId, key_ids: &[KeyId]) {
        if let Some(group) = self.groups.get_mut(&group_id) {
            // One pass over the ring: deletions come in chunks of thousands.
            let gone: std::collections::HashSet<KeyId> = key_ids.iter().copied().collect();
            group.ring.retain(|id| !gone.contains(id));
            for id in key_ids {
                group.keys.remove(id);
            }
        }
        self.publish(group_id);
    }
}

/// Forgets a deleted group and all its keys.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RemoveGroup {
    pub group_id: GroupId,
}

impl Handler<RemoveGroup> for KeyPoolActor {
    type Result = ();

    fn handle(&mut self, msg: RemoveGroup, _ctx: &mut Self::Context) {
        self.groups.remove(&msg.group_id);
        self.publish(msg.group_id);
    }
}
