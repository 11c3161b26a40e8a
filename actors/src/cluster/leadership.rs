//! Who runs the singleton jobs (validation rounds, log retention, anything that must run once per
//! cluster). A node publishes its leadership here; jobs subscribe and run only while it holds.
//!
//! A single node (no Redis) is its own leader for its whole life. In cluster mode the
//! `ClusterActor` publishes `BecameLeader`/`LostLeadership` transitions through the same channel,
//! each leadership term carrying the fencing epoch it won, so a job can stamp what it did.

use std::future::Future;

use tokio::sync::watch;

/// This node's role at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Holds the leader lock for fencing epoch `epoch`.
    Leader { epoch: u64 },
    /// May take the lock when the leader goes (`IS_SLAVE=false`).
    Candidate,
    /// Never competes (`IS_SLAVE=true`).
    Follower,
}

impl Role {
    pub fn is_leader(self) -> bool {
        matches!(self, Role::Leader { .. })
    }

    /// The name `/health` and the metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader { .. } => "leader",
            Role::Candidate => "candidate",
            Role::Follower => "follower",
        }
    }
}

/// The publishing side and any number of readers of this node's [`Role`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Leadership {
    tx: std::sync::Arc<watch::Sender<Role>>,
}

impl Leadership {
    /// A node that is not yet (or never) leader.
    pub fn new(initial: Role) -> Self {
        let (tx, _) = watch::channel(initial);
        Self {
            tx: std::sync::Arc::new(tx),
        }
    }

    /// A node without a cluster: leader of itself, epoch 1, for good.
    pub fn single_node() -> Self {
        Self::new(Role::Leader { epoch: 1 })
    }

    pub fn role(&self) -> Role {
        *self.tx.borrow()
    }

    pub fn is_leader(&self) -> bool {
        self.role().is_leader()
    }

    /// Publishes a new role; readers only wake when it actually changed.
    pub fn set(&self, role: Role) {
        self.tx.send_if_modified(|current| {
            if *current == role {
                false
            } else {
                *current = role;
                true
            }
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.tx.subscribe()
    }

    /// Runs `job(epoch)` for every leadership term this node holds, on the current actix
    /// system: started when the node becomes leader, dropped (cancelled at its next await) the
    /// moment leadership is lost, started again on the next term. The job is expected to loop
    /// for as long as it is allowed to run.
    pub fn spawn_while_leader<F, Fut>(&self, name: &'static str, mut job: F)
    where
        F: FnMut(u64) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let mut rx = self.subscribe();
        actix::spawn(async move {
            loop {
                let role = *rx.borrow_and_update();
                if let Role::Leader { epoch } = role {
                    tracing::info!(job = name, epoch, "Starting a leader-only job.");
                    let run = job(epoch);
                    tokio::select! {
                        () = run => {
                            // Finished on its own: wait for the next change of role.
                            if rx.changed().await.is_err() { return; }
                        }
                        changed = wait_until_not(&mut rx, role) => {
                            tracing::info!(job = name, epoch, "Stopping a leader-only job: leadership changed.");
                            if changed.is_err() { return; }
                        }
                    }
                } else if rx.changed().await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Waits until the published role differs from `current`.
async fn wait_until_not(
    rx: &mut watch::Receiver<Role>,
    current: Role,
) -> Result<(), watch::error::RecvError> {
    loop {
        rx.changed().await?;
        if *rx.borrow() != current {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    async fn wait_for(deadline: Duration, mut check: impl FnMut() -> bool) {
        let end = tokio::time::Instant::now() + deadline;
        while !check() {
            assert!(
                tokio::time::Instant::now() < end,
                "condition not met in time"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[actix_rt::test]
    async fn a_job_runs_only_while_leader_and_restarts_each_term() {
        let leadership = Leadership::new(Role::Candidate);
        let running = Arc::new(AtomicU64::new(0));
        let started_epochs = Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let running = Arc::clone(&running);
            let started = Arc::clone(&started_epochs);
            leadership.spawn_while_leader("test", move |epoch| {
                let running = Arc::clone(&running);
                started.lock().unwrap().push(epoch);
                async move {
                    // Counts as "running" until dropped.
                    struct Guard(Arc<AtomicU64>);
                    impl Drop for Guard {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                    running.fetch_add(1, Ordering::SeqCst);
                    let _guard = Guard(running);
                    std::future::pending::<()>().await;
                }
            });
        }
        tokio::task::yield_now().await;
        assert_eq!(running.load(Ordering::SeqCst), 0);

        leadership.set(Role::Leader { epoch: 7 });
        wait_for(Duration::from_secs(5), || {
            running.load(Ordering::SeqCst) == 1
        })
        .await;

        leadership.set(Role::Candidate);
        wait_for(Duration::from_secs(5), || {
            running.load(Ordering::SeqCst) == 0
        })
        .await;

        leadership.set(Role::Leader { epoch: 9 });
        wait_for(Duration::from_secs(5), || {
            running.load(Ordering::SeqCst) == 1
        })
        .await;
        // A new term straight after another one restarts the job with the new epoch.
        leadership.set(Role::Leader { epoch: 10 });
        wait_for(Duration::from_secs(5), || {
            started_epochs.lock().unwrap().as_slice() == [7, 9, 10]
        })
        .await;
        assert_eq!(running.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn single_node_is_its_own_leader() {
        let l = Leadership::single_node();
        assert!(l.is_leader());
        assert_eq!(l.role().as_str(), "leader");
    }
}
