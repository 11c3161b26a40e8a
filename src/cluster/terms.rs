//! The leader's term journal: while it leads, a node records its fencing epoch with the store's
//! clock at every renew interval (`<prefix>cluster:terms`, one JSON entry per epoch:
//! `{node, epoch, started_ms, last_ms}`), only while it still holds the lock. Operators read it
//! to see who led when (`redis-cli HGETALL gpt-load:cluster:terms`); the cluster tests read it to
//! prove that no two terms overlapped.

use std::time::Duration;

use std::sync::Arc;

use gpt_load_actors::cluster::{Coordinator, Leadership};

/// Starts the journal job on every leadership term of this node.
pub fn spawn(
    store: Arc<dyn Coordinator>,
    node: Arc<str>,
    leadership: &Leadership,
    every: Duration,
) {
    leadership.spawn_while_leader("leader-term-journal", move |epoch| {
        let store = store.clone();
        let node = node.clone();
        async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                match store.record_term(&node, epoch).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            epoch,
                            "The leader lock is no longer ours; not recording the term."
                        )
                    }
                    Err(err) => {
                        tracing::warn!(epoch, error = %err, "Could not record the leader term.")
                    }
                }
            }
        }
    });
}
