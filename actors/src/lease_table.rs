//! The lease table: the key pool's rings published for lock-free reading, so a request leases a
//! key without a message round trip to the pool actor (a cross-thread wake-up per request was the
//! largest single cost on the hot path). The actor stays the only writer: it rebuilds a group's
//! ring when membership changes and marks resting keys; leases only read and bump a cursor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;

use crate::domain::{GroupId, KeyId, KeySecret};
use crate::key_pool::Lease;

struct Slot {
    key_id: KeyId,
    secret: Arc<KeySecret>,
    /// Milliseconds since the table's epoch until which the key rests (0: not resting).
    resting_until: AtomicU64,
}

struct Ring {
    slots: Vec<Slot>,
    cursor: AtomicUsize,
}

/// Published rings of usable (and resting) keys, one per group.
#[derive(Clone)]
pub struct LeaseTable {
    epoch: Instant,
    rings: Arc<RwLock<HashMap<GroupId, Arc<Ring>>>>,
}

impl Default for LeaseTable {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            rings: Arc::default(),
        }
    }
}

impl LeaseTable {
    fn millis(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The next key of the group after the shared cursor that is not excluded and not resting.
    pub fn lease(&self, group_id: GroupId, exclude: &[KeyId]) -> Option<Lease> {
        let ring = self.rings.read().get(&group_id).cloned()?;
        let len = ring.slots.len();
        if len == 0 {
            return None;
        }
        let now = self.millis(Instant::now());
        let start = ring.cursor.fetch_add(1, Ordering::Relaxed);
        for step in 0..len {
            let slot = &ring.slots[(start + step) % len];
            if exclude.contains(&slot.key_id) || slot.resting_until.load(Ordering::Relaxed) > now {
                continue;
            }
            if step > 0 {
                // Skipped keys should not be re-skipped by the next request.
                ring.cursor.fetch_add(step, Ordering::Relaxed);
            }
            return Some(Lease {
                key_id: slot.key_id,
                secret: Arc::clone(&slot.secret),
            });
        }
        None
    }

    /// Replaces a group's ring (in lease order), keeping where the rotation was.
    pub(crate) fn publish(
        &self,
        group_id: GroupId,
        keys: Vec<(KeyId, Arc<KeySecret>, Option<Instant>)>,
    ) {
        let cursor = self
            .rings
            .read()
            .get(&group_id)
            .map_or(0, |r| r.cursor.load(Ordering::Relaxed));
        let slots = keys
            .into_iter()
            .map(|(key_id, secret, until)| Slot {
                key_id,
                secret,
                resting_until: AtomicU64::new(until.map_or(0, |u| self.millis(u))),
            })
            .collect();
        self.rings.write().insert(
            group_id,
            Arc::new(Ring {
                slots,
                cursor: AtomicUsize::new(cursor),
            }),
        );
    }

    /// Forgets a group.
    pub(crate) fn remove(&self, group_id: GroupId) {
        self.rings.write().remove(&group_id);
    }

    /// Ends a key's rest now.
    pub(crate) fn wake(&self, group_id: GroupId, key_id: KeyId) {
        if let Some(ring) = self.rings.read().get(&group_id) {
            if let Some(slot) = ring.slots.iter().find(|s| s.key_id == key_id) {
                slot.resting_until.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Marks a key as resting until `until`.
    pub(crate) fn rest(&self, group_id: GroupId, key_id: KeyId, until: Instant) {
        if let Some(ring) = self.rings.read().get(&group_id) {
            if let Some(slot) = ring.slots.iter().find(|s| s.key_id == key_id) {
                slot.resting_until
                    .store(self.millis(until), Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn keys(ids: &[KeyId]) -> Vec<(KeyId, Arc<KeySecret>, Option<Instant>)> {
        ids.iter()
            .map(|id| (*id, Arc::new(KeySecret::new(format!("k{id}"))), None))
            .collect()
    }

    #[test]
    fn leases_rotate_skip_excluded_and_resting_keys() {
        let table = LeaseTable::default();
        table.publish(1, keys(&[1, 2, 3]));
        let ids: Vec<KeyId> = (0..6)
            .map(|_| table.lease(1, &[]).unwrap().key_id)
            .collect();
        assert_eq!(ids, vec![1, 2, 3, 1, 2, 3]);
        assert_eq!(table.lease(1, &[1, 2]).unwrap().key_id, 3);
        table.rest(1, 2, Instant::now() + Duration::from_secs(60));
        let ids: Vec<KeyId> = (0..4)
            .map(|_| table.lease(1, &[]).unwrap().key_id)
            .collect();
        assert!(!ids.contains(&2), "{ids:?}");
        table.rest(1, 2, Instant::now());
        assert!(
            (0..3).any(|_| table.lease(1, &[]).unwrap().key_id == 2),
            "the rest is over"
        );
        assert!(table.lease(1, &[1, 2, 3]).is_none());
        assert!(table.lease(9, &[]).is_none());
        table.remove(1);
        assert!(table.lease(1, &[]).is_none());
    }
}
