//! One key's health as an explicit state machine, pure and driven by the caller's clock:
//!
//! ```text
//! active ──rate limited / upstream trouble──▶ cooling down(level) ──time passes──▶ active
//! active ──key dead × blacklist_threshold──▶ invalid ──validation / restore──▶ active
//! any ──operator──▶ disabled ──operator──▶ active
//! ```
//!
//! Request faults and clients going away never touch a key.

use std::time::{Duration, Instant};

/// Why an attempt failed, decided from structured data (status, provider error fields,
/// `Retry-After`, transport error kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// The key is invalid, revoked or out of credit.
    KeyDead,
    /// The key is over its rate or quota for now; `retry_after` when the upstream said so.
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, connect errors, timeouts: the upstream's trouble, not the key's.
    UpstreamTrouble,
    /// The request itself was wrong (bad body, unknown model, wrong path).
    RequestFault,
    /// The client disconnected.
    ClientGone,
}

impl FailureClass {
    /// A short name for logs and the key list.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::KeyDead => "key_dead",
            FailureClass::RateLimited { .. } => "rate_limited",
            FailureClass::UpstreamTrouble => "upstream_trouble",
            FailureClass::RequestFault => "request_fault",
            FailureClass::ClientGone => "client_gone",
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
        }
    }
}

/// Where a key is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Active,
    CoolingDown { until: Instant },
    Invalid,
    Disabled,
}

/// What a failure would do to a key, before the pool decides whether to allow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changes.
    None,
    /// The failure count goes up; the key stays usable.
    Counted,
    /// The key rests until `until`.
    CoolDown { until: Instant, counted: bool },
    /// The key is blacklisted.
    Blacklist,
}

/// One key's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHealth {
    pub state: State,
    /// Cumulative counted failures (GPT-Load semantics: successes do not reset it).
    pub failure_count: i64,
    /// Consecutive cooldowns, for the exponential backoff; reset by a success.
    pub cooldown_level: u32,
    pub last_failure: Option<FailureClass>,
    pub last_failed_at: Option<Instant>,
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
            last_failure: None,
            last_failed_at: None,
        }
    }

    /// True when a lease may hand the key out at `now`; an expired cooldown ends here.
    pub fn usable(&mut self, now: Instant) -> bool {
        match self.state {
            State::Active => true,
            State::CoolingDown { until } if until <= now => {
                self.state = State::Active;
                true
            }
            _ => false,
        }
    }

    /// What a failure of `class` would do, without changing anything.
    pub fn plan(&self, class: FailureClass, policy: &HealthPolicy, now: Instant) -> Transition {
        if matches!(self.state, State::Invalid | State::Disabled) {
            return Transition::None;
        }
        let counts_to_blacklist =
            |n: i64| policy.blacklist_threshold > 0 && n >= policy.blacklist_threshold;
        match class {
            FailureClass::RequestFault | FailureClass::ClientGone => Transition::None,
            FailureClass::KeyDead => {
                if counts_to_blacklist(self.failure_count + 1) {
                    Transition::Blacklist
                } else {
                    Transition::Counted
                }
            }
            FailureClass::RateLimited { retry_after } => {
                let rest = match retry_after {
                    Some(after) => after.min(policy.retry_after_max),
                    None => backoff(
                        policy.rate_limit_base,
                        policy.rate_limit_max,
                        self.cooldown_level,
                    ),
                };
                Transition::CoolDown {
                    until: now + rest,
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
                    Transition::CoolDown {
                        until: now + rest,
                        counted: policy.trouble_counts,
                    }
                }
            }
        }
    }

    /// Applies a planned transition. `allow_unusable` false (the pool floor) keeps the key usable
    /// but still counts the failure; a blacklisting then waits for the next failure.
    pub fn apply(
        &mut self,
        class: FailureClass,
        transition: Transition,
        allow_unusable: bool,
        now: Instant,
    ) {
        self.last_failure = Some(class);
        if !matches!(class, FailureClass::RequestFault | FailureClass::ClientGone) {
            self.last_failed_at = Some(now);
        }
        match transition {
            Transition::None => {}
            Transition::Counted => self.failure_count += 1,
            Transition::CoolDown { until, counted } => {
                if counted {
                    self.failure_count += 1;
                }
                if allow_unusable {
                    self.state = State::CoolingDown { until };
                    self.cooldown_level = self.cooldown_level.saturating_add(1);
                }
            }
            Transition::Blacklist => {
                self.failure_count += 1;
                if allow_unusable {
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
            self.cooldown_level = 0;
        }
    }

    /// A successful attempt: the backoff starts over (the failure count stays, as in GPT-Load).
    pub fn on_success(&mut self) {
        self.cooldown_level = 0;
    }

    /// Validation passed or an operator restored the key.
    pub fn restore(&mut self) {
        self.state = State::Active;
        self.failure_count = 0;
        self.cooldown_level = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy::default()
    }

    fn fail(h: &mut KeyHealth, class: FailureClass, now: Instant) -> Transition {
        let t = h.plan(class, &policy(), now);
        h.apply(class, t, true, now);
        t
    }

    #[test]
    fn dead_keys_are_blacklisted_at_the_threshold_only() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Active, 0);
        assert_eq!(
            fail(&mut h, FailureClass::KeyDead, now),
            Transition::Counted
        );
        assert_eq!(
            fail(&mut h, FailureClass::KeyDead, now),
            Transition::Counted
        );
        assert!(h.usable(now));
        assert_eq!(
            fail(&mut h, FailureClass::KeyDead, now),
            Transition::Blacklist
        );
        assert_eq!(h.state, State::Invalid);
        assert!(
            !h.usable(now + Duration::from_secs(1_000_000)),
            "only validation or restore revives it"
        );
        h.restore();
        assert!(h.usable(now) && h.failure_count == 0);
    }

    #[test]
    fn rate_limits_cool_down_for_retry_after_or_a_doubling_backoff() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Active, 0);
        fail(
            &mut h,
            FailureClass::RateLimited {
                retry_after: Some(Duration::from_secs(12)),
            },
            now,
        );
        assert!(!h.usable(now + Duration::from_secs(11)));
        assert!(h.usable(now + Duration::from_secs(12)));
        assert_eq!(
            h.failure_count, 0,
            "rate limits never count toward the blacklist"
        );
        let later = now + Duration::from_secs(100);
        fail(
            &mut h,
            FailureClass::RateLimited { retry_after: None },
            later,
        );
        assert_eq!(
            h.state,
            State::CoolingDown {
                until: later + Duration::from_secs(60)
            },
            "second cooldown: 30 s doubled"
        );
        h.on_success();
        fail(
            &mut h,
            FailureClass::RateLimited { retry_after: None },
            later,
        );
        assert_eq!(
            h.state,
            State::CoolingDown {
                until: later + Duration::from_secs(30)
            },
            "a success resets the backoff"
        );
        let mut capped = KeyHealth::new(State::Active, 0);
        fail(
            &mut capped,
            FailureClass::RateLimited {
                retry_after: Some(Duration::from_secs(10 * 86_400)),
            },
            now,
        );
        assert_eq!(
            capped.state,
            State::CoolingDown {
                until: now + Duration::from_secs(86_400)
            }
        );
    }

    #[test]
    fn quiet_time_resets_the_backoff() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Active, 0);
        for _ in 0..3 {
            fail(&mut h, FailureClass::RateLimited { retry_after: None }, now);
        }
        h.decay(&policy(), now + Duration::from_secs(100));
        assert_eq!(h.cooldown_level, 3);
        h.decay(&policy(), now + Duration::from_secs(601));
        assert_eq!(h.cooldown_level, 0);
    }

    #[test]
    fn backoff_stops_at_its_maximum() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Active, 0);
        for _ in 0..10 {
            fail(&mut h, FailureClass::UpstreamTrouble, now);
        }
        assert_eq!(
            h.state,
            State::CoolingDown {
                until: now + Duration::from_secs(60)
            }
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
        let t = h.plan(FailureClass::UpstreamTrouble, &strict, now);
        h.apply(FailureClass::UpstreamTrouble, t, true, now);
        assert_eq!(h.failure_count, 1);
        let t = h.plan(FailureClass::UpstreamTrouble, &strict, now);
        assert_eq!(t, Transition::Blacklist);
    }

    #[test]
    fn request_faults_and_departed_clients_leave_keys_alone() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Active, 1);
        fail(&mut h, FailureClass::RequestFault, now);
        fail(&mut h, FailureClass::ClientGone, now);
        assert_eq!((h.state, h.failure_count), (State::Active, 1));
    }

    #[test]
    fn the_floor_keeps_a_key_usable_but_counts_it() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Active, 2);
        let t = h.plan(FailureClass::KeyDead, &policy(), now);
        h.apply(FailureClass::KeyDead, t, false, now);
        assert_eq!((h.state, h.failure_count), (State::Active, 3));
    }

    #[test]
    fn disabled_keys_ignore_failures() {
        let now = Instant::now();
        let mut h = KeyHealth::new(State::Disabled, 0);
        assert_eq!(fail(&mut h, FailureClass::KeyDead, now), Transition::None);
        assert!(!h.usable(now));
    }
}
