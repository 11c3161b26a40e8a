//! The in-process store of a single node: the same semantics as Redis, held in this process.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use gpt_load_actors::cluster::{Coordinator, EventEnvelope, LeadAttempt, Notice, StoreError};

#[derive(Default)]
struct Inner {
    /// Holder value (`node/epoch`) and expiry of the leader lock.
    leader: Option<(String, Instant)>,
    epoch: u64,
    failures: HashMap<i64, i64>,
    task: Option<(String, Instant)>,
    locks: HashMap<String, (String, Instant)>,
    task_status: Option<String>,
}

/// A store that lives and dies with this process.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    notices: broadcast::Sender<Notice>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            notices: broadcast::channel(1024).0,
        }
    }
}

fn holder(node: &str, epoch: u64) -> String {
    format!("{node}/{epoch}")
}

fn live(slot: &Option<(String, Instant)>, now: Instant) -> Option<&str> {
    slot.as_ref()
        .filter(|(_, until)| *until > now)
        .map(|(v, _)| v.as_str())
}

#[async_trait]
impl Coordinator for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn try_lead(
        &self,
        node: &str,
        ttl: Duration,
        min_epoch: u64,
    ) -> Result<LeadAttempt, StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if let Some(value) = live(&inner.leader, now) {
            let epoch = value.rsplit('/').next().and_then(|e| e.parse().ok());
            return Ok(LeadAttempt::Held { epoch });
        }
        inner.epoch = inner.epoch.max(min_epoch) + 1;
        let epoch = inner.epoch;
        inner.leader = Some((holder(node, epoch), now + ttl));
        Ok(LeadAttempt::Won { epoch })
    }

    async fn renew(&self, node: &str, epoch: u64, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if live(&inner.leader, now) == Some(holder(node, epoch).as_str()) {
            inner.leader = Some((holder(node, epoch), now + ttl));
            return Ok(true);
        }
        Ok(false)
    }

    async fn resign(&self, node: &str, epoch: u64) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if live(&inner.leader, now) == Some(holder(node, epoch).as_str()) {
            inner.leader = None;
            return Ok(true);
        }
        Ok(false)
    }

    async fn record_term(&self, node: &str, epoch: u64) -> Result<bool, StoreError> {
        let inner = self.inner.lock();
        Ok(live(&inner.leader, Instant::now()) == Some(holder(node, epoch).as_str()))
    }

    async fn publish(&self, event: &EventEnvelope) -> Result<(), StoreError> {
        // No receiver is fine: nobody else is listening on a single node.
        let _ = self.notices.send(Notice::Event(event.clone()));
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    async fn count_failure(&self, key_id: i64) -> Result<i64, StoreError> {
        let mut inner = self.inner.lock();
        let n = inner.failures.entry(key_id).or_insert(0);
        *n += 1;
        Ok(*n)
    }

    async fn reset_failures(&self, key_ids: &[i64]) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        for id in key_ids {
            inner.failures.remove(id);
        }
        Ok(())
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if inner.locks.get(name).is_some_and(|(_, until)| *until > now) {
            return Ok(false);
        }
        inner
            .locks
            .insert(name.to_string(), (owner.to_string(), now + ttl));
        Ok(true)
    }

    async fn refresh_lock(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        match inner.locks.get_mut(name) {
            Some((holder, until)) if holder == owner && *until > now => {
                *until = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        if inner
            .locks
            .get(name)
            .is_some_and(|(holder, _)| holder == owner)
        {
            inner.locks.remove(name);
        }
        Ok(())
    }

    async fn claim_task(&self, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if live(&inner.task, now).is_some() {
            return Ok(false);
        }
        inner.task = Some((owner.to_string(), now + ttl));
        Ok(true)
    }

    async fn refresh_task(&self, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if live(&inner.task, now) == Some(owner) {
            inner.task = Some((owner.to_string(), now + ttl));
            return Ok(true);
        }
        Ok(false)
    }

    async fn release_task(&self, owner: &str) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        if inner.task.as_ref().is_some_and(|(o, _)| o == owner) {
            inner.task = None;
        }
        Ok(())
    }

    async fn put_task_status(&self, status: &str) -> Result<(), StoreError> {
        self.inner.lock().task_status = Some(status.to_string());
        Ok(())
    }

    async fn task_status(&self) -> Result<Option<String>, StoreError> {
        Ok(self.inner.lock().task_status.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_with_rising_epochs() {
        let s = MemoryStore::default();
        let ttl = Duration::from_millis(50);
        assert_eq!(
            s.try_lead("a", ttl, 0).await.unwrap(),
            LeadAttempt::Won { epoch: 1 }
        );
        assert_eq!(
            s.try_lead("b", ttl, 0).await.unwrap(),
            LeadAttempt::Held { epoch: Some(1) }
        );
        assert!(s.renew("a", 1, ttl).await.unwrap());
        assert!(!s.renew("b", 1, ttl).await.unwrap());
        assert!(!s.resign("b", 1).await.unwrap());
        assert!(s.resign("a", 1).await.unwrap());
        // A store that forgot its epochs still never goes back below what a node has seen.
        assert_eq!(
            s.try_lead("b", ttl, 7).await.unwrap(),
            LeadAttempt::Won { epoch: 8 }
        );
        assert!(s.record_term("b", 8).await.unwrap());
        assert!(!s.record_term("a", 8).await.unwrap());
    }

    #[tokio::test]
    async fn named_locks_have_one_owner() {
        let s = MemoryStore::default();
        let ttl = Duration::from_secs(5);
        assert!(s.try_lock("startup", "a", ttl).await.unwrap());
        assert!(!s.try_lock("startup", "b", ttl).await.unwrap());
        assert!(s.try_lock("other", "b", ttl).await.unwrap());
        assert!(s.refresh_lock("startup", "a", ttl).await.unwrap());
        assert!(!s.refresh_lock("startup", "b", ttl).await.unwrap());
        s.unlock("startup", "b").await.unwrap();
        assert!(!s.try_lock("startup", "b", ttl).await.unwrap());
        s.unlock("startup", "a").await.unwrap();
        assert!(s.try_lock("startup", "b", ttl).await.unwrap());
    }

    #[tokio::test]
    async fn task_claims_are_exclusive() {
        let s = MemoryStore::default();
        let ttl = Duration::from_secs(5);
        assert!(s.claim_task("a", ttl).await.unwrap());
        assert!(!s.claim_task("b", ttl).await.unwrap());
        assert!(!s.refresh_task("b", ttl).await.unwrap());
        s.release_task("b").await.unwrap();
        assert!(!s.claim_task("b", ttl).await.unwrap());
        s.release_task("a").await.unwrap();
        assert!(s.claim_task("b", ttl).await.unwrap());
    }
}
