//! KeyPoolActor: owns every group's ring of usable upstream keys, hands out leases round robin,
//! counts failures and blacklists keys at the threshold. Health changes are persisted through
//! [`KeyRepo`] by a background writer, never on the request path.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

use crate::domain::{GroupId, HealthChange, KeyId, KeySecret, KeyStatus, PoolKey};
use crate::key_state::{FailureClass, HealthPolicy, KeyHealth, State, Transition};
use crate::lease_table::LeaseTable;
use crate::ports::{HealthBus, KeyRepo, PortError};

struct Entry {
    secret: Arc<KeySecret>,
    health: KeyHealth,
}

#[derive(Default)]
struct GroupKeys {
    ring: Vec<KeyId>,
    cursor: usize,
    keys: HashMap<KeyId, Entry>,
}

impl GroupKeys {
    fn from_keys(keys: Vec<PoolKey>) -> Self {
        let mut group = GroupKeys::default();
        for key in keys {
            group.insert(key);
        }
        group
    }

    fn insert(&mut self, key: PoolKey) {
        if key.status == KeyStatus::Active && !self.keys.contains_key(&key.id) {
            self.ring.push(key.id);
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

    /// Keys a lease could return right now.
    fn usable_now(&mut self, now: Instant) -> usize {
        let keys = &mut self.keys;
        self.ring
            .iter()
            .filter(|id| keys.get_mut(id).is_some_and(|e| e.health.usable(now)))
            .count()
    }

    /// Usable keys the pool floor keeps in service: `floor_percent` % of the group's enabled
    /// keys, at least one; 0 % turns protection off.
    fn floor(&self, floor_percent: i64) -> usize {
        let total = self
            .keys
            .values()
            .filter(|e| e.health.state != State::Disabled)
            .count();
        match floor_percent.max(0) {
            0 => 0,
            pct => ((total as i64 * pct + 99) / 100).max(1) as usize,
        }
    }

    fn remove_from_ring(&mut self, id: KeyId) {
        if let Some(pos) = self.ring.iter().position(|k| *k == id) {
            self.ring.remove(pos);
            if self.cursor > pos {
                self.cursor -= 1;
            }
            if self.cursor >= self.ring.len() {
                self.cursor = 0;
            }
        }
    }
}

/// How many keys each group can lease right now, readable without asking the actor (aggregates
/// use it to skip members with no usable key before choosing, which keeps their weights exact).
#[derive(Clone, Debug, Default)]
pub struct UsableKeys(Arc<parking_lot::RwLock<HashMap<GroupId, usize>>>);

impl UsableKeys {
    /// Number of keys of `group_id` that leases may return.
    pub fn count(&self, group_id: GroupId) -> usize {
        self.0.read().get(&group_id).copied().unwrap_or(0)
    }

    fn set(&self, group_id: GroupId, count: usize) {
        self.0.write().insert(group_id, count);
    }

    fn replace(&self, counts: HashMap<GroupId, usize>) {
        *self.0.write() = counts;
    }

    fn remove(&self, group_id: GroupId) {
        self.0.write().remove(&group_id);
    }
}

/// A key handed to one attempt of a request.
#[derive(Clone, Debug)]
pub struct Lease {
    pub key_id: KeyId,
    pub secret: Arc<KeySecret>,
}

/// A health change to persist; `ack` hears when it is stored (or failed to be).
#[derive(Debug)]
struct HealthWrite {
    key_id: KeyId,
    status: KeyStatus,
    failure_count: i64,
    ack: Option<oneshot::Sender<()>>,
}

/// The key pool actor.
pub struct KeyPoolActor {
    repo: Arc<dyn KeyRepo>,
    groups: HashMap<GroupId, GroupKeys>,
    usable: UsableKeys,
    table: LeaseTable,
    floor_hits: Arc<std::sync::atomic::AtomicU64>,
    writes: mpsc::UnboundedSender<HealthWrite>,
    writer: Option<mpsc::UnboundedReceiver<HealthWrite>>,
    /// The cluster's shared failure counts and health events; `None` on a single node.
    bus: Option<Arc<dyn HealthBus>>,
}

impl KeyPoolActor {
    /// A pool that persists through `repo`. Load it with [`LoadKeys`].
    pub fn new(repo: Arc<dyn KeyRepo>) -> Self {
        let (writes, writer) = mpsc::unbounded_channel();
        Self {
            repo,
            groups: HashMap::new(),
            usable: UsableKeys::default(),
            table: LeaseTable::default(),
            floor_hits: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            writes,
            writer: Some(writer),
            bus: None,
        }
    }

    /// Shares failure counts and health changes with the other nodes of a cluster.
    pub fn with_health_bus(mut self, bus: Arc<dyn HealthBus>) -> Self {
        self.bus = Some(bus);
        self
    }

    fn announce(&self, group_id: GroupId, key_id: KeyId, change: HealthChange) {
        if let Some(bus) = &self.bus {
            bus.announce(group_id, key_id, change);
        }
    }

    /// Merges the cluster-wide failure count of a key into this node's view: at the threshold
    /// the key is blacklisted here too (within the pool floor), even if this node saw fewer
    /// of the failures.
    fn merge_cluster_count(&mut self, msg: &ReportOutcome, cluster_count: i64) {
        let now = Instant::now();
        let Some(group) = self.groups.get_mut(&msg.group_id) else {
            return;
        };
        let floor = group.floor(msg.floor_percent);
        let usable = group.usable_now(now);
        let Some(entry) = group.keys.get_mut(&msg.key_id) else {
            return;
        };
        if matches!(entry.health.state, State::Invalid | State::Disabled) {
            return;
        }
        if cluster_count > entry.health.failure_count {
            entry.health.failure_count = cluster_count;
        }
        let threshold = msg.policy.blacklist_threshold;
        if threshold <= 0 || cluster_count < threshold {
            return;
        }
        if entry.health.usable(now) && usable <= floor {
            self.floor_hits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        entry.health.state = State::Invalid;
        let health = entry.health.clone();
        group.remove_from_ring(msg.key_id);
        self.publish(msg.group_id);
        tracing::warn!(
            group_id = msg.group_id,
            key_id = msg.key_id,
            failures = cluster_count,
            "Blacklisted a key that reached the failure threshold across the cluster."
        );
        self.persist(msg.key_id, &health, None);
        self.announce(
            msg.group_id,
            msg.key_id,
            HealthChange::Blacklisted {
                failure_count: health.failure_count,
            },
        );
    }
}

impl KeyPoolActor {
    /// How often the usable-key floor kept a failing key in service (for the dashboard).
    pub fn floor_hits(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.floor_hits)
    }

    /// The shared view of usable key counts, kept current by this actor.
    pub fn usable_keys(&self) -> UsableKeys {
        self.usable.clone()
    }

    /// The table request handlers lease from without messaging this actor.
    pub fn lease_table(&self) -> LeaseTable {
        self.table.clone()
    }

    /// Publishes a group's ring (and usable count) after its membership changed.
    fn publish(&self, group_id: GroupId) {
        match self.groups.get(&group_id) {
            Some(group) => {
                self.usable.set(group_id, group.ring.len());
                let keys = group
                    .ring
                    .iter()
                    .filter_map(|id| {
                        let entry = group.keys.get(id)?;
                        let until = match entry.health.state {
                            State::CoolingDown { until } => Some(until),
                            _ => None,
                        };
                        Some((*id, Arc::clone(&entry.secret), until))
                    })
                    .collect();
                self.table.publish(group_id, keys);
            }
            None => {
                self.usable.remove(group_id);
                self.table.remove(group_id);
            }
        }
    }
}

impl Actor for KeyPoolActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        // One writer task applies health writes in order, so a later count never loses to an
        // earlier one, and a slow database only delays persistence, never a lease.
        if let Some(mut rx) = self.writer.take() {
            let repo = Arc::clone(&self.repo);
            actix::spawn(async move {
                while let Some(w) = rx.recv().await {
                    if let Err(err) = repo
                        .save_key_health(w.key_id, w.status, w.failure_count)
                        .await
                    {
                        tracing::warn!(key_id = w.key_id, error = %err, "Failed to persist key health.");
                    }
                    if let Some(ack) = w.ack {
                        let _ = ack.send(());
                    }
                }
            });
        }
    }
}

/// Replaces the pool of one group (or of every group) with what the repository holds.
#[derive(Message)]
#[rtype(result = "Result<usize, PortError>")]
pub struct LoadKeys {
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
                    match msg.group_id {
                        Some(gid) => {
                            let keys = by_group.remove(&gid).unwrap_or_default();
                            act.groups.insert(gid, GroupKeys::from_keys(keys));
                            act.publish(gid);
                        }
                        None => {
                            act.groups = by_group
                                .into_iter()
                                .map(|(gid, keys)| (gid, GroupKeys::from_keys(keys)))
                                .collect();
                            act.usable.replace(
                                act.groups
                                    .iter()
                                    .map(|(gid, g)| (*gid, g.ring.len()))
                                    .collect(),
                            );
                            let gids: Vec<GroupId> = act.groups.keys().copied().collect();
                            for gid in gids {
                                act.publish(gid);
                            }
                        }
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
pub struct AddKeys {
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

/// Forgets deleted keys.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveKeys {
    pub group_id: GroupId,
    pub key_ids: Vec<KeyId>,
}

impl Handler<RemoveKeys> for KeyPoolActor {
    type Result = ();

    fn handle(&mut self, msg: RemoveKeys, _ctx: &mut Self::Context) {
        if let Some(group) = self.groups.get_mut(&msg.group_id) {
            for id in msg.key_ids {
                group.remove_from_ring(id);
                group.keys.remove(&id);
            }
        }
        self.publish(msg.group_id);
    }
}

/// Forgets a deleted group and all its keys.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveGroup {
    pub group_id: GroupId,
}

impl Handler<RemoveGroup> for KeyPoolActor {
    type Result = ();

    fn handle(&mut self, msg: RemoveGroup, _ctx: &mut Self::Context) {
        self.groups.remove(&msg.group_id);
        self.publish(msg.group_id);
    }
}

/// Asks for the next usable key of a group, skipping keys this request already tried.
#[derive(Message)]
#[rtype(result = "Option<Lease>")]
pub struct LeaseKey {
    pub group_id: GroupId,
    pub exclude: Vec<KeyId>,
}

impl Handler<LeaseKey> for KeyPoolActor {
    type Result = Option<Lease>;

    fn handle(&mut self, msg: LeaseKey, _ctx: &mut Self::Context) -> Option<Lease> {
        self.table.lease(msg.group_id, &msg.exclude)
    }
}

/// Reports how an attempt with a leased key ended: `None` for a success, else the failure's
/// class. The key's state machine decides the effect under `policy`; the pool floor keeps at least
/// `floor_percent` % of the group's keys (and at least one) usable whatever the failures say.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReportOutcome {
    pub group_id: GroupId,
    pub key_id: KeyId,
    pub failure: Option<FailureClass>,
    pub policy: HealthPolicy,
    pub floor_percent: i64,
}

impl Handler<ReportOutcome> for KeyPoolActor {
    type Result = ();

    fn handle(&mut self, msg: ReportOutcome, ctx: &mut Self::Context) {
        match msg.failure {
            None => {
                if let Some(entry) = self
                    .groups
                    .get_mut(&msg.group_id)
                    .and_then(|g| g.keys.get_mut(&msg.key_id))
                {
                    entry.health.on_success();
                }
            }
            Some(class) => {
                let recorded = self.record_failure(
                    msg.group_id,
                    msg.key_id,
                    class,
                    &msg.policy,
                    msg.floor_percent,
                    None,
                );
                let Some(recorded) = recorded else {
                    return;
                };
                if let (true, false, Some(bus)) =
                    (recorded.counted, recorded.blacklisted, self.bus.clone())
                {
                    // Failures only: a successful request never waits on (or even reaches)
                    // the shared store.
                    let key_id = msg.key_id;
                    ctx.spawn(
                        async move { bus.count_failure(key_id).await }
                            .into_actor(self)
                            .map(move |counted, act, _ctx| match counted {
                                Ok(n) => act.merge_cluster_count(&msg, n),
                                Err(err) => tracing::warn!(
                                    key_id,
                                    error = %err,
                                    "Could not count a key failure across the cluster; counted on this node only."
                                ),
                            }),
                    );
                }
            }
        }
    }
}

/// What one recorded failure did to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Recorded {
    /// The stored health changed (a write was queued).
    changed: bool,
    /// The failure counted toward the blacklist threshold.
    counted: bool,
    /// The key was blacklisted by it.
    blacklisted: bool,
}

impl KeyPoolActor {
    /// Queues a health write; false when the writer is gone (the change stays in memory).
    fn persist(&self, key_id: KeyId, health: &KeyHealth, ack: Option<oneshot::Sender<()>>) {
        let status = match health.state {
            State::Invalid => KeyStatus::Invalid,
            State::Disabled => KeyStatus::Disabled,
            State::Active | State::CoolingDown { .. } => KeyStatus::Active,
        };
        let write = HealthWrite {
            key_id,
            status,
            failure_count: health.failure_count,
            ack,
        };
        if self.writes.send(write).is_err() {
            tracing::warn!(
                key_id,
                "Key health writer is gone; change kept in memory only."
            );
        }
    }

    /// Applies one failure of `class` under `policy`, keeping at least `floor_percent` % of the
    /// group's keys (and at least one) usable. Says what changed (a write queued when `changed`,
    /// acknowledged on `ack`), or `None` for a key the pool does not hold.
    fn record_failure(
        &mut self,
        group_id: GroupId,
        key_id: KeyId,
        class: FailureClass,
        policy: &HealthPolicy,
        floor_percent: i64,
        ack: Option<oneshot::Sender<()>>,
    ) -> Option<Recorded> {
        let now = Instant::now();
        let group = self.groups.get_mut(&group_id)?;
        let floor = group.floor(floor_percent);
        let usable = group.usable_now(now);
        let entry = group.keys.get_mut(&key_id)?;
        entry.health.decay(policy, now);
        let before = entry.health.clone();
        let transition = entry.health.plan(class, policy, now);
        let makes_unusable = matches!(
            transition,
            Transition::Blacklist | Transition::CoolDown { .. }
        );
        let was_usable = entry.health.usable(now);
        let allow = !makes_unusable || !was_usable || usable > floor;
        if !allow {
            self.floor_hits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                group_id,
                key_id,
                class = class.as_str(),
                usable,
                floor,
                "Kept a failing key in service: the group is at its usable-key floor."
            );
        }
        entry.health.apply(class, transition, allow, now);
        let after = entry.health.clone();
        let blacklisted = after.state == State::Invalid && before.state != State::Invalid;
        if blacklisted {
            group.remove_from_ring(key_id);
        }
        if let State::CoolingDown { until } = after.state {
            self.table.rest(group_id, key_id, until);
            if before.state != after.state {
                let for_ms = until.saturating_duration_since(now).as_millis() as u64;
                self.announce(group_id, key_id, HealthChange::CoolingDown { for_ms });
            }
        }
        if blacklisted {
            self.publish(group_id);
            tracing::warn!(
                group_id,
                key_id,
                failures = after.failure_count,
                "Blacklisted a key that reached the failure threshold."
            );
        }
        let changed = after.failure_count != before.failure_count || blacklisted;
        if changed {
            self.persist(key_id, &after, ack);
        }
        if blacklisted {
            self.announce(
                group_id,
                key_id,
                HealthChange::Blacklisted {
                    failure_count: after.failure_count,
                },
            );
        }
        Some(Recorded {
            changed,
            counted: after.failure_count > before.failure_count,
            blacklisted,
        })
    }

    /// Makes a key active with no failures and no cooldown in this node's pool: a blacklisted
    /// key rejoins the rotation, a resting one is woken. Persisting and announcing are the
    /// caller's business (a change from another node is neither).
    fn restore_here(&mut self, group_id: GroupId, key_id: KeyId) {
        let Some(group) = self.groups.get_mut(&group_id) else {
            return;
        };
        let Some(entry) = group.keys.get_mut(&key_id) else {
            return;
        };
        let before = entry.health.state;
        entry.health.restore();
        match before {
            State::Invalid => {
                group.ring.push(key_id);
                self.publish(group_id);
            }
            State::CoolingDown { .. } => self.table.wake(group_id, key_id),
            State::Active | State::Disabled => {}
        }
    }

    /// A passed validation: the key is active again with a zero failure count and no cooldown.
    /// Disabled keys stay disabled. Same return as [`Self::record_failure`].
    fn record_pass(
        &mut self,
        group_id: GroupId,
        key_id: KeyId,
        ack: Option<oneshot::Sender<()>>,
    ) -> Option<Recorded> {
        let group = self.groups.get_mut(&group_id)?;
        let entry = group.keys.get_mut(&key_id)?;
        let before = entry.health.clone();
        let unchanged = Recorded {
            changed: false,
            counted: false,
            blacklisted: false,
        };
        if before.state == State::Disabled {
            return Some(unchanged);
        }
        self.restore_here(group_id, key_id);
        if before.state == State::Invalid {
            tracing::info!(group_id, key_id, "Restored a key that passed validation.");
        }
        let after = self
            .groups
            .get(&group_id)?
            .keys
            .get(&key_id)?
            .health
            .clone();
        let changed = before.state == State::Invalid || before.failure_count != 0;
        if changed {
            self.persist(key_id, &after, ack);
        }
        if changed || matches!(before.state, State::CoolingDown { .. }) {
            self.announce(group_id, key_id, HealthChange::Restored);
        }
        Some(Recorded {
            changed,
            ..unchanged
        })
    }
}

/// Applies a validation probe's result to a key, as a proxied failure would (same classes, same
/// floor) or, for a pass, by restoring it. The answer says whether the stored health changed;
/// `persisted` then resolves once the change is in the repository.
#[derive(Message)]
#[rtype(result = "ProbeApplied")]
pub struct ApplyProbe {
    pub group_id: GroupId,
    pub key_id: KeyId,
    /// `None`: the probe passed.
    pub failure: Option<FailureClass>,
    pub policy: HealthPolicy,
    pub floor_percent: i64,
}

/// What [`ApplyProbe`] did.
#[derive(Debug)]
pub struct ProbeApplied {
    /// False when the pool does not hold the key (deleted, or undecryptable at load).
    pub known: bool,
    pub changed: bool,
    pub persisted: Option<oneshot::Receiver<()>>,
}

impl ProbeApplied {
    /// Waits until the change (if any) is stored.
    pub async fn stored(self) -> bool {
        if let Some(rx) = self.persisted {
            let _ = rx.await;
        }
        self.changed
    }
}

impl Handler<ApplyProbe> for KeyPoolActor {
    type Result = MessageResult<ApplyProbe>;

    fn handle(&mut self, msg: ApplyProbe, _ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let outcome = match msg.failure {
            None => self.record_pass(msg.group_id, msg.key_id, Some(tx)),
            Some(class) => self.record_failure(
                msg.group_id,
                msg.key_id,
                class,
                &msg.policy,
                msg.floor_percent,
                Some(tx),
            ),
        };
        let changed = outcome.is_some_and(|r| r.changed);
        MessageResult(ProbeApplied {
            known: outcome.is_some(),
            changed,
            persisted: changed.then_some(rx),
        })
    }
}

/// Applies a key health change another node of the cluster made. Nothing is persisted here:
/// the node that made the change already did.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplyRemoteHealth {
    pub group_id: GroupId,
    pub key_id: KeyId,
    pub change: HealthChange,
}

impl Handler<ApplyRemoteHealth> for KeyPoolActor {
    type Result = ();

    fn handle(&mut self, msg: ApplyRemoteHealth, _ctx: &mut Self::Context) {
        let now = Instant::now();
        let Some(group) = self.groups.get_mut(&msg.group_id) else {
            return;
        };
        let Some(entry) = group.keys.get_mut(&msg.key_id) else {
            return;
        };
        if entry.health.state == State::Disabled {
            return;
        }
        if msg.change == HealthChange::Restored {
            self.restore_here(msg.group_id, msg.key_id);
            return;
        }
        if entry.health.state == State::Invalid {
            return;
        }
        match msg.change {
            HealthChange::Restored => {}
            HealthChange::Blacklisted { failure_count } => {
                entry.health.state = State::Invalid;
                entry.health.failure_count = entry.health.failure_count.max(failure_count);
                group.remove_from_ring(msg.key_id);
                self.publish(msg.group_id);
            }
            HealthChange::CoolingDown { for_ms } => {
                let until = now + std::time::Duration::from_millis(for_ms);
                entry.health.state = State::CoolingDown { until };
                self.table.rest(msg.group_id, msg.key_id, until);
            }
        }
    }
}

/// Ends a key's cooldown now (an operator's call). Answers `None` for a key the pool does not
/// hold, else whether it was cooling down.
#[derive(Message)]
#[rtype(result = "Option<bool>")]
pub struct ResetCooldown {
    pub group_id: GroupId,
    pub key_id: KeyId,
}

impl Handler<ResetCooldown> for KeyPoolActor {
    type Result = Option<bool>;

    fn handle(&mut self, msg: ResetCooldown, _ctx: &mut Self::Context) -> Option<bool> {
        let entry = self
            .groups
            .get_mut(&msg.group_id)?
            .keys
            .get_mut(&msg.key_id)?;
        let cooling =
            matches!(entry.health.state, State::CoolingDown { until } if until > Instant::now());
        if matches!(entry.health.state, State::CoolingDown { .. }) {
            entry.health.state = State::Active;
        }
        // The backoff starts over too, so the next rate limit rests the shortest time again.
        entry.health.on_success();
        self.table.wake(msg.group_id, msg.key_id);
        if cooling {
            self.announce(msg.group_id, msg.key_id, HealthChange::Restored);
        }
        Some(cooling)
    }
}

/// A key's live health as operators see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyHealthView {
    pub state: LiveState,
    /// Wall-clock end of the current cooldown.
    pub cooldown_until: Option<DateTime<Utc>>,
    pub last_failure: Option<FailureClass>,
}

/// Where a key is right now (an expired cooldown reads as active).
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

fn view(health: &KeyHealth, now: Instant, wall: DateTime<Utc>) -> KeyHealthView {
    let (state, cooldown_until) = match health.state {
        State::Active => (LiveState::Active, None),
        State::CoolingDown { until } if until > now => (
            LiveState::CoolingDown,
            chrono::Duration::from_std(until - now)
                .ok()
                .map(|left| wall + left),
        ),
        State::CoolingDown { .. } => (LiveState::Active, None),
        State::Invalid => (LiveState::Invalid, None),
        State::Disabled => (LiveState::Disabled, None),
    };
    KeyHealthView {
        state,
        cooldown_until,
        last_failure: health.last_failure,
    }
}

/// Asks for the live health of some keys of a group (keys the pool does not hold are left out).
#[derive(Message)]
#[rtype(result = "HashMap<KeyId, KeyHealthView>")]
pub struct DescribeKeys {
    pub group_id: GroupId,
    pub key_ids: Vec<KeyId>,
}

impl Handler<DescribeKeys> for KeyPoolActor {
    type Result = MessageResult<DescribeKeys>;

    fn handle(&mut self, msg: DescribeKeys, _ctx: &mut Self::Context) -> Self::Result {
        let (now, wall) = (Instant::now(), Utc::now());
        let Some(group) = self.groups.get(&msg.group_id) else {
            return MessageResult(HashMap::new());
        };
        MessageResult(
            msg.key_ids
                .iter()
                .filter_map(|id| {
                    group
                        .keys
                        .get(id)
                        .map(|e| (*id, view(&e.health, now, wall)))
                })
                .collect(),
        )
    }
}

/// Counts of a group's keys by live state, as the pool sees them. `active` includes the
/// `cooling` keys (they are in the rotation, resting); the four add up to all keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounts {
    pub active: usize,
    pub cooling: usize,
    pub invalid: usize,
    pub disabled: usize,
}

/// Asks how many keys of a group are active and invalid.
#[derive(Message)]
#[rtype(result = "PoolCounts")]
pub struct CountKeys {
    pub group_id: GroupId,
}

impl Handler<CountKeys> for KeyPoolActor {
    type Result = MessageResult<CountKeys>;

    fn handle(&mut self, msg: CountKeys, _ctx: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let mut counts = PoolCounts::default();
        if let Some(group) = self.groups.get(&msg.group_id) {
            for entry in group.keys.values() {
                match entry.health.state {
                    State::Active => counts.active += 1,
                    State::CoolingDown { until } => {
                        counts.active += 1;
                        if until > now {
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

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct MemRepo {
        keys: Mutex<Vec<PoolKey>>,
        writes: Mutex<Vec<(KeyId, KeyStatus, i64)>>,
    }

    #[async_trait]
    impl KeyRepo for MemRepo {
        async fn load_keys(&self, group_id: Option<GroupId>) -> Result<Vec<PoolKey>, PortError> {
            Ok(self
                .keys
                .lock()
                .iter()
                .filter(|k| group_id.is_none_or(|g| g == k.group_id))
                .cloned()
                .collect())
        }
        async fn save_key_health(
            &self,
            key_id: KeyId,
            status: KeyStatus,
            failure_count: i64,
        ) -> Result<(), PortError> {
            self.writes.lock().push((key_id, status, failure_count));
            Ok(())
        }
    }

    fn key(id: KeyId, status: KeyStatus) -> PoolKey {
        PoolKey {
            id,
            group_id: 1,
            secret: KeySecret::new(format!("sk-key-{id}")),
            status,
            failure_count: 0,
        }
    }

    async fn pool_with(keys: Vec<PoolKey>) -> (Addr<KeyPoolActor>, Arc<MemRepo>) {
        let repo = Arc::new(MemRepo::default());
        *repo.keys.lock() = keys;
        let addr = KeyPoolActor::new(repo.clone()).start();
        addr.send(LoadKeys { group_id: None })
            .await
            .unwrap()
            .unwrap();
        (addr, repo)
    }

    async fn lease(addr: &Addr<KeyPoolActor>, exclude: Vec<KeyId>) -> Option<KeyId> {
        addr.send(LeaseKey {
            group_id: 1,
            exclude,
        })
        .await
        .unwrap()
        .map(|l| l.key_id)
    }

    #[actix_rt::test]
    async fn leases_rotate_over_active_keys_only() {
        let (addr, _) = pool_with(vec![
            key(1, KeyStatus::Active),
            key(2, KeyStatus::Invalid),
            key(3, KeyStatus::Active),
        ])
        .await;
        let picks: Vec<_> = [(); 4].iter().map(|_| ()).collect::<Vec<_>>();
        let mut got = Vec::new();
        for _ in picks {
            got.push(lease(&addr, vec![]).await.unwrap());
        }
        assert_eq!(got, vec![1, 3, 1, 3]);
        assert_eq!(lease(&addr, vec![1, 3]).await, None);
        assert_eq!(lease(&addr, vec![1]).await, Some(3));
    }

    #[actix_rt::test]
    async fn threshold_blacklists_and_persists() {
        let (addr, repo) =
            pool_with(vec![key(1, KeyStatus::Active), key(2, KeyStatus::Active)]).await;
        for _ in 0..2 {
            addr.send(ReportOutcome {
                group_id: 1,
                key_id: 1,
                failure: Some(FailureClass::KeyDead),
                policy: HealthPolicy {
                    blacklist_threshold: 2,
                    ..Default::default()
                },
                floor_percent: 0,
            })
            .await
            .unwrap();
        }
        for _ in 0..3 {
            assert_eq!(lease(&addr, vec![]).await, Some(2));
        }
        assert_eq!(
            addr.send(CountKeys { group_id: 1 }).await.unwrap(),
            PoolCounts {
                active: 1,
                invalid: 1,
                ..Default::default()
            }
        );
        // The writer runs on its own task; give it a bounded number of turns.
        for _ in 0..100 {
            if repo.writes.lock().len() == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            *repo.writes.lock(),
            vec![(1, KeyStatus::Active, 1), (1, KeyStatus::Invalid, 2)]
        );
    }

    #[actix_rt::test]
    async fn zero_threshold_never_blacklists() {
        let (addr, _) = pool_with(vec![key(1, KeyStatus::Active)]).await;
        for _ in 0..10 {
            addr.send(ReportOutcome {
                group_id: 1,
                key_id: 1,
                failure: Some(FailureClass::KeyDead),
                policy: HealthPolicy {
                    blacklist_threshold: 0,
                    ..Default::default()
                },
                floor_percent: 0,
            })
            .await
            .unwrap();
        }
        assert_eq!(lease(&addr, vec![]).await, Some(1));
    }

    fn report(
        addr: &Addr<KeyPoolActor>,
        key_id: KeyId,
        class: FailureClass,
        policy: HealthPolicy,
        floor: i64,
    ) {
        addr.do_send(ReportOutcome {
            group_id: 1,
            key_id,
            failure: Some(class),
            policy,
            floor_percent: floor,
        });
    }

    #[actix_rt::test]
    async fn cooling_keys_are_skipped_and_come_back_by_themselves() {
        let (addr, repo) =
            pool_with(vec![key(1, KeyStatus::Active), key(2, KeyStatus::Active)]).await;
        let short = HealthPolicy {
            rate_limit_base: Duration::from_millis(150),
            ..Default::default()
        };
        report(
            &addr,
            1,
            FailureClass::RateLimited { retry_after: None },
            short,
            0,
        );
        for _ in 0..4 {
            assert_eq!(lease(&addr, vec![]).await, Some(2), "key 1 rests");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut back = false;
        while Instant::now() < deadline && !back {
            back = lease(&addr, vec![2]).await == Some(1);
            if !back {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        assert!(back, "the cooldown ends on its own");
        assert!(
            repo.writes.lock().is_empty(),
            "a rate limit is not a failure to persist"
        );
    }

    #[actix_rt::test]
    async fn a_storm_on_every_key_never_goes_below_the_floor() {
        let keys: Vec<PoolKey> = (1..=20).map(|i| key(i, KeyStatus::Active)).collect();
        let (addr, _) = pool_with(keys).await;
        let policy = HealthPolicy {
            blacklist_threshold: 1,
            trouble_counts: true,
            ..Default::default()
        };
        for round in 0..3 {
            for id in 1..=20 {
                report(
                    &addr,
                    id,
                    if round == 0 {
                        FailureClass::UpstreamTrouble
                    } else {
                        FailureClass::KeyDead
                    },
                    policy,
                    10,
                );
            }
        }
        let counts = addr.send(CountKeys { group_id: 1 }).await.unwrap();
        let mut usable = std::collections::HashSet::new();
        for _ in 0..40 {
            if let Some(id) = lease(&addr, vec![]).await {
                usable.insert(id);
            }
        }
        assert_eq!(usable.len(), 2, "10 % of 20 keys stay usable: {counts:?}");
    }

    #[actix_rt::test]
    async fn added_and_removed_keys_join_and_leave_the_ring() {
        let (addr, _) = pool_with(vec![key(1, KeyStatus::Active)]).await;
        addr.send(AddKeys {
            keys: vec![key(2, KeyStatus::Active)],
        })
        .await
        .unwrap();
        assert_eq!(lease(&addr, vec![1]).await, Some(2));
        addr.send(RemoveKeys {
            group_id: 1,
            key_ids: vec![1],
        })
        .await
        .unwrap();
        assert_eq!(lease(&addr, vec![]).await, Some(2));
        assert_eq!(lease(&addr, vec![]).await, Some(2));
        addr.send(RemoveGroup { group_id: 1 }).await.unwrap();
        assert_eq!(lease(&addr, vec![]).await, None);
    }

    #[actix_rt::test]
    async fn disabled_keys_are_never_leased_and_ignore_failures() {
        let (addr, repo) =
            pool_with(vec![key(1, KeyStatus::Active), key(2, KeyStatus::Disabled)]).await;
        for _ in 0..10 {
            assert_eq!(lease(&addr, vec![]).await, Some(1));
        }
        report(&addr, 2, FailureClass::KeyDead, HealthPolicy::default(), 0);
        let applied = addr
            .send(ApplyProbe {
                group_id: 1,
                key_id: 2,
                failure: None,
                policy: HealthPolicy::default(),
                floor_percent: 0,
            })
            .await
            .unwrap();
        assert!(
            applied.known && !applied.changed,
            "validation never revives it"
        );
        let counts = addr.send(CountKeys { group_id: 1 }).await.unwrap();
        assert_eq!((counts.active, counts.disabled), (1, 1));
        assert!(repo.writes.lock().is_empty());
    }

    #[actix_rt::test]
    async fn a_passed_probe_restores_an_invalid_key_and_persists_before_answering() {
        let (addr, repo) =
            pool_with(vec![key(1, KeyStatus::Active), key(2, KeyStatus::Invalid)]).await;
        assert_eq!(lease(&addr, vec![1]).await, None);
        let applied = addr
            .send(ApplyProbe {
                group_id: 1,
                key_id: 2,
                failure: None,
                policy: HealthPolicy::default(),
                floor_percent: 10,
            })
            .await
            .unwrap();
        assert!(applied.stored().await);
        assert_eq!(*repo.writes.lock(), vec![(2, KeyStatus::Active, 0)]);
        assert_eq!(lease(&addr, vec![1]).await, Some(2));
    }

    #[actix_rt::test]
    async fn failed_probes_respect_the_floor() {
        let (addr, _) = pool_with(vec![key(1, KeyStatus::Active), key(2, KeyStatus::Active)]).await;
        let policy = HealthPolicy {
            blacklist_threshold: 1,
            ..Default::default()
        };
        for id in [1, 2] {
            let applied = addr
                .send(ApplyProbe {
                    group_id: 1,
                    key_id: id,
                    failure: Some(FailureClass::KeyDead),
                    policy,
                    floor_percent: 10,
                })
                .await
                .unwrap();
            assert!(applied.stored().await, "the failure is counted either way");
        }
        let counts = addr.send(CountKeys { group_id: 1 }).await.unwrap();
        assert_eq!((counts.active, counts.invalid), (1, 1), "one key stays");
    }

    #[actix_rt::test]
    async fn cooldowns_show_in_the_view_and_reset_on_demand() {
        let (addr, _) = pool_with(vec![key(1, KeyStatus::Active), key(2, KeyStatus::Active)]).await;
        report(
            &addr,
            1,
            FailureClass::RateLimited {
                retry_after: Some(Duration::from_secs(600)),
            },
            HealthPolicy::default(),
            0,
        );
        let views = addr
            .send(DescribeKeys {
                group_id: 1,
                key_ids: vec![1, 2, 99],
            })
            .await
            .unwrap();
        assert_eq!(views.len(), 2);
        let cooling = views[&1];
        assert_eq!(cooling.state, LiveState::CoolingDown);
        let left = cooling.cooldown_until.unwrap() - Utc::now();
        assert!(left > chrono::Duration::seconds(590) && left <= chrono::Duration::seconds(600));
        assert_eq!(
            cooling.last_failure.map(FailureClass::as_str),
            Some("rate_limited")
        );
        assert_eq!(views[&2].state, LiveState::Active);
        let counts = addr.send(CountKeys { group_id: 1 }).await.unwrap();
        assert_eq!((counts.active, counts.cooling), (2, 1));
        assert_eq!(lease(&addr, vec![2]).await, None);

        let reset = addr
            .send(ResetCooldown {
                group_id: 1,
                key_id: 1,
            })
            .await
            .unwrap();
        assert_eq!(reset, Some(true));
        assert_eq!(lease(&addr, vec![2]).await, Some(1));
        let views = addr
            .send(DescribeKeys {
                group_id: 1,
                key_ids: vec![1],
            })
            .await
            .unwrap();
        assert_eq!(views[&1].state, LiveState::Active);
        assert_eq!(views[&1].cooldown_until, None);
        let missing = addr
            .send(ResetCooldown {
                group_id: 1,
                key_id: 99,
            })
            .await
            .unwrap();
        assert_eq!(missing, None);
    }

    /// A cluster whose other nodes already counted `others` failures of every key.
    struct FakeBus {
        others: i64,
        counts: Mutex<HashMap<KeyId, i64>>,
        announced: Mutex<Vec<(KeyId, HealthChange)>>,
    }

    #[async_trait]
    impl HealthBus for FakeBus {
        async fn count_failure(&self, key_id: KeyId) -> Result<i64, PortError> {
            let mut counts = self.counts.lock();
            let n = counts.entry(key_id).or_insert(self.others);
            *n += 1;
            Ok(*n)
        }
        fn announce(&self, _group_id: GroupId, key_id: KeyId, change: HealthChange) {
            self.announced.lock().push((key_id, change));
        }
    }

    #[actix_rt::test]
    async fn failures_count_across_the_cluster_and_blacklisting_is_announced() {
        let repo = Arc::new(MemRepo::default());
        *repo.keys.lock() = vec![key(1, KeyStatus::Active), key(2, KeyStatus::Active)];
        let bus = Arc::new(FakeBus {
            others: 2,
            counts: Mutex::default(),
            announced: Mutex::default(),
        });
        let addr = KeyPoolActor::new(repo.clone())
            .with_health_bus(bus.clone())
            .start();
        addr.send(LoadKeys { group_id: None })
            .await
            .unwrap()
            .unwrap();
        // One failure here, two elsewhere: the threshold of 3 is reached cluster-wide.
        addr.send(ReportOutcome {
            group_id: 1,
            key_id: 1,
            failure: Some(FailureClass::KeyDead),
            policy: HealthPolicy {
                blacklist_threshold: 3,
                ..Default::default()
            },
            floor_percent: 0,
        })
        .await
        .unwrap();
        for _ in 0..100 {
            if !bus.announced.lock().is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            *bus.announced.lock(),
            vec![(1, HealthChange::Blacklisted { failure_count: 3 })]
        );
        for _ in 0..3 {
            assert_eq!(lease(&addr, vec![]).await, Some(2));
        }
    }

    #[actix_rt::test]
    async fn changes_from_other_nodes_take_keys_out_of_rotation() {
        let (addr, repo) = pool_with(vec![
            key(1, KeyStatus::Active),
            key(2, KeyStatus::Active),
            key(3, KeyStatus::Active),
        ])
        .await;
        addr.send(ApplyRemoteHealth {
            group_id: 1,
            key_id: 1,
            change: HealthChange::Blacklisted { failure_count: 3 },
        })
        .await
        .unwrap();
        addr.send(ApplyRemoteHealth {
            group_id: 1,
            key_id: 2,
            change: HealthChange::CoolingDown { for_ms: 60_000 },
        })
        .await
        .unwrap();
        for _ in 0..4 {
            assert_eq!(lease(&addr, vec![]).await, Some(3));
        }
        assert_eq!(
            addr.send(CountKeys { group_id: 1 }).await.unwrap(),
            PoolCounts {
                active: 2,
                cooling: 1,
                invalid: 1,
                disabled: 0,
            }
        );
        assert!(
            repo.writes.lock().is_empty(),
            "the node that made the change persists it, not this one"
        );
    }

    #[actix_rt::test]
    async fn a_key_restored_on_another_node_rejoins_the_rotation_here() {
        let (addr, repo) =
            pool_with(vec![key(1, KeyStatus::Active), key(2, KeyStatus::Active)]).await;
        addr.send(ApplyRemoteHealth {
            group_id: 1,
            key_id: 1,
            change: HealthChange::Blacklisted { failure_count: 3 },
        })
        .await
        .unwrap();
        for _ in 0..3 {
            assert_eq!(lease(&addr, vec![]).await, Some(2));
        }
        addr.send(ApplyRemoteHealth {
            group_id: 1,
            key_id: 1,
            change: HealthChange::Restored,
        })
        .await
        .unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4 {
            seen.insert(lease(&addr, vec![]).await);
        }
        assert!(
            seen.contains(&Some(1)) && seen.contains(&Some(2)),
            "{seen:?}"
        );
        assert!(repo.writes.lock().is_empty());
    }
}
