//! Cluster coordination in the server: how every node's copies of the configuration and key
//! health stay in step (`sync`), and the leader-term journal (`terms`). The election
//! (`ClusterActor`), `Leadership` and the `Coordinator` port are in the core,
//! `gpt_load_actors::cluster`; the port's adapters in `src/store/`.

pub mod sync;
pub mod terms;

#[cfg(test)]
#[cfg(test)]
mod election {
    //! The election against the in-process store (the actor lives in the core, the store here).

    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use actix::prelude::*;
    use gpt_load_actors::cluster::{
        ClusterActor, Coordinator, ElectionConfig, Leadership, Resign, Role,
    };

    use crate::store::memory::MemoryStore;

    async fn wait_for(deadline: Duration, mut check: impl FnMut() -> bool) {
        let end = Instant::now() + deadline;
        while !check() {
            assert!(Instant::now() < end, "condition not met in time");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn node(
        store: &Arc<MemoryStore>,
        name: &str,
        candidate: bool,
    ) -> (Addr<ClusterActor>, Leadership) {
        let leadership = Leadership::new(Role::Candidate);
        let store: Arc<dyn Coordinator> = store.clone();
        let addr = ClusterActor::new(
            store,
            leadership.clone(),
            ElectionConfig {
                node: name.into(),
                ttl: Duration::from_millis(300),
                candidate,
            },
        )
        .start();
        (addr, leadership)
    }

    #[actix_rt::test]
    async fn one_leader_and_a_handover_on_resign() {
        let store = Arc::new(MemoryStore::default());
        let (a, la) = node(&store, "a", true);
        let (_b, lb) = node(&store, "b", true);
        let (_f, lf) = node(&store, "f", false);
        wait_for(Duration::from_secs(5), || la.is_leader() || lb.is_leader()).await;
        assert!(!(la.is_leader() && lb.is_leader()));
        assert_eq!(lf.role(), Role::Follower);
        let (first, second) = if la.is_leader() {
            (&la, &lb)
        } else {
            (&lb, &la)
        };
        let Role::Leader { epoch } = first.role() else {
            unreachable!()
        };
        // Renewals keep the same term well past the TTL.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(first.role(), Role::Leader { epoch });
        assert!(!second.is_leader());
        if la.is_leader() {
            a.send(Resign).await.unwrap();
        } else {
            _b.send(Resign).await.unwrap();
        }
        wait_for(Duration::from_secs(5), || second.is_leader()).await;
        assert!(matches!(second.role(), Role::Leader { epoch: e } if e > epoch));
        assert!(!first.is_leader());
        assert_eq!(lf.role(), Role::Follower);
    }
}
