//! The lease table and the leasing order. The pool's rings are published for lock-free reading, so
//! a request leases a key without a message round trip to the pool actor. The actor is the only
//! writer: it rebuilds a group's ring when membership changes, and writes each key's rests (whole
//! key and per model) and demotion into the ring's slots, which are the one place rests live.
//!
//! Order when keys are short: keys that are ready (not resting for the request's model, not
//! demoted) in rotation; then resting keys, soonest rest end first (a resting key is tried rather
//! than refusing the request); keys demoted after recent key-dead failures only when nothing else
//! is left. A demotion lasts as long as the longest rate-limit rest, so a key that failed once is
//! tried again later and reaches the blacklist threshold if it keeps failing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::time::Instant;

use crate::domain::{GroupId, KeyId, KeySecret};

/// How a leased key stood when it was handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Standing {
    /// In rotation and not resting for the request's model.
    Ready,
    /// Resting, handed out because no ready key was left.
    Resting,
    /// Demoted after key-dead failures, handed out because no other key was left.
    Demoted,
}

/// A key handed to one attempt of a request.
#[derive(Clone, Debug)]
pub struct Lease {
    pub key_id: KeyId,
    pub secret: Arc<KeySecret>,
    /// Anything but [`Standing::Ready`] asks the caller to report a success (it ends the rest).
    pub standing: Standing,
}

/// One key's rests as the table holds them: milliseconds since the table's epoch, 0 for none.
#[derive(Default)]
struct Rests {
    whole: AtomicU64,
    models: RwLock<Vec<(Arc<str>, u64)>>,
    /// Whether `models` may hold a rest: leases skip its lock when it cannot.
    has_models: AtomicBool,
    /// Until when the key is demoted after key-dead failures (its failures are "recent").
    demoted: AtomicU64,
}

impl Rests {
    /// When the key's rest for `model` ends (the later of its whole-key and model rests).
    fn end_for(&self, model: Option<&str>) -> u64 {
        let whole = self.whole.load(Ordering::Relaxed);
        let Some(model) = model.filter(|_| self.has_models.load(Ordering::Relaxed)) else {
            return whole;
        };
        let models = self.models.read();
        models
            .iter()
            .find(|(m, _)| &**m == model)
            .map_or(whole, |(_, until)| whole.max(*until))
    }

    fn copy(&self) -> Rests {
        Rests {
            whole: AtomicU64::new(self.whole.load(Ordering::Relaxed)),
            models: RwLock::new(self.models.read().clone()),
            has_models: AtomicBool::new(self.has_models.load(Ordering::Relaxed)),
            demoted: AtomicU64::new(self.demoted.load(Ordering::Relaxed)),
        }
    }
}

struct Slot {
    key_id: KeyId,
    secret: Arc<KeySecret>,
    rests: Rests,
}

struct Ring {
    slots: Vec<Slot>,
    index: HashMap<KeyId, usize>,
    cursor: AtomicUsize,
}

impl Ring {
    fn slot(&self, key_id: KeyId) -> Option<&Slot> {
        self.index.get(&key_id).map(|i| &self.slots[*i])
    }
}

/// A key's rests as operators see them, as instants of the pool's clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestView {
    pub whole: Option<Instant>,
    pub models: Vec<(Arc<str>, Instant)>,
    pub demoted: bool,
}

/// Published rings of the keys in rotation, one per group.
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
        // +1 so that a rest ending at the epoch itself is still distinct from "no rest".
        at.saturating_duration_since(self.epoch).as_millis() as u64 + 1
    }

    fn instant(&self, millis: u64) -> Instant {
        self.epoch + std::time::Duration::from_millis(millis.saturating_sub(1))
    }

    fn ring(&self, group_id: GroupId) -> Option<Arc<Ring>> {
        self.rings.read().get(&group_id).cloned()
    }

    /// Keys of the group in rotation (resting and demoted ones included).
    pub fn in_rotation(&self, group_id: GroupId) -> usize {
        self.rings
            .read()
            .get(&group_id)
            .map_or(0, |r| r.slots.len())
    }

    /// A key for a request for `model`, in the leasing order, skipping keys it already tried.
    pub fn lease(
        &self,
        group_id: GroupId,
        model: Option<&str>,
        exclude: &[KeyId],
    ) -> Option<Lease> {
        let ring = self.ring(group_id)?;
        let len = ring.slots.len();
        if len == 0 {
            return None;
        }
        let now = self.millis(Instant::now());
        let start = ring.cursor.fetch_add(1, Ordering::Relaxed);
        let mut soonest: Option<(u64, &Slot)> = None;
        let mut demoted: Option<&Slot> = None;
        for step in 0..len {
            let slot = &ring.slots[(start + step) % len];
            if exclude.contains(&slot.key_id) {
                continue;
            }
            if slot.rests.demoted.load(Ordering::Relaxed) > now {
                demoted = demoted.or(Some(slot));
                continue;
            }
            let until = slot.rests.end_for(model);
            if until <= now {
                if step > 0 {
                    // Skipped keys should not be re-skipped by the next request.
                    ring.cursor.fetch_add(step, Ordering::Relaxed);
                }
                return Some(lease_of(slot, Standing::Ready));
            }
            if soonest.is_none_or(|(end, _)| until < end) {
                soonest = Some((until, slot));
            }
        }
        soonest
            .map(|(_, slot)| lease_of(slot, Standing::Resting))
            .or_else(|| demoted.map(|slot| lease_of(slot, Standing::Demoted)))
    }

    /// Replaces a group's ring (in lease order), keeping where the rotation was and the rests
    /// and demotions of keys that stay.
    pub(crate) fn publish(&self, group_id: GroupId, keys: Vec<(KeyId, Arc<KeySecret>)>) {
        let old = self.ring(group_id);
        let cursor = old.as_ref().map_or(0, |r| r.cursor.load(Ordering::Relaxed));
        let slots: Vec<Slot> = keys
            .into_iter()
            .map(|(key_id, secret)| Slot {
                key_id,
                secret,
                rests: old
                    .as_ref()
                    .and_then(|r| r.slot(key_id))
                    .map_or_else(Rests::default, |s| s.rests.copy()),
            })
            .collect();
        let index = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key_id, i))
            .collect();
        self.rings.write().insert(
            group_id,
            Arc::new(Ring {
                slots,
                index,
                cursor: AtomicUsize::new(cursor),
            }),
        );
    }

    /// Forgets a group.
    pub(crate) fn remove(&self, group_id: GroupId) {
        self.rings.write().remove(&group_id);
    }

    fn with_slot<T>(
        &self,
        group_id: GroupId,
        key_id: KeyId,
        f: impl FnOnce(&Slot) -> T,
    ) -> Option<T> {
        let ring = self.ring(group_id)?;
        let slot = ring.slot(key_id)?;
        Some(f(slot))
    }

    /// Rests a key for `model` (`None`: the whole key) until `until`; answers whether it was
    /// already resting for that scope (a new rest is announced, a longer one is not).
    pub(crate) fn rest(
        &self,
        group_id: GroupId,
        key_id: KeyId,
        model: Option<&Arc<str>>,
        until: Instant,
    ) -> bool {
        let (now, until) = (self.millis(Instant::now()), self.millis(until));
        self.with_slot(group_id, key_id, |slot| match model {
            None => slot.rests.whole.swap(until, Ordering::Relaxed) > now,
            Some(model) => {
                let mut models = slot.rests.models.write();
                models.retain(|(_, end)| *end > now);
                slot.rests.has_models.store(true, Ordering::Relaxed);
                match models.iter_mut().find(|(m, _)| m == model) {
                    Some(entry) => {
                        entry.1 = until;
                        true
                    }
                    None => {
                        models.push((Arc::clone(model), until));
                        false
                    }
                }
            }
        })
        .unwrap_or(false)
    }

    /// Ends a key's rests now: every rest when `model` is `None`, else the rest for that model
    /// (and a whole-key rest, which also keeps the model from being served). Answers whether
    /// anything was resting.
    pub(crate) fn wake(&self, group_id: GroupId, key_id: KeyId, model: Option<&str>) -> bool {
        let now = self.millis(Instant::now());
        self.with_slot(group_id, key_id, |slot| {
            let whole = slot.rests.whole.swap(0, Ordering::Relaxed) > now;
            let mut models = slot.rests.models.write();
            let before = models.iter().filter(|(_, end)| *end > now).count();
            models.retain(|(m, end)| *end > now && model.is_some_and(|wanted| &**m != wanted));
            slot.rests
                .has_models
                .store(!models.is_empty(), Ordering::Relaxed);
            whole || models.len() < before
        })
        .unwrap_or(false)
    }

    /// Demotes a key after key-dead failures until `until`, or lifts the demotion (`None`).
    pub(crate) fn demote(&self, group_id: GroupId, key_id: KeyId, until: Option<Instant>) {
        let until = until.map_or(0, |u| self.millis(u));
        self.with_slot(group_id, key_id, |slot| {
            slot.rests.demoted.store(until, Ordering::Relaxed)
        });
    }

    /// A key's current rests (expired ones left out), or `None` for a key out of rotation.
    pub(crate) fn rests(&self, group_id: GroupId, key_id: KeyId) -> Option<RestView> {
        let now = self.millis(Instant::now());
        self.with_slot(group_id, key_id, |slot| {
            let whole = slot.rests.whole.load(Ordering::Relaxed);
            RestView {
                whole: (whole > now).then(|| self.instant(whole)),
                models: slot
                    .rests
                    .models
                    .read()
                    .iter()
                    .filter(|(_, end)| *end > now)
                    .map(|(m, end)| (Arc::clone(m), self.instant(*end)))
                    .collect(),
                demoted: slot.rests.demoted.load(Ordering::Relaxed) > now,
            }
        })
    }
}

fn lease_of(slot: &Slot, standing: Standing) -> Lease {
    Lease {
        key_id: slot.key_id,
        secret: Arc::clone(&slot.secret),
        standing,
    }
}

/// Keys the pool floor keeps in rotation: `floor_percent` % of the group's enabled keys, at least
/// one; 0 % turns protection off. Blacklisting never takes a group below it; rests do not count
/// against it, because resting keys are still leased when nothing better is left.
pub(crate) fn floor(enabled: usize, floor_percent: i64) -> usize {
    match floor_percent.max(0) {
        0 => 0,
        pct => ((enabled as i64 * pct + 99) / 100).max(1) as usize,
    }
}
