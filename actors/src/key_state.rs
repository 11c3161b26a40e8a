//! One key's health as an explicit state machine, pure and driven by the caller's clock:
//!
//! ```text
//! active ──rate limited / upstream trouble──▶ active, resting (per model or whole key) ──time──▶ active
//! active ──key dead × blacklist_threshold──▶ invalid ──validation / restore──▶ active
//! any ──operator──▶ disabled ──operator──▶ active
//! ```
//!
//! Rests are not stored here: the key pool's lease table holds them (one source of truth), this
//! module only decides how long they last. Request faults and clients going away never touch a key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// Why an attempt failed, decided from structured data (status, provider error fields,
/// `Retry-After`, transport error kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// The key is invalid, revoked or out of credit (a key-wide quota error included).
    KeyDead,
    /// The key is over its rate or quota for now; `retry_after` when the upstream said so.
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, connect errors, timeouts: the upstream's trouble, not the key's.
    UpstreamTrouble,
    /// The request itself was wrong (bad body, unknown model, wrong path).
    RequestFault,
}

impl FailureClass {
    /// A short name for logs and the key list.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::KeyDead => "key_dead",
            FailureClass::RateLimited { .. } => "rate_limited",
            FailureClass::UpstreamTrouble => "upstream_trouble",
            FailureClass::RequestFault => "request_fault",
        }
    }
}

/// What a rate limit rests: the key for the request's model only, or the whole key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestScope {
    /// Providers enforce quotas per model: other models keep using the key.
    #[default]
    Model,
    Key,
}

impl RestScope {
    /// The setting's spelling (`model` or `key`).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "model" => Some(RestScope::Model),
            "key" => Some(RestScope::Key),
            _ => None,
        }
    }
}

/// How failures of each class affect a key (from the group's effective config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Counted failures that blacklist a key; 0 never blacklists.
    pub blacklist_threshold: i64,
    /// First cooldown of a rate-limited key without `Retry-After`; doubles per repeat.
    pub rate_limit_base: Duration,
    pub rate_limit_max: Duration,
    /// Cap on an upstream's `Retry-After`.
    pub retry_after_max: Duration,
    /// First cooldown after upstream trouble (zero: none); doubles per repeat.
    pub trouble_base: Duration,
    pub trouble_max: Duration,
    /// Whether upstream trouble also counts toward `blacklist_threshold`.
    pub trouble_counts: bool,
    /// Whether a rate limit rests the key for the request's model or as a whole.
    pub rest_scope: RestScope,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            blacklist_threshold: 3,
            rate_limit_base: Duration::from_secs(30),
            rate_limit_max: Duration::from_secs(300),
            retry_after_max: Duration::from_secs(86_400),
            trouble_base: Duration::from_secs(5),
            trouble_max: Duration::from_secs(60),
            trouble_counts: false,
            rest_scope: RestScope::Model,
        }
    }
}

/// Where a key is in its life (a rest is not a state: the key stays active and in rotation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Active,
    Invalid,
    Disabled,
}

/// What a failure would do to a key, before the pool decides whether to allow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changes.
    None,
    /// The failure count goes up; the key stays usable.
    Counted,
    /// The key rests for `model` (`None`: the whole key) until `until`.
    Rest {
        until: Instant,
        model: Option<Arc<str>>,
        counted: bool,
    },
    /// The key is blacklisted.
    Blacklist,
}

/// One key's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHealth {
    pub state: State,
    /// Cumulative counted failures (GPT-Load semantics: successes do not reset it).
    pub failure_count: i64,
    /// Consecutive whole-key rests, for the exponential backoff; reset by a success.
    pub cooldown_level: u32,
    /// Consecutive rests per model, for the backoff of per-model rate limits.
    pub model_levels: ModelLevels,
    pub last_failure: Option<FailureClass>,
    pub last_failed_at: Option<Instant>,
}

/// Consecutive rests per model. Most keys never have one, so the map is boxed: an empty one costs
/// a pointer, not a map's 48 bytes, in every one of a pool's (up to 100,000s of) keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
// The box is the point: `Option<Box<_>>` is one word where the map itself is six.
#[allow(clippy::box_collection)]
pub struct ModelLevels(Option<Box<HashMap<Arc<str>, u32>>>);

impl ModelLevels {
    /// The level of `model`, if it has one.
    pub fn get(&self, model: &str) -> Option<u32> {
        self.0.as_ref()?.get(model).copied()
    }

    /// The level of `model`, 0 when it had none, to update in place.
    pub fn entry(&mut self, model: &Arc<str>) -> &mut u32 {
        self.0
            .get_or_insert_with(Box::default)
            .entry(Arc::clone(model))
            .or_insert(0)
    }

    /// Forgets `model`'s level.
    pub fn remove(&mut self, model: &str) {
        if let Some(levels) = &mut self.0 {
            levels.remove(model);
            if levels.is_empty() {
                self.0 = None;
            }
        }
    }

    /// Forgets every level.
    pub fn clear(&mut self) {
        self.0 = None;
    }

    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|levels| levels.is_empty())
    }
}

fn backoff(base: Duration, max: Duration, level: u32) -> Duration {
    base.saturating_mul(1u32 << level.min(20)).min(max)
}

impl KeyHealth {
    /// A key in a stored state.
    pub fn new(state: State, failure_count: i64) -> Self {
        Self {
            state,
            failure_count,
            cooldown_level: 0,
            model_levels: ModelLevels::default(),
            last_failure: None,
            last_failed_at: None,
        }
    }

    /// What a failure of `class` on a request for `model` would do, without changing anything.
    pub fn plan(
        &self,
        class: FailureClass,
        policy: &HealthPolicy,
        model: Option<&Arc<str>>,
        now: Instant,
    ) -> Transition {
        if matches!(self.state, State::Invalid | State::Disabled) {
            return Transition::None;
        }
        let counts_to_blacklist =
            |n: i64| policy.blacklist_threshold > 0 && n >= policy.blacklist_threshold;
        match class {
            FailureClass::RequestFault => Transition::None,
            FailureClass::KeyDead => {
                if counts_to_blacklist(self.failure_count + 1) {
                    Transition::Blacklist
                } else {
                    Transition::Counted
                }
            }
            FailureClass::RateLimited { retry_after } => {
                let model = match policy.rest_scope {
                    RestScope::Model => model.cloned(),
                    RestScope::Key => None,
                };
                let level = match &model {
                    Some(m) => self.model_levels.get(m).unwrap_or(0),
                    None => self.cooldown_level,
                };
                let rest = match retry_after {
                    Some(after) => after.min(policy.retry_after_max),
                    None => backoff(policy.rate_limit_base, policy.rate_limit_max, level),
                };
                Transition::Rest {
                    until: now + rest,
                    model,
                    counted: false,
                }
            }
            FailureClass::UpstreamTrouble => {
                if policy.trouble_counts && counts_to_blacklist(self.failure_count + 1) {
                    return Transition::Blacklist;
                }
                let rest = backoff(policy.trouble_base, policy.trouble_max, self.cooldown_level);
                if rest.is_zero() {
                    if policy.trouble_counts {
                        Transition::Counted
                    } else {
                        Transition::None
                    }
                } else {
                    Transition::Rest {
                        until: now + rest,
                        model: None,
                        counted: policy.trouble_counts,
                    }
                }
            }
        }
    }

    /// Applies a planned transition. `allow_blacklist` false (the pool floor) keeps the key in
    /// rotation but still counts the failure; a blacklisting then waits for the next failure.
    pub fn apply(
        &mut self,
        class: FailureClass,
        transition: &Transition,
        allow_blacklist: bool,
        now: Instant,
    ) {
        self.last_failure = Some(class);
        if class != FailureClass::RequestFault {
            self.last_failed_at = Some(now);
        }
        match transition {
            Transition::None => {}
            Transition::Counted => self.failure_count += 1,
            Transition::Rest { model, counted, .. } => {
                if *counted {
                    self.failure_count += 1;
                }
                let level = match model {
                    Some(m) => self.model_levels.entry(m),
                    None => &mut self.cooldown_level,
                };
                *level = level.saturating_add(1);
            }
            Transition::Blacklist => {
                self.failure_count += 1;
                if allow_blacklist {
                    self.state = State::Invalid;
                }
            }
        }
    }

    /// Forgets the backoff of a key that has not failed for twice the longest cooldown: proxied
    /// successes are not reported (they cost a message per request), so quiet time stands in.
    pub fn decay(&mut self, policy: &HealthPolicy, now: Instant) {
        let quiet = policy
            .rate_limit_max
            .max(policy.trouble_max)
            .saturating_mul(2);
        if self
            .last_failed_at
            .is_some_and(|t| now.saturating_duration_since(t) > quiet)
        {
            self.on_success();
        }
    }

    /// A successful attempt: the backoff starts over (the failure count stays, as in GPT-Load).
    pub fn on_success(&mut self) {
        self.cooldown_level = 0;
        self.model_levels.clear();
    }

    /// Validation passed or an operator restored the key.
    pub fn restore(&mut self) {
        self.state = State::Active;
        self.failure_count = 0;
        self.on_success();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy::default()
    }

    fn fail(
        h: &mut KeyHealth,
        class: FailureClass,
        model: Option<&str>,
        now: Instant,
    ) -> Transition {
        let model: Option<Arc<str>> = model.map(Arc::from);
        let t = h.plan(class, &policy(), model.as_ref(), now);
        h.apply(class, &t, true, now);
        t
    }

    fn rest_until(t: &Transition) -> Option<(Instant, Option<&str>)> {
        match t {
            Transition::Rest { until, model, .. } => Some((*until, model.as_deref())),
            _ => None,
        }
    }

    #[test]
    fn dead_keys_are_blacklisted_at_the_threshold_only() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Active, 0);
        assert_eq!(
            fail(&mut h, FailureClass::KeyDead, None, now),
            Transition::Counted
        );
        assert_eq!(
            fail(&mut h, FailureClass::KeyDead, None, now),
            Transition::Counted
        );
        assert_eq!(h.state, State::Active);
        assert_eq!(
            fail(&mut h, FailureClass::KeyDead, None, now),
            Transition::Blacklist
        );
        assert_eq!(h.state, State::Invalid);
        h.restore();
        assert!(h.state == State::Active && h.failure_count == 0);
    }

    #[test]
    fn rate_limits_rest_for_retry_after_or_a_doubling_backoff_per_model() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Active, 0);
        let wait = FailureClass::RateLimited {
            retry_after: Some(Duration::from_secs(12)),
        };
        let t = fail(&mut h, wait, Some("m1"), now);
        assert_eq!(
            rest_until(&t),
            Some((now + Duration::from_secs(12), Some("m1")))
        );
        assert_eq!(
            h.failure_count, 0,
            "rate limits never count toward the blacklist"
        );
        let limited = FailureClass::RateLimited { retry_after: None };
        let t = fail(&mut h, limited, Some("m1"), now);
        assert_eq!(
            rest_until(&t),
            Some((now + Duration::from_secs(60), Some("m1"))),
            "second rest of m1: 30 s doubled"
        );
        let t = fail(&mut h, limited, Some("m2"), now);
        assert_eq!(
            rest_until(&t),
            Some((now + Duration::from_secs(30), Some("m2"))),
            "another model has its own backoff"
        );
        h.on_success();
        let t = fail(&mut h, limited, Some("m1"), now);
        assert_eq!(
            rest_until(&t),
            Some((now + Duration::from_secs(30), Some("m1")))
        );
        let capped = fail(
            &mut KeyHealth::new(State::Active, 0),
            FailureClass::RateLimited {
                retry_after: Some(Duration::from_secs(10 * 86_400)),
            },
            None,
            now,
        );
        assert_eq!(
            rest_until(&capped),
            Some((now + Duration::from_secs(86_400), None))
        );
    }

    #[test]
    fn key_scope_rests_the_whole_key_whatever_the_model() {
        let now = Instant::now();
        let h = KeyHealth::new(State::Active, 0);
        let key_scope = HealthPolicy {
            rest_scope: RestScope::Key,
            ..policy()
        };
        let model: Arc<str> = Arc::from("m1");
        let t = h.plan(
            FailureClass::RateLimited { retry_after: None },
            &key_scope,
            Some(&model),
            now,
        );
        assert_eq!(rest_until(&t), Some((now + Duration::from_secs(30), None)));
        let t = h.plan(FailureClass::UpstreamTrouble, &policy(), Some(&model), now);
        assert_eq!(
            rest_until(&t),
            Some((now + Duration::from_secs(5), None)),
            "upstream trouble rests the whole key"
        );
    }

    #[test]
    fn quiet_time_resets_the_backoff() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Active, 0);
        for _ in 0..3 {
            fail(
                &mut h,
                FailureClass::RateLimited { retry_after: None },
                None,
                now,
            );
            fail(
                &mut h,
                FailureClass::RateLimited { retry_after: None },
                Some("m"),
                now,
            );
        }
        h.decay(&policy(), now + Duration::from_secs(100));
        assert_eq!(h.cooldown_level, 3);
        h.decay(&policy(), now + Duration::from_secs(601));
        assert_eq!(h.cooldown_level, 0);
        assert!(h.model_levels.is_empty());
    }

    #[test]
    fn backoff_stops_at_its_maximum() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Active, 0);
        let mut last = Transition::None;
        for _ in 0..10 {
            last = fail(&mut h, FailureClass::UpstreamTrouble, None, now);
        }
        assert_eq!(
            rest_until(&last),
            Some((now + Duration::from_secs(60), None))
        );
        assert_eq!(
            h.failure_count, 0,
            "upstream trouble is not counted by default"
        );
    }

    #[test]
    fn upstream_trouble_counts_only_when_configured() {
        let now = Instant::now();
        let strict = HealthPolicy {
            trouble_counts: true,
            blacklist_threshold: 2,
            ..policy()
        };
        let mut h = KeyHealth::new(State::Active, 0);
        let t = h.plan(FailureClass::UpstreamTrouble, &strict, None, now);
        h.apply(FailureClass::UpstreamTrouble, &t, true, now);
        assert_eq!(h.failure_count, 1);
        let t = h.plan(FailureClass::UpstreamTrouble, &strict, None, now);
        assert_eq!(t, Transition::Blacklist);
    }

    #[test]
    fn request_faults_leave_keys_alone() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Active, 1);
        fail(&mut h, FailureClass::RequestFault, None, now);
        assert_eq!((h.state, h.failure_count), (State::Active, 1));
    }

    #[test]
    fn the_floor_keeps_a_key_in_rotation_but_counts_it() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Active, 2);
        let t = h.plan(FailureClass::KeyDead, &policy(), None, now);
        h.apply(FailureClass::KeyDead, &t, false, now);
        assert_eq!((h.state, h.failure_count), (State::Active, 3));
    }

    #[test]
    fn disabled_keys_ignore_failures() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Disabled, 0);
        assert_eq!(
            fail(&mut h, FailureClass::KeyDead, None, now),
            Transition::None
        );
    }
}
