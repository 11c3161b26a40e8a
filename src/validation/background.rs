//! The background validation round's adapters and driver: [`StoredKeys`] gives the
//! [`ValidatorActor`] the stored invalid keys and the shared [`Prober`], and [`spawn`] starts the
//! actor and drives it only while this node leads — a round at once, then one every
//! `check_every`; losing leadership stops the running round.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use async_trait::async_trait;
use chrono::NaiveDateTime;
use gpt_load_actors::domain::{GroupId, KeyStatus, PoolKey};
use gpt_load_actors::ports::{KeyProber, PortError, ValidationPort};
use gpt_load_actors::validator::{RunRound, StopRounds, ValidatorActor};

use super::prober::Prober;
use crate::db::repo::Repo;
use gpt_load_actors::cluster::Leadership;
use gpt_load_actors::group_registry::SharedSnapshot;
use gpt_load_actors::key_pool::KeyPool;

/// The validator's view of the database and the upstreams.
pub struct StoredKeys {
    repo: Repo,
}

#[async_trait]
impl ValidationPort for StoredKeys {
    async fn invalid_keys(&self, group_id: GroupId) -> Result<Vec<PoolKey>, PortError> {
        let rows = self
            .repo
            .group_keys(group_id, Some(KeyStatus::Invalid))
            .await
            .map_err(PortError::from)?;
        Ok(self.repo.pool_keys(&rows))
    }

    async fn mark_validated(&self, group_id: GroupId, at: NaiveDateTime) -> Result<(), PortError> {
        self.repo
            .mark_group_validated(group_id, at)
            .await
            .map_err(PortError::from)
    }

    fn prober(&self, timeout: Duration) -> Box<dyn KeyProber> {
        Box::new(Prober::new(timeout))
    }
}

/// Sends [`StopRounds`] when the leader-only job is dropped (leadership lost).
struct StopOnDrop(Addr<ValidatorActor>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.do_send(StopRounds);
    }
}

/// The running validator; [`Validator::shutdown`] stops its thread.
pub struct Validator {
    pub addr: Addr<ValidatorActor>,
    arbiter: actix_rt::ArbiterHandle,
}

impl Validator {
    /// Stops the validator's thread (a running round is dropped).
    pub fn shutdown(&self) {
        self.arbiter.stop();
    }
}

/// Starts the validator on its own arbiter (probing never shares a thread with the key pool) and
/// the leader-only job that drives it. `minute` is the unit of `key_validation_interval_minutes`.
pub fn spawn(
    repo: Repo,
    pool: KeyPool,
    snapshot: SharedSnapshot,
    leadership: &Leadership,
    check_every: Duration,
    minute: Duration,
) -> Validator {
    let port = Arc::new(StoredKeys { repo });
    let arbiter = actix_rt::Arbiter::new().handle();
    let validator = ValidatorActor::start_in_arbiter(&arbiter, move |_| {
        ValidatorActor::new(port, pool, snapshot, minute)
    });
    let driver = validator.clone();
    leadership.spawn_while_leader("key-validation", move |epoch| {
            let validator = driver.clone();
            async move {
                let _stop = StopOnDrop(validator.clone());
                let mut ticker = tokio::time::interval(check_every);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    match validator.send(RunRound).await {
                        Ok(Some(report)) if report.checked > 0 => tracing::info!(
                            epoch,
                            groups = report.groups,
                            checked = report.checked,
                            restored = report.restored,
                            "Background validation round finished."
                        ),
                        Ok(_) => {}
                        Err(err) => {
                            tracing::error!(error = %err, "The validator is gone; background validation stops.");
                            return;
                        }
                    }
                }
            }
        });
    Validator {
        addr: validator,
        arbiter,
    }
}
