//! ValidatorActor: the background validation round (reference §7.1). A round probes the
//! blacklisted keys of every standard group whose `key_validation_interval_minutes` has passed
//! since it was last validated (0 turns it off for the group), with the group's concurrency and
//! timeout, and hands every pass to the key pool, which restores the key and persists it. Active,
//! cooling and disabled keys are never probed in the background.
//!
//! The actor decides nothing about leadership: whoever drives it sends [`RunRound`] while this
//! node leads and [`StopRounds`] the moment it stops leading.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{NaiveDateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::oneshot;

use crate::domain::GroupId;
use crate::group_registry::{GroupView, SharedSnapshot};
use crate::key_pool::KeyPool;
use crate::ports::ValidationPort;

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Groups that were due and validated.
    pub groups: usize,
    /// Invalid keys probed.
    pub checked: usize,
    /// Keys that passed and are back in service.
    pub restored: usize,
}

/// The validator actor.
pub struct ValidatorActor {
    port: Arc<dyn ValidationPort>,
    pool: KeyPool,
    snapshot: SharedSnapshot,
    /// The length of one "minute" of `key_validation_interval_minutes`: 60 s, except in tests.
    minute: Duration,
    /// When each group was last validated by this actor (newer than the snapshot's copy).
    validated: HashMap<GroupId, NaiveDateTime>,
    round: Option<SpawnHandle>,
}

impl ValidatorActor {
    /// A validator reading groups from `snapshot` and restoring keys through `pool`.
    pub fn new(
        port: Arc<dyn ValidationPort>,
        pool: KeyPool,
        snapshot: SharedSnapshot,
        minute: Duration,
    ) -> Self {
        Self {
            port,
            pool,
            snapshot,
            minute,
            validated: HashMap::new(),
            round: None,
        }
    }

    fn due(&self, group: &GroupView, now: NaiveDateTime) -> bool {
        let minutes = group.config.key_validation_interval_minutes;
        if group.record.is_aggregate() || minutes <= 0 {
            return false;
        }
        let last = self
            .validated
            .get(&group.record.id)
            .copied()
            .max(group.record.last_validated_at);
        let Some(last) = last else {
            return true;
        };
        let interval = self
            .minute
            .saturating_mul(u32::try_from(minutes).unwrap_or(u32::MAX));
        // A timestamp ahead of this clock (another node's) is simply not due yet.
        (now - last)
            .to_std()
            .is_ok_and(|elapsed| elapsed >= interval)
    }
}

impl Actor for ValidatorActor {
    type Context = Context<Self>;
}

/// Runs a round now over the groups that are due. Answers `None` when a round is already running
/// or the round was stopped before it finished.
#[derive(Message)]
#[rtype(result = "Option<RoundReport>")]
pub struct RunRound;

impl Handler<RunRound> for ValidatorActor {
    type Result = ResponseFuture<Option<RoundReport>>;

    fn handle(&mut self, _msg: RunRound, ctx: &mut Self::Context) -> Self::Result {
        if self.round.is_some() {
            return Box::pin(async { None });
        }
        let now = Utc::now().naive_utc();
        let snapshot = self.snapshot.load();
        let mut due: Vec<Arc<GroupView>> = snapshot
            .by_id
            .values()
            .filter(|g| self.due(g, now))
            .cloned()
            .collect();
        due.sort_by_key(|g| g.record.id);
        let (tx, rx) = oneshot::channel();
        let port = Arc::clone(&self.port);
        let pool = self.pool.clone();
        let work = async move {
            let runs = due.into_iter().map(|group| {
                let port = Arc::clone(&port);
                let pool = pool.clone();
                async move {
                    let result = validate_group(port.as_ref(), &pool, &group, now).await;
                    (group.record.id, result)
                }
            });
            futures_util::future::join_all(runs).await
        };
        let handle = ctx.spawn(work.into_actor(self).map(move |results, act, _ctx| {
            act.round = None;
            let mut report = RoundReport::default();
            for (group_id, result) in results {
                if let Some((checked, restored)) = result {
                    act.validated.insert(group_id, now);
                    report.groups += 1;
                    report.checked += checked;
                    report.restored += restored;
                }
            }
            let _ = tx.send(report);
        }));
        self.round = Some(handle);
        Box::pin(async move { rx.await.ok() })
    }
}

/// Stops the running round, if any (this node stopped leading). Probes in flight are dropped;
/// restores already applied stay.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopRounds;

impl Handler<StopRounds> for ValidatorActor {
    type Result = ();

    fn handle(&mut self, _msg: StopRounds, ctx: &mut Self::Context) {
        if let Some(handle) = self.round.take() {
            ctx.cancel_future(handle);
            tracing::info!("Stopped a background validation round.");
        }
    }
}

/// Probes the group's invalid keys; `(checked, restored)`, or `None` when its keys could not be
/// read (the group then stays due).
async fn validate_group(
    port: &dyn ValidationPort,
    pool: &KeyPool,
    group: &GroupView,
    now: NaiveDateTime,
) -> Option<(usize, usize)> {
    let group_id = group.record.id;
    let keys = match port.invalid_keys(group_id).await {
        Ok(keys) => keys,
        Err(err) => {
            tracing::warn!(group = %group.record.name, error = %err, "Could not read invalid keys for validation.");
            return None;
        }
    };
    let config = &group.config;
    let timeout = Duration::from_secs(config.key_validation_timeout_secs.max(1) as u64);
    let concurrency = config.key_validation_concurrency.max(1) as usize;
    let prober = port.prober(timeout);
    let checked = keys.len();
    let restored = futures_util::stream::iter(keys)
        .map(|key| {
            let prober = &prober;
            async move {
                match prober.probe(group, &key.secret).await {
                    Ok(()) => {
                        let applied = pool
                            .apply_probe(
                                group_id,
                                key.id,
                                None,
                                config.health,
                                config.min_usable_keys_percent,
                            )
                            .await;
                        match applied {
                            Ok(applied) => applied.stored().await,
                            Err(err) => {
                                tracing::warn!(error = %err, "The key pool is gone; a passed key stays invalid.");
                                false
                            }
                        }
                    }
                    Err(failure) => {
                        tracing::debug!(group = %group.record.name, key_id = key.id, class = failure.class.as_str(), reason = %failure.message, "An invalid key failed validation again.");
                        false
                    }
                }
            }
        })
        .buffer_unordered(concurrency)
        .filter(|restored| std::future::ready(*restored))
        .count()
        .await;
    if let Err(err) = port.mark_validated(group_id, now).await {
        tracing::warn!(group = %group.record.name, error = %err, "Could not store the group's validation time.");
    }
    if checked > 0 {
        tracing::info!(group = %group.record.name, checked, restored, "Background validation finished.");
    }
    Some((checked, restored))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use arc_swap::ArcSwap;
    use async_trait::async_trait;
    use parking_lot::Mutex;

    use super::*;
    use crate::domain::{GroupRecord, KeyId, KeySecret, KeyStatus, PoolKey};
    use crate::group_registry::Snapshot;
    use crate::key_pool::{KeyPool, KeyPoolActor};
    use crate::key_state::FailureClass;
    use crate::ports::{KeyProber, KeyRepo, PortError, ProbeFailure};

    /// Keys in memory; the ones in `alive` pass their probe.
    #[derive(Default)]
    struct World {
        keys: Mutex<Vec<PoolKey>>,
        alive: Mutex<HashSet<String>>,
        probes: Mutex<usize>,
        /// Probes never answer (an upstream that hangs).
        hang: Mutex<bool>,
        marked: Mutex<Vec<GroupId>>,
    }

    struct Port(Arc<World>);
    struct Probe(Arc<World>);

    #[async_trait]
    impl KeyRepo for Port {
        async fn load_keys(&self, _group: Option<GroupId>) -> Result<Vec<PoolKey>, PortError> {
            Ok(self.0.keys.lock().clone())
        }
        async fn save_key_health(
            &self,
            key_id: KeyId,
            status: KeyStatus,
            failure_count: i64,
        ) -> Result<(), PortError> {
            for key in self.0.keys.lock().iter_mut().filter(|k| k.id == key_id) {
                key.status = status;
                key.failure_count = failure_count;
            }
            Ok(())
        }
        async fn apply_key_write(
            &self,
            _write: &crate::ports::KeyWrite,
        ) -> Result<Vec<KeyId>, PortError> {
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl ValidationPort for Port {
        async fn invalid_keys(&self, group_id: GroupId) -> Result<Vec<PoolKey>, PortError> {
            Ok(self
                .0
                .keys
                .lock()
                .iter()
                .filter(|k| k.group_id == group_id && k.status == KeyStatus::Invalid)
                .cloned()
                .collect())
        }
        async fn mark_validated(
            &self,
            group_id: GroupId,
            _at: NaiveDateTime,
        ) -> Result<(), PortError> {
            self.0.marked.lock().push(group_id);
            Ok(())
        }
        fn prober(&self, _timeout: Duration) -> Box<dyn KeyProber> {
            Box::new(Probe(Arc::clone(&self.0)))
        }
    }

    #[async_trait(?Send)]
    impl KeyProber for Probe {
        async fn probe(&self, _group: &GroupView, key: &KeySecret) -> Result<(), ProbeFailure> {
            *self.0.probes.lock() += 1;
            if *self.0.hang.lock() {
                std::future::pending::<()>().await;
            }
            if self.0.alive.lock().contains(key.expose()) {
                Ok(())
            } else {
                Err(ProbeFailure {
                    class: FailureClass::KeyDead,
                    message: "[status 401] revoked".into(),
                })
            }
        }
    }

    fn group(id: GroupId, interval_minutes: i64) -> GroupRecord {
        let mut config = serde_json::Map::new();
        config.insert(
            "key_validation_interval_minutes".into(),
            interval_minutes.into(),
        );
        let stamp = Utc::now().naive_utc();
        GroupRecord {
            id,
            name: format!("g{id}"),
            display_name: String::new(),
            description: String::new(),
            group_type: "standard".into(),
            upstreams: serde_json::json!([{"url": "http://127.0.0.1:9", "weight": 1}]),
            channel_type: "openai".into(),
            sort: 0,
            test_model: "m".into(),
            validation_endpoint: String::new(),
            param_overrides: serde_json::json!({}),
            config,
            header_rules: Vec::new(),
            model_redirect_rules: serde_json::Map::new(),
            model_redirect_strict: false,
            proxy_keys: String::new(),
            last_validated_at: None,
            created_at: stamp,
            updated_at: stamp,
        }
    }

    fn key(id: KeyId, group_id: GroupId, status: KeyStatus) -> PoolKey {
        PoolKey {
            id,
            group_id,
            secret: KeySecret::new(format!("sk-validator-{id}")),
            status,
            failure_count: 3,
        }
    }

    async fn setup(world: &Arc<World>) -> (Addr<ValidatorActor>, KeyPool) {
        let port = Arc::new(Port(Arc::clone(world)));
        let pool = KeyPoolActor::start(port.clone(), None);
        pool.load(None).await.unwrap();
        let snapshot = Snapshot::build(vec![group(1, 5), group(2, 0)], &[], &HashMap::new());
        let shared: SharedSnapshot = Arc::new(ArcSwap::from_pointee(snapshot));
        let validator =
            ValidatorActor::new(port, pool.clone(), shared, Duration::from_millis(50)).start();
        (validator, pool)
    }

    #[actix_rt::test]
    async fn rounds_restore_revived_keys_of_due_groups_only() {
        let world = Arc::new(World::default());
        *world.keys.lock() = vec![
            key(1, 1, KeyStatus::Invalid),
            key(2, 1, KeyStatus::Invalid),
            key(3, 1, KeyStatus::Disabled),
            key(4, 2, KeyStatus::Invalid),
        ];
        world
            .alive
            .lock()
            .extend(["sk-validator-1", "sk-validator-3", "sk-validator-4"].map(String::from));
        let (validator, pool) = setup(&world).await;

        let report = validator.send(RunRound).await.unwrap().unwrap();
        assert_eq!(
            report,
            RoundReport {
                groups: 1,
                checked: 2,
                restored: 1
            },
            "group 2 has background validation off; disabled keys are never probed"
        );
        let counts = pool.count(1).await.unwrap();
        assert_eq!((counts.active, counts.invalid, counts.disabled), (1, 1, 1));
        assert_eq!(world.keys.lock()[0].status, KeyStatus::Active, "persisted");
        assert_eq!(world.keys.lock()[0].failure_count, 0);
        assert_eq!(*world.marked.lock(), vec![1]);

        // Not due again until its interval (5 × 50 ms here) has passed.
        let report = validator.send(RunRound).await.unwrap().unwrap();
        assert_eq!(report, RoundReport::default());
        assert_eq!(*world.probes.lock(), 2);
    }

    #[actix_rt::test]
    async fn a_stopped_round_answers_none_and_frees_the_slot() {
        let world = Arc::new(World::default());
        *world.keys.lock() = vec![key(1, 1, KeyStatus::Invalid)];
        *world.hang.lock() = true;
        let (validator, _pool) = setup(&world).await;
        let hanging = validator.send(RunRound);
        assert_eq!(
            validator.send(RunRound).await.unwrap(),
            None,
            "one round at a time"
        );
        validator.send(StopRounds).await.unwrap();
        assert_eq!(hanging.await.unwrap(), None);
        assert!(
            world.marked.lock().is_empty(),
            "a stopped round marks nothing"
        );

        *world.hang.lock() = false;
        world.alive.lock().insert("sk-validator-1".into());
        let report = validator.send(RunRound).await.unwrap().unwrap();
        assert_eq!(report.restored, 1, "the group stayed due");
    }
}
