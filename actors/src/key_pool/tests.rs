//! The pool through its handle, on paused tokio time: leasing order, floor, per-model rests and
//! their expiry, key-wide failures, operator commands racing failures, cluster events.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::*;
use crate::key_state::{FailureClass, HealthPolicy, RestScope};
use crate::ports::KeyWrite;

#[derive(Default)]
struct MemRepo {
    keys: Mutex<Vec<PoolKey>>,
    writes: Mutex<Vec<(KeyId, KeyStatus, i64)>>,
    operator: Mutex<Vec<KeyWrite>>,
    /// Every stored write in the order the writer applied it: the row's final status.
    rows: Mutex<HashMap<KeyId, KeyStatus>>,
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
        // A real database's writes take a while: let other tasks run in between.
        tokio::task::yield_now().await;
        self.writes.lock().push((key_id, status, failure_count));
        self.rows.lock().insert(key_id, status);
        Ok(())
    }
    async fn apply_key_write(&self, write: &KeyWrite) -> Result<Vec<KeyId>, PortError> {
        tokio::task::yield_now().await;
        self.operator.lock().push(write.clone());
        let ids = match write {
            KeyWrite::Status {
                key_ids, status, ..
            } => {
                for id in key_ids {
                    self.rows.lock().insert(*id, *status);
                }
                key_ids.clone()
            }
            KeyWrite::Delete { key_ids } => key_ids.clone(),
        };
        Ok(ids)
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

fn actives(n: KeyId) -> Vec<PoolKey> {
    (1..=n).map(|i| key(i, KeyStatus::Active)).collect()
}

/// A loaded pool on paused time.
async fn pool_with(keys: Vec<PoolKey>) -> (KeyPool, Arc<MemRepo>) {
    tokio::time::pause();
    pool_of(keys).await
}

/// A loaded pool (time already paused).
async fn pool_of(keys: Vec<PoolKey>) -> (KeyPool, Arc<MemRepo>) {
    let repo = Arc::new(MemRepo::default());
    *repo.keys.lock() = keys;
    let pool = KeyPoolActor::start(repo.clone(), None);
    pool.load(None).await.unwrap();
    (pool, repo)
}

fn lease(pool: &KeyPool, model: Option<&str>, exclude: &[KeyId]) -> Option<(KeyId, Standing)> {
    pool.lease(1, model, exclude)
        .map(|l| (l.key_id, l.standing))
}

fn id(pool: &KeyPool, model: Option<&str>, exclude: &[KeyId]) -> Option<KeyId> {
    lease(pool, model, exclude).map(|(id, _)| id)
}

async fn fail(
    pool: &KeyPool,
    key_id: KeyId,
    class: FailureClass,
    model: Option<&str>,
    policy: HealthPolicy,
    floor: i64,
) {
    pool.report_failure(FailureReport {
        group_id: 1,
        key_id,
        class,
        model: model.map(Arc::from),
        policy,
        floor_percent: floor,
    })
    .await
    .unwrap();
}

const LIMITED: FailureClass = FailureClass::RateLimited { retry_after: None };

fn retry_after(secs: u64) -> FailureClass {
    FailureClass::RateLimited {
        retry_after: Some(Duration::from_secs(secs)),
    }
}

async fn writer_settles(repo: &MemRepo, health: usize, operator: usize) {
    for _ in 0..1000 {
        if repo.writes.lock().len() >= health && repo.operator.lock().len() >= operator {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the writer did not store {health} health and {operator} operator writes");
}

#[actix_rt::test]
async fn leases_rotate_over_active_keys_only() {
    let (pool, _) = pool_with(vec![
        key(1, KeyStatus::Active),
        key(2, KeyStatus::Invalid),
        key(3, KeyStatus::Active),
    ])
    .await;
    let got: Vec<_> = (0..4).map(|_| id(&pool, None, &[]).unwrap()).collect();
    assert_eq!(got, vec![1, 3, 1, 3]);
    assert_eq!(id(&pool, None, &[1, 3]), None);
    assert_eq!(lease(&pool, None, &[1]), Some((3, Standing::Ready)));
    assert_eq!(pool.in_rotation(1), 2);
}

/// Ready keys first, then resting keys soonest rest end first, demoted keys last.
#[actix_rt::test]
async fn short_of_keys_the_order_is_ready_then_soonest_rest_then_demoted() {
    let (pool, _) = pool_with(actives(4)).await;
    let policy = HealthPolicy::default();
    fail(&pool, 1, FailureClass::KeyDead, Some("m"), policy, 10).await;
    fail(&pool, 2, retry_after(60), Some("m"), policy, 10).await;
    fail(
        &pool,
        3,
        FailureClass::UpstreamTrouble,
        Some("m"),
        policy,
        10,
    )
    .await;
    assert_eq!(lease(&pool, Some("m"), &[]), Some((4, Standing::Ready)));
    fail(&pool, 4, LIMITED, Some("m"), policy, 10).await;
    // 3 rests 5 s (upstream trouble), 4 rests 30 s, 2 rests 60 s; 1 is demoted.
    assert_eq!(lease(&pool, Some("m"), &[]), Some((3, Standing::Resting)));
    assert_eq!(lease(&pool, Some("m"), &[3]), Some((4, Standing::Resting)));
    assert_eq!(
        lease(&pool, Some("m"), &[3, 4]),
        Some((2, Standing::Resting))
    );
    assert_eq!(
        lease(&pool, Some("m"), &[2, 3, 4]),
        Some((1, Standing::Demoted))
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(lease(&pool, Some("m"), &[]), Some((3, Standing::Ready)));
    tokio::time::advance(Duration::from_secs(25)).await;
    let ready: HashSet<_> = (0..4)
        .filter_map(|_| lease(&pool, Some("m"), &[]))
        .collect();
    assert_eq!(
        ready,
        HashSet::from([(3, Standing::Ready), (4, Standing::Ready)])
    );
    // A demotion lasts `rate_limit_max` (300 s): then the key is tried again like any other.
    tokio::time::advance(Duration::from_secs(270)).await;
    let ready: HashSet<_> = (0..8).filter_map(|_| id(&pool, Some("m"), &[])).collect();
    assert_eq!(ready, HashSet::from([1, 2, 3, 4]));
}

/// The floor keeps a failing key in rotation, but demoted: a resting key is preferred to it.
#[actix_rt::test]
async fn the_floor_stops_blacklisting_but_never_prefers_a_dead_key() {
    let (pool, repo) = pool_with(actives(3)).await;
    let policy = HealthPolicy {
        blacklist_threshold: 1,
        ..Default::default()
    };
    // 50 % of 3 keys: two stay in rotation.
    fail(&pool, 1, FailureClass::KeyDead, None, policy, 50).await;
    fail(&pool, 2, FailureClass::KeyDead, None, policy, 50).await;
    assert_eq!(pool.floor_hits(), 1);
    let counts = pool.count(1).await.unwrap();
    assert_eq!((counts.active, counts.invalid), (2, 1));
    fail(&pool, 3, retry_after(600), None, policy, 50).await;
    for _ in 0..3 {
        assert_eq!(lease(&pool, None, &[]), Some((3, Standing::Resting)));
    }
    assert_eq!(lease(&pool, None, &[3]), Some((2, Standing::Demoted)));
    assert_eq!(
        id(&pool, None, &[2, 3]),
        None,
        "the blacklisted key is never leased"
    );
    writer_settles(&repo, 2, 0).await;
    assert_eq!(
        *repo.writes.lock(),
        vec![(1, KeyStatus::Invalid, 1), (2, KeyStatus::Active, 1)]
    );
    // A success with the demoted key lifts the demotion.
    let demoted = pool.lease(1, None, &[3]).unwrap();
    pool.report_success(1, &demoted, None);
    assert_eq!(pool.count(1).await.unwrap().active, 2);
    assert_eq!(lease(&pool, None, &[3]), Some((2, Standing::Ready)));
}

#[actix_rt::test]
async fn rate_limits_rest_one_model_and_end_by_themselves() {
    let (pool, repo) = pool_with(actives(2)).await;
    fail(
        &pool,
        1,
        LIMITED,
        Some("gemini-2.5-pro"),
        HealthPolicy::default(),
        10,
    )
    .await;
    for _ in 0..4 {
        assert_eq!(
            id(&pool, Some("gemini-2.5-pro"), &[]),
            Some(2),
            "key 1 rests for pro"
        );
    }
    let flash: HashSet<_> = (0..4)
        .filter_map(|_| id(&pool, Some("gemini-2.5-flash"), &[]))
        .collect();
    assert_eq!(
        flash,
        HashSet::from([1, 2]),
        "another model keeps using key 1"
    );
    let views = pool.describe(1, vec![1]).await.unwrap();
    assert_eq!(views[&1].state, LiveState::Active);
    assert_eq!(views[&1].cooldown_until, None);
    assert_eq!(views[&1].model_cooldowns.len(), 1);
    assert_eq!(views[&1].model_cooldowns[0].model, "gemini-2.5-pro");
    tokio::time::advance(Duration::from_secs(29)).await;
    assert_eq!(
        id(&pool, Some("gemini-2.5-pro"), &[2]),
        Some(1),
        "resting, still leased last"
    );
    assert_eq!(
        lease(&pool, Some("gemini-2.5-pro"), &[2]).unwrap().1,
        Standing::Resting
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        lease(&pool, Some("gemini-2.5-pro"), &[2]),
        Some((1, Standing::Ready))
    );
    let views = pool.describe(1, vec![1]).await.unwrap();
    assert!(
        views[&1].model_cooldowns.is_empty(),
        "an expired rest is not shown"
    );
    assert!(
        repo.writes.lock().is_empty(),
        "a rate limit is not a failure to persist"
    );
}

#[actix_rt::test]
async fn key_scope_and_key_wide_failures_take_the_whole_key() {
    let (pool, _) = pool_with(actives(2)).await;
    let key_scope = HealthPolicy {
        rest_scope: RestScope::Key,
        ..Default::default()
    };
    fail(&pool, 1, LIMITED, Some("a"), key_scope, 10).await;
    for _ in 0..4 {
        assert_eq!(
            id(&pool, Some("b"), &[]),
            Some(2),
            "key scope rests every model"
        );
    }
    assert_eq!(
        pool.describe(1, vec![1]).await.unwrap()[&1].state,
        LiveState::CoolingDown
    );

    // Out of quota for the whole key (`insufficient_quota` is key dead): every model is off it.
    let (pool, _) = pool_of(actives(2)).await;
    fail(
        &pool,
        1,
        FailureClass::KeyDead,
        Some("a"),
        HealthPolicy::default(),
        10,
    )
    .await;
    for model in ["a", "b"] {
        for _ in 0..3 {
            assert_eq!(id(&pool, Some(model), &[]), Some(2));
        }
    }
    assert!(pool.describe(1, vec![1]).await.unwrap()[&1].demoted);
}

#[actix_rt::test]
async fn threshold_blacklists_and_persists() {
    let (pool, repo) = pool_with(actives(2)).await;
    let policy = HealthPolicy {
        blacklist_threshold: 2,
        ..Default::default()
    };
    for _ in 0..2 {
        fail(&pool, 1, FailureClass::KeyDead, None, policy, 0).await;
    }
    for _ in 0..3 {
        assert_eq!(id(&pool, None, &[]), Some(2));
    }
    assert_eq!(
        pool.count(1).await.unwrap(),
        PoolCounts {
            active: 1,
            invalid: 1,
            ..Default::default()
        }
    );
    writer_settles(&repo, 2, 0).await;
    assert_eq!(
        *repo.writes.lock(),
        vec![(1, KeyStatus::Active, 1), (1, KeyStatus::Invalid, 2)]
    );
}

#[actix_rt::test]
async fn zero_threshold_never_blacklists() {
    let (pool, _) = pool_with(actives(1)).await;
    let policy = HealthPolicy {
        blacklist_threshold: 0,
        ..Default::default()
    };
    for _ in 0..10 {
        fail(&pool, 1, FailureClass::KeyDead, None, policy, 0).await;
    }
    assert_eq!(lease(&pool, None, &[]), Some((1, Standing::Demoted)));
}

#[actix_rt::test]
async fn a_storm_on_every_key_never_goes_below_the_floor() {
    let (pool, _) = pool_with(actives(20)).await;
    let policy = HealthPolicy {
        blacklist_threshold: 1,
        trouble_counts: true,
        ..Default::default()
    };
    for round in 0..3 {
        for id in 1..=20 {
            let class = if round == 0 {
                FailureClass::UpstreamTrouble
            } else {
                FailureClass::KeyDead
            };
            fail(&pool, id, class, None, policy, 10).await;
        }
    }
    assert_eq!(pool.in_rotation(1), 2, "10 % of 20 keys stay in rotation");
    let leased: HashSet<_> = (0..40).filter_map(|_| id(&pool, None, &[])).collect();
    assert_eq!(leased.len(), 2);
}

#[actix_rt::test]
async fn added_and_forgotten_keys_join_and_leave_the_ring() {
    let (pool, _) = pool_with(actives(1)).await;
    pool.add(vec![key(2, KeyStatus::Active)]).await.unwrap();
    assert_eq!(id(&pool, None, &[1]), Some(2));
    pool.forget(1, vec![1]).await.unwrap();
    assert_eq!(id(&pool, None, &[]), Some(2));
    assert_eq!(id(&pool, None, &[]), Some(2));
    pool.remove_group(1);
    pool.count(1).await.unwrap();
    assert_eq!(id(&pool, None, &[]), None);
}

#[actix_rt::test]
async fn a_reload_keeps_rests_of_keys_that_stay() {
    let (pool, _) = pool_with(actives(2)).await;
    // A full reload keeps every group it finds (a group held and stored is replaced, not dropped).
    assert_eq!(pool.load(None).await.unwrap(), 2);
    assert_eq!(pool.in_rotation(1), 2);
    fail(
        &pool,
        1,
        retry_after(60),
        Some("m"),
        HealthPolicy::default(),
        10,
    )
    .await;
    pool.load(Some(1)).await.unwrap();
    assert_eq!(id(&pool, Some("m"), &[]), Some(2));
    assert_eq!(id(&pool, Some("m"), &[]), Some(2));
}

#[actix_rt::test]
async fn disabled_keys_are_never_leased_and_ignore_failures() {
    let (pool, repo) =
        pool_with(vec![key(1, KeyStatus::Active), key(2, KeyStatus::Disabled)]).await;
    for _ in 0..10 {
        assert_eq!(id(&pool, None, &[]), Some(1));
    }
    fail(
        &pool,
        2,
        FailureClass::KeyDead,
        None,
        HealthPolicy::default(),
        0,
    )
    .await;
    let applied = pool
        .apply_probe(1, 2, None, HealthPolicy::default(), 0)
        .await
        .unwrap();
    assert!(
        applied.known && !applied.changed,
        "validation never revives it"
    );
    let counts = pool.count(1).await.unwrap();
    assert_eq!((counts.active, counts.disabled), (1, 1));
    assert!(repo.writes.lock().is_empty());
}

#[actix_rt::test]
async fn a_passed_probe_restores_an_invalid_key_and_persists_before_answering() {
    let (pool, repo) = pool_with(vec![key(1, KeyStatus::Active), key(2, KeyStatus::Invalid)]).await;
    assert_eq!(id(&pool, None, &[1]), None);
    let applied = pool
        .apply_probe(1, 2, None, HealthPolicy::default(), 10)
        .await
        .unwrap();
    assert!(applied.stored().await);
    assert_eq!(*repo.writes.lock(), vec![(2, KeyStatus::Active, 0)]);
    assert_eq!(id(&pool, None, &[1]), Some(2));
}

#[actix_rt::test]
async fn failed_probes_respect_the_floor() {
    let (pool, _) = pool_with(actives(2)).await;
    let policy = HealthPolicy {
        blacklist_threshold: 1,
        ..Default::default()
    };
    for id in [1, 2] {
        let applied = pool
            .apply_probe(1, id, Some(FailureClass::KeyDead), policy, 10)
            .await
            .unwrap();
        assert!(applied.stored().await, "the failure is counted either way");
    }
    let counts = pool.count(1).await.unwrap();
    assert_eq!((counts.active, counts.invalid), (1, 1), "one key stays");
}

#[actix_rt::test]
async fn rests_show_in_the_view_and_reset_per_model_or_whole() {
    let (pool, _) = pool_with(actives(2)).await;
    let policy = HealthPolicy::default();
    fail(&pool, 1, retry_after(600), None, policy, 0).await;
    let views = pool.describe(1, vec![1, 2, 99]).await.unwrap();
    assert_eq!(views.len(), 2);
    let cooling = &views[&1];
    assert_eq!(cooling.state, LiveState::CoolingDown);
    let left = cooling.cooldown_until.unwrap() - chrono::Utc::now();
    assert!(left > chrono::Duration::seconds(590) && left <= chrono::Duration::seconds(600));
    assert_eq!(
        cooling.last_failure.map(FailureClass::as_str),
        Some("rate_limited")
    );
    assert_eq!(views[&2].state, LiveState::Active);
    let counts = pool.count(1).await.unwrap();
    assert_eq!((counts.active, counts.cooling), (2, 1));
    assert_eq!(lease(&pool, None, &[2]), Some((1, Standing::Resting)));
    assert_eq!(pool.reset_rests(1, 1, None).await.unwrap(), Some(true));
    assert_eq!(lease(&pool, None, &[2]), Some((1, Standing::Ready)));
    assert_eq!(
        pool.describe(1, vec![1]).await.unwrap()[&1].cooldown_until,
        None
    );

    fail(&pool, 1, LIMITED, Some("a"), policy, 0).await;
    fail(&pool, 1, LIMITED, Some("b"), policy, 0).await;
    assert_eq!(
        pool.reset_rests(1, 1, Some("a".into())).await.unwrap(),
        Some(true)
    );
    assert_eq!(lease(&pool, Some("a"), &[2]), Some((1, Standing::Ready)));
    assert_eq!(lease(&pool, Some("b"), &[2]), Some((1, Standing::Resting)));
    let rests = &pool.describe(1, vec![1]).await.unwrap()[&1].model_cooldowns;
    assert_eq!(
        rests.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(),
        vec!["b"]
    );
    assert_eq!(pool.reset_rests(1, 99, None).await.unwrap(), None);
}

/// An operator's disable is applied in memory at once and stored after every health write
/// queued before it; failures arriving after it change nothing.
#[actix_rt::test]
async fn a_disable_survives_failures_in_flight() {
    let (pool, repo) = pool_with(actives(2)).await;
    let policy = HealthPolicy {
        blacklist_threshold: 100,
        ..Default::default()
    };
    let in_flight: Vec<_> = (0..20)
        .map(|_| {
            let pool = pool.clone();
            actix::spawn(
                async move { fail(&pool, 1, FailureClass::KeyDead, None, policy, 0).await },
            )
        })
        .collect();
    let disabled = pool.command(OperatorCommand::SetStatus {
        group_id: 1,
        key_id: 1,
        status: KeyStatus::Disabled,
    });
    let (stored, _) = futures_util::join!(disabled, futures_util::future::join_all(in_flight));
    assert_eq!(stored.unwrap(), vec![1]);
    for _ in 0..5 {
        fail(&pool, 1, FailureClass::KeyDead, None, policy, 0).await;
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(pool.count(1).await.unwrap().disabled, 1);
    assert_eq!(id(&pool, None, &[2]), None);
    assert_eq!(
        repo.rows.lock()[&1],
        KeyStatus::Disabled,
        "the last stored write is the disable"
    );
}

#[actix_rt::test]
async fn restore_and_delete_go_through_the_writer() {
    let (pool, repo) = pool_with(vec![
        key(1, KeyStatus::Invalid),
        key(2, KeyStatus::Invalid),
        key(3, KeyStatus::Active),
    ])
    .await;
    let restored = pool
        .command(OperatorCommand::Restore {
            group_id: 1,
            key_ids: Some(vec![1, 3]),
        })
        .await
        .unwrap();
    assert_eq!(restored, vec![1], "only invalid keys are restored");
    assert_eq!(pool.in_rotation(1), 2);
    let deleted = pool
        .command(OperatorCommand::Delete {
            group_id: 1,
            key_ids: vec![1, 2, 3],
            only: Some(KeyStatus::Invalid),
        })
        .await
        .unwrap();
    assert_eq!(deleted, vec![2]);
    let all = pool
        .command(OperatorCommand::Restore {
            group_id: 1,
            key_ids: None,
        })
        .await
        .unwrap();
    assert!(all.is_empty());
    assert_eq!(
        *repo.operator.lock(),
        vec![
            KeyWrite::Status {
                key_ids: vec![1],
                status: KeyStatus::Active,
                reset_failures: true
            },
            KeyWrite::Delete { key_ids: vec![2] },
        ]
    );
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
async fn failures_count_across_the_cluster_and_changes_are_announced_with_their_model() {
    tokio::time::pause();
    let repo = Arc::new(MemRepo::default());
    *repo.keys.lock() = actives(2);
    let bus = Arc::new(FakeBus {
        others: 2,
        counts: Mutex::default(),
        announced: Mutex::default(),
    });
    let pool = KeyPoolActor::start(repo.clone(), Some(bus.clone()));
    pool.load(None).await.unwrap();
    let policy = HealthPolicy {
        blacklist_threshold: 3,
        ..Default::default()
    };
    fail(&pool, 2, retry_after(7), Some("m"), policy, 0).await;
    // One failure here, two elsewhere: the threshold of 3 is reached cluster-wide.
    fail(&pool, 1, FailureClass::KeyDead, None, policy, 0).await;
    for _ in 0..100 {
        if bus.announced.lock().len() == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        *bus.announced.lock(),
        vec![
            (
                2,
                HealthChange::CoolingDown {
                    for_ms: 7000,
                    model: Some("m".into())
                }
            ),
            (1, HealthChange::Blacklisted { failure_count: 3 })
        ]
    );
    assert_eq!(lease(&pool, Some("m"), &[]), Some((2, Standing::Resting)));
    assert_eq!(lease(&pool, Some("other"), &[]), Some((2, Standing::Ready)));
}

#[actix_rt::test]
async fn changes_from_other_nodes_apply_here_without_being_stored() {
    let (pool, repo) = pool_with(actives(3)).await;
    pool.apply_remote(1, 1, HealthChange::Blacklisted { failure_count: 3 });
    pool.apply_remote(
        1,
        2,
        HealthChange::CoolingDown {
            for_ms: 60_000,
            model: Some("m".into()),
        },
    );
    pool.apply_remote(
        1,
        3,
        HealthChange::CoolingDown {
            for_ms: 30_000,
            model: None,
        },
    );
    // Key 2 rests for one model, key 3 as a whole: both count as cooling.
    let counts = pool.count(1).await.unwrap();
    assert_eq!(
        counts,
        PoolCounts {
            active: 2,
            cooling: 2,
            invalid: 1,
            disabled: 0,
        }
    );
    assert_eq!(lease(&pool, Some("other"), &[]), Some((2, Standing::Ready)));
    assert_eq!(
        lease(&pool, Some("m"), &[]),
        Some((3, Standing::Resting)),
        "30 s beats 60 s"
    );
    pool.apply_remote(1, 1, HealthChange::Restored);
    pool.count(1).await.unwrap();
    assert_eq!(lease(&pool, Some("m"), &[]), Some((1, Standing::Ready)));
    assert!(
        repo.writes.lock().is_empty(),
        "the node that made a change stores it"
    );
}
