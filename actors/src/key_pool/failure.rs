//! Failure policy: what a failed attempt or a validation probe does to a key. Rate limits rest
//! the key for the request's model (or the whole key, per the group's `rate_limit_scope`);
//! upstream trouble rests the whole key; key-dead failures count toward the blacklist and demote
//! the key to the end of the leasing order for the longest rate-limit rest (`rate_limit_max`). The
//! floor stops blacklisting only.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{lease, KeyPoolActor};
use crate::domain::{GroupId, HealthChange, KeyId};
use crate::key_state::{FailureClass, HealthPolicy, State, Transition};

/// A failed attempt with a leased key.
#[derive(Clone, Debug)]
pub struct FailureReport {
    pub group_id: GroupId,
    pub key_id: KeyId,
    pub class: FailureClass,
    /// The model as sent upstream (after redirects), when the request named one.
    pub model: Option<Arc<str>>,
    pub policy: HealthPolicy,
    pub floor_percent: i64,
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

const UNCHANGED: Recorded = Recorded {
    changed: false,
    counted: false,
    blacklisted: false,
};

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ReportFailure(pub FailureReport);

impl Handler<ReportFailure> for KeyPoolActor {
    type Result = ();

    fn handle(&mut self, ReportFailure(report): ReportFailure, ctx: &mut Self::Context) {
        let Some(recorded) = self.record_failure(&report, None) else {
            return;
        };
        if let (true, false, Some(bus)) = (recorded.counted, recorded.blacklisted, self.bus.clone())
        {
            // Failures only: a successful request never waits on (or even reaches) the store.
            let key_id = report.key_id;
            ctx.spawn(
                async move { bus.count_failure(key_id).await }
                    .into_actor(self)
                    .map(move |counted, act, _ctx| match counted {
                        Ok(n) => act.merge_cluster_count(&report, n),
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

/// A success with a key that was leased resting or demoted: its rest for the model (and a
/// whole-key rest) ends and the demotion is lifted. Ready leases never send this.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Settle {
    pub group_id: GroupId,
    pub key_id: KeyId,
    pub model: Option<Arc<str>>,
}

impl Handler<Settle> for KeyPoolActor {
    type Result = ();

    fn handle(&mut self, msg: Settle, _ctx: &mut Self::Context) {
        let Some(entry) = self
            .groups
            .get_mut(&msg.group_id)
            .and_then(|g| g.keys.get_mut(&msg.key_id))
        else {
            return;
        };
        entry.health.on_success();
        self.table.wake(
            msg.group_id,
            msg.key_id,
            Some(msg.model.as_deref().unwrap_or("")),
        );
        self.table.demote(msg.group_id, msg.key_id, None);
    }
}

impl KeyPoolActor {
    /// Applies one failure under the report's policy, keeping at least `floor_percent` % of the
    /// group's keys (and at least one) in rotation. Says what changed (a write queued when
    /// `changed`, acknowledged on `ack`), or `None` for a key the pool does not hold.
    fn record_failure(
        &mut self,
        r: &FailureReport,
        ack: Option<oneshot::Sender<()>>,
    ) -> Option<Recorded> {
        let now = Instant::now();
        let (group_id, key_id) = (r.group_id, r.key_id);
        let group = self.groups.get_mut(&group_id)?;
        let floor = lease::floor(group.enabled(), r.floor_percent);
        let in_rotation = group.ring.len();
        let entry = group.keys.get_mut(&key_id)?;
        entry.health.decay(&r.policy, now);
        let (state_before, count_before) = (entry.health.state, entry.health.failure_count);
        let transition = entry.health.plan(r.class, &r.policy, r.model.as_ref(), now);
        let allow = state_before != State::Active || in_rotation > floor;
        entry.health.apply(r.class, &transition, allow, now);
        let health = entry.health.clone();
        let blacklisted = health.state == State::Invalid && state_before != State::Invalid;
        if blacklisted {
            group.remove_from_ring(key_id);
        }
        if transition == Transition::Blacklist && !allow {
            self.floor_hits.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                group_id,
                key_id,
                in_rotation,
                floor,
                "Kept a failing key in rotation (demoted): the group is at its key floor."
            );
        }
        if let Transition::Rest { until, model, .. } = &transition {
            if !self.table.rest(group_id, key_id, model.as_ref(), *until) {
                let for_ms = until.saturating_duration_since(now).as_millis() as u64;
                let model = model.as_deref().map(str::to_string);
                self.announce(
                    group_id,
                    key_id,
                    HealthChange::CoolingDown { for_ms, model },
                );
            }
        }
        if r.class == FailureClass::KeyDead && health.state == State::Active {
            let until = now + r.policy.rate_limit_max;
            self.table.demote(group_id, key_id, Some(until));
        }
        if blacklisted {
            self.publish(group_id);
            tracing::warn!(
                group_id,
                key_id,
                failures = health.failure_count,
                "Blacklisted a key that reached the failure threshold."
            );
        }
        let changed = health.failure_count != count_before || blacklisted;
        if changed {
            self.persist(key_id, &health, ack);
        }
        if blacklisted {
            let failure_count = health.failure_count;
            self.announce(
                group_id,
                key_id,
                HealthChange::Blacklisted { failure_count },
            );
        }
        Some(Recorded {
            changed,
            counted: health.failure_count > count_before,
            blacklisted,
        })
    }

    /// Merges the cluster-wide failure count of a key into this node's view: at the threshold
    /// the key is blacklisted here too (within the floor), even if this node saw fewer failures.
    fn merge_cluster_count(&mut self, r: &FailureReport, cluster_count: i64) {
        let Some(group) = self.groups.get_mut(&r.group_id) else {
            return;
        };
        let floor = lease::floor(group.enabled(), r.floor_percent);
        let in_rotation = group.ring.len();
        let Some(entry) = group.keys.get_mut(&r.key_id) else {
            return;
        };
        if entry.health.state != State::Active {
            return;
        }
        entry.health.failure_count = entry.health.failure_count.max(cluster_count);
        let threshold = r.policy.blacklist_threshold;
        if threshold <= 0 || cluster_count < threshold {
            return;
        }
        if in_rotation <= floor {
            self.floor_hits.fetch_add(1, Ordering::Relaxed);
            return;
        }
        entry.health.state = State::Invalid;
        let health = entry.health.clone();
        group.remove_from_ring(r.key_id);
        self.publish(r.group_id);
        tracing::warn!(
            group_id = r.group_id,
            key_id = r.key_id,
            failures = cluster_count,
            "Blacklisted a key that reached the failure threshold across the cluster."
        );
        self.persist(r.key_id, &health, None);
        let failure_count = health.failure_count;
        self.announce(
            r.group_id,
            r.key_id,
            HealthChange::Blacklisted { failure_count },
        );
    }

    /// A passed validation: the key is active again with a zero failure count and no rest.
    /// Disabled keys stay disabled. Same return as [`Self::record_failure`].
    fn record_pass(
        &mut self,
        group_id: GroupId,
        key_id: KeyId,
        ack: Option<oneshot::Sender<()>>,
    ) -> Option<Recorded> {
        let entry = self.groups.get(&group_id)?.keys.get(&key_id)?;
        let (state, failure_count) = (entry.health.state, entry.health.failure_count);
        if state == State::Disabled {
            return Some(UNCHANGED);
        }
        let rested = self.restore_here(group_id, key_id);
        if state == State::Invalid {
            tracing::info!(group_id, key_id, "Restored a key that passed validation.");
        }
        let changed = state == State::Invalid || failure_count != 0;
        if changed {
            let health = self
                .groups
                .get(&group_id)?
                .keys
                .get(&key_id)?
                .health
                .clone();
            self.persist(key_id, &health, ack);
        }
        if changed || rested {
            self.announce(group_id, key_id, HealthChange::Restored);
        }
        Some(Recorded {
            changed,
            ..UNCHANGED
        })
    }
}

/// Applies a validation probe's result to a key, as a proxied failure would (same classes, same
/// floor, whole-key rests) or, for a pass, by restoring it.
#[derive(Message)]
#[rtype(result = "ProbeApplied")]
pub(crate) struct ApplyProbe {
    pub group_id: GroupId,
    pub key_id: KeyId,
    /// `None`: the probe passed.
    pub failure: Option<FailureClass>,
    pub policy: HealthPolicy,
    pub floor_percent: i64,
}

/// What a probe did to a key.
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
                &FailureReport {
                    group_id: msg.group_id,
                    key_id: msg.key_id,
                    class,
                    model: None,
                    policy: msg.policy,
                    floor_percent: msg.floor_percent,
                },
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
