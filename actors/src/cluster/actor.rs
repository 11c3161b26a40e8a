//! ClusterActor: competes for the leader lock, keeps it while it can, and gives it up (publishing
//! the change to [`Leadership`], which starts and stops the singleton jobs) *before* the lock
//! could expire under it.
//!
//! Timing, with TTL `t` (3 s by default): every node acts every `t/6` — a candidate tries
//! `SET NX PX t`, the leader renews — with one store call in flight at a time, given up after
//! `t/3`. Every confirmed renewal (or the winning acquisition) moves the step-down deadline to
//! `sent + t - t/6`, measured from when the command was *sent*, so the node always stops acting as
//! leader before Redis can hand the lock to someone else, however late the answer came; a leader
//! thus rides out about `t/2` of failed or slow renewals (any single round trip up to `t/3`). A
//! renewal the store denies steps down at once.
//!
//! Failover bounds: a leader that dies without a word holds the lock at most `t` after its last
//! renewal, and a candidate tries every `t/6`, so another node leads within `t + t/6` (3.5 s by
//! default) plus one round trip; a leader that stops gracefully deletes the lock, so the next one
//! leads within `t/6` (0.5 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::coordinator::{Coordinator, LeadAttempt};
use super::leadership::{Leadership, Role};

/// How a node takes part in the election.
#[derive(Clone, Debug)]
pub struct ElectionConfig {
    /// This process's id (unique per start).
    pub node: Arc<str>,
    /// Lock lifetime.
    pub ttl: Duration,
    /// `false` for followers (`IS_SLAVE=true`): they never compete.
    pub candidate: bool,
}

impl ElectionConfig {
    /// How often a candidate tries for the lock and the leader renews it.
    fn tick_every(&self) -> Duration {
        self.ttl / 6
    }

    /// How long one store call may take before it counts as failed.
    fn call_limit(&self) -> Duration {
        self.ttl / 3
    }

    /// How long after a confirmed renewal this node stops acting as leader.
    fn hold_for(&self) -> Duration {
        self.ttl.saturating_sub(self.ttl / 6)
    }
}

struct Term {
    epoch: u64,
    step_down: Option<SpawnHandle>,
}

/// The election actor of one node.
pub struct ClusterActor {
    store: Arc<dyn Coordinator>,
    leadership: Leadership,
    config: ElectionConfig,
    term: Option<Term>,
    /// One store call at a time: a slow answer never piles up requests.
    in_flight: bool,
    /// The highest epoch this node has seen, so epochs never go back.
    max_epoch: u64,
    resigned: bool,
}

impl ClusterActor {
    pub fn new(
        store: Arc<dyn Coordinator>,
        leadership: Leadership,
        config: ElectionConfig,
    ) -> Self {
        Self {
            store,
            leadership,
            config,
            term: None,
            in_flight: false,
            max_epoch: 0,
            resigned: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight || self.resigned {
            return;
        }
        self.in_flight = true;
        let store = Arc::clone(&self.store);
        let node = Arc::clone(&self.config.node);
        let ttl = self.config.ttl;
        // A call that cannot answer in time is treated as failed; the next tick tries again.
        let limit = self.config.call_limit();
        let sent = Instant::now();
        match self.term.as_ref().map(|t| t.epoch) {
            Some(epoch) => {
                let call = async move {
                    tokio::time::timeout(limit, store.renew(&node, epoch, ttl)).await
                };
                ctx.spawn(call.into_actor(self).map(move |answer, act, ctx| {
                    act.in_flight = false;
                    if act.term.as_ref().map(|t| t.epoch) != Some(epoch) {
                        return;
                    }
                    match answer {
                        Ok(Ok(true)) => act.confirmed(sent, ctx),
                        Ok(Ok(false)) => act.step_down("the leader lock was taken or expired", ctx),
                        Ok(Err(err)) => {
                            tracing::warn!(epoch, error = %err, "Could not renew the leader lock; retrying.")
                        }
                        Err(_) => tracing::warn!(epoch, "Renewing the leader lock timed out; retrying."),
                    }
                }));
            }
            None => {
                let min_epoch = self.max_epoch;
                let call = async move {
                    tokio::time::timeout(limit, store.try_lead(&node, ttl, min_epoch)).await
                };
                ctx.spawn(call.into_actor(self).map(move |answer, act, ctx| {
                    act.in_flight = false;
                    match answer {
                        Ok(Ok(LeadAttempt::Won { epoch })) => {
                            if act.resigned {
                                return act.release(epoch, ctx);
                            }
                            act.max_epoch = act.max_epoch.max(epoch);
                            act.term = Some(Term {
                                epoch,
                                step_down: None,
                            });
                            act.confirmed(sent, ctx);
                            tracing::info!(epoch, node = %act.config.node, "Became the cluster leader.");
                            act.leadership.set(Role::Leader { epoch });
                        }
                        Ok(Ok(LeadAttempt::Held { epoch })) => {
                            act.max_epoch = act.max_epoch.max(epoch.unwrap_or(0));
                        }
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "Could not try for the leader lock.")
                        }
                        Err(_) => tracing::warn!("Trying for the leader lock timed out."),
                    }
                }));
            }
        }
    }

    /// The lock is ours until at least `sent + ttl`: stop acting as leader a margin before.
    fn confirmed(&mut self, sent: Instant, ctx: &mut Context<Self>) {
        let Some(term) = self.term.as_mut() else {
            return;
        };
        if let Some(old) = term.step_down.take() {
            ctx.cancel_future(old);
        }
        let wait = (sent + self.config.hold_for()).saturating_duration_since(Instant::now());
        let epoch = term.epoch;
        term.step_down = Some(ctx.run_later(wait, move |act, ctx| {
            if act.term.as_ref().map(|t| t.epoch) == Some(epoch) {
                act.step_down(
                    "the leader lock could not be renewed before it would expire",
                    ctx,
                );
            }
        }));
    }

    fn step_down(&mut self, why: &str, ctx: &mut Context<Self>) {
        let Some(term) = self.term.take() else {
            return;
        };
        if let Some(handle) = term.step_down {
            ctx.cancel_future(handle);
        }
        tracing::warn!(
            epoch = term.epoch,
            reason = why,
            "Stepped down as cluster leader."
        );
        self.leadership.set(Role::Candidate);
        // If the store still holds the lock for us (a late renewal), free it for the others.
        self.release(term.epoch, ctx);
    }

    fn release(&mut self, epoch: u64, ctx: &mut Context<Self>) {
        let store = Arc::clone(&self.store);
        let node = Arc::clone(&self.config.node);
        let limit = self.config.call_limit();
        ctx.spawn(
            async move {
                let _ = tokio::time::timeout(limit, store.resign(&node, epoch)).await;
            }
            .into_actor(self),
        );
    }
}

impl Actor for ClusterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !self.config.candidate {
            self.leadership.set(Role::Follower);
            return;
        }
        self.leadership.set(Role::Candidate);
        self.tick(ctx);
        ctx.run_interval(self.config.tick_every(), Self::tick);
    }
}

/// Stops competing and releases the lock if held (compare-and-delete), so another node can
/// lead at once instead of after the TTL. Answers once the release was tried.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resign;

impl Handler<Resign> for ClusterActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Resign, ctx: &mut Self::Context) -> Self::Result {
        self.resigned = true;
        let term = self.term.take();
        if let Some(handle) = term.as_ref().and_then(|t| t.step_down) {
            ctx.cancel_future(handle);
        }
        if self.config.candidate {
            self.leadership.set(Role::Candidate);
        }
        let store = Arc::clone(&self.store);
        let node = Arc::clone(&self.config.node);
        let limit = self.config.call_limit();
        Box::pin(
            async move {
                if let Some(term) = term {
                    match tokio::time::timeout(limit, store.resign(&node, term.epoch)).await {
                        Ok(Ok(true)) => {
                            tracing::info!(epoch = term.epoch, "Released the leader lock.")
                        }
                        Ok(Ok(false)) => {}
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "Could not release the leader lock; it expires by itself.")
                        }
                        Err(_) => tracing::warn!(
                            "Releasing the leader lock timed out; it expires by itself."
                        ),
                    }
                }
            }
            .into_actor(self),
        )
    }
}
