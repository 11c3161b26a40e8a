//! Login throttling: failed admin-key attempts are counted per client address; past a few, each
//! answer is delayed, and past a limit the address is refused with 429 for a while. Per node and
//! in memory (no Redis round trip on the auth path); the table is capped so a flood of addresses
//! cannot grow it without bound.

use std::collections::hash_map::{HashMap, RandomState};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderMap;
use parking_lot::Mutex;

/// The limits of [`LoginThrottle`]. Fixed in code (see README, "Login throttling"); tests shorten
/// the times.
#[derive(Clone, Debug, PartialEq)]
pub struct ThrottleLimits {
    /// Failures answered at once.
    pub free_failures: u32,
    /// Delay added per failure past `free_failures`.
    pub delay_step: Duration,
    /// Longest delay of one answer.
    pub max_delay: Duration,
    /// The failure that locks the address out (answered 429 itself).
    pub lock_after: u32,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// How long a locked address is refused.
    pub lockout: Duration,
    /// Addresses tracked at most; past this, new addresses share one overflow entry.
    pub max_tracked: usize,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        ThrottleLimits {
            free_failures: 5,
            delay_step: Duration::from_millis(500),
            max_delay: Duration::from_secs(3),
            lock_after: 10,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
            max_tracked: 10_000,
        }
    }
}

/// What an attempt's answer must be.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The key was right.
    Granted,
    /// The key was wrong: answer 401 after `delay`.
    Denied { delay: Duration },
    /// The address is locked out (or just became so): answer 429 with `Retry-After`. The key
    /// was not compared, so a lucky guess during the lockout learns nothing.
    Locked { retry_after: Duration },
}

/// Wrong keys remembered per address, so that a client repeating the same stale key (an open
/// admin page after a key change fires several calls at once) counts once, not once per call.
const RECENT_GUESSES: usize = 8;

#[derive(Debug)]
struct Entry {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
    recent: [u64; RECENT_GUESSES],
    recent_len: usize,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Entry {
            failures: 0,
            window_start: now,
            locked_until: None,
            recent: [0; RECENT_GUESSES],
            recent_len: 0,
        }
    }

    fn is_stale(&self, now: Instant, limits: &ThrottleLimits) -> bool {
        self.locked_until.is_none_or(|until| until <= now)
            && now.duration_since(self.window_start) >= limits.window
    }

    /// Remembers `guess`; false when it was one of the recent wrong keys already.
    fn remember(&mut self, guess: u64) -> bool {
        if self.recent[..self.recent_len].contains(&guess) {
            return false;
        }
        self.recent[self.recent_len % RECENT_GUESSES] = guess;
        self.recent_len = (self.recent_len + 1).min(RECENT_GUESSES);
        true
    }
}

/// Where every address past `max_tracked` is counted: together, so that spreading guesses over
/// many addresses does not escape the limit.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// Per-address failure counts and lockouts of admin-key attempts.
#[derive(Debug)]
pub struct LoginThrottle {
    limits: ThrottleLimits,
    entries: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    by_addr: HashMap<IpAddr, Entry>,
    /// Keyed per process, so a remembered wrong key cannot be looked up from its hash elsewhere.
    hasher: RandomState,
}

impl LoginThrottle {
    pub fn new(limits: ThrottleLimits) -> Self {
        LoginThrottle {
            limits,
            entries: Mutex::new(Table {
                by_addr: HashMap::new(),
                hasher: RandomState::new(),
            }),
        }
    }

    /// Decides one attempt from `addr` with credential `given`; `is_right` does the comparison.
    /// The lockout check, the comparison and the count happen under one lock, so parallel
    /// requests cannot slip extra guesses past the limit.
    pub fn attempt(&self, addr: IpAddr, given: &str, is_right: impl FnOnce() -> bool) -> Outcome {
        let now = Instant::now();
        let mut table = self.entries.lock();
        let key = table.key_for(bucket(addr), now, &self.limits);
        if let Some(until) = table.by_addr.get(&key).and_then(|e| e.locked_until) {
            if until > now {
                return Outcome::Locked {
                    retry_after: until - now,
                };
            }
        }
        if is_right() {
            table.by_addr.remove(&key);
            return Outcome::Granted;
        }
        let guess = table.hasher.hash_one(given);
        let entry = table.by_addr.entry(key).or_insert_with(|| Entry::new(now));
        self.count_failure(entry, guess, now)
    }

    fn count_failure(&self, entry: &mut Entry, guess: u64, now: Instant) -> Outcome {
        let limits = &self.limits;
        if entry.is_stale(now, limits) {
            *entry = Entry::new(now);
        }
        if entry.remember(guess) {
            entry.failures += 1;
        }
        if entry.failures >= limits.lock_after {
            entry.locked_until = Some(now + limits.lockout);
            return Outcome::Locked {
                retry_after: limits.lockout,
            };
        }
        let extra = entry.failures.saturating_sub(limits.free_failures);
        Outcome::Denied {
            delay: (limits.delay_step * extra).min(limits.max_delay),
        }
    }

    /// Addresses tracked now (for tests and the cap).
    pub fn tracked(&self) -> usize {
        self.entries.lock().by_addr.len()
    }
}

impl Table {
    /// The entry `addr` is counted in: its own when tracked or when there is room (after
    /// dropping stale entries), else the shared overflow entry.
    fn key_for(&mut self, addr: IpAddr, now: Instant, limits: &ThrottleLimits) -> IpAddr {
        if self.by_addr.contains_key(&addr) || self.by_addr.len() < limits.max_tracked {
            return addr;
        }
        self.by_addr.retain(|_, e| !e.is_stale(now, limits));
        if self.by_addr.len() < limits.max_tracked {
            addr
        } else {
            OVERFLOW
        }
    }
}

/// The unit counted: the address itself for IPv4, its /64 for IPv6 (one subscriber usually holds
/// a whole /64, and a limit per single v6 address would be no limit).
fn bucket(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// An address or a network (`10.0.0.0/8`, `fd00::/8`, `127.0.0.1`) in `TRUSTED_PROXIES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if self.addr.is_ipv4() => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            other => other,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0
}

/// The address a request comes from, for throttling: the TCP peer, unless the peer is a trusted
/// proxy; then the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (the
/// left part of that header is whatever the client wrote), else `X-Real-IP`. Without trusted
/// proxies these headers are ignored, so a client cannot pick its own address.
pub fn client_addr(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let Some(peer) = peer else {
        return OVERFLOW;
    };
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let header = |name: &str| {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
    };
    let forwarded = header("x-forwarded-for");
    for hop in forwarded
        .rsplit(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => continue,
            Ok(ip) => return ip,
            // A hop we cannot read: stop trusting the chain here.
            Err(_) => return peer,
        }
    }
    header("x-real-ip").trim().parse().unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn limits() -> ThrottleLimits {
        ThrottleLimits {
            free_failures: 2,
            delay_step: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
            lock_after: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(30),
            max_tracked: 3,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn failures_are_slowed_then_locked_and_a_right_key_resets() {
        let t = LoginThrottle::new(limits());
        let a = ip("192.0.2.1");
        let delays: Vec<_> = (0..4)
            .map(|i| t.attempt(a, &format!("guess-{i}"), || false))
            .collect();
        let ms = |d: u64| Outcome::Denied {
            delay: Duration::from_millis(d),
        };
        assert_eq!(delays, vec![ms(0), ms(0), ms(100), ms(200)]);
        // A repeated wrong key adds nothing.
        assert_eq!(t.attempt(a, "guess-3", || false), ms(200));
        assert!(matches!(
            t.attempt(a, "guess-4", || false),
            Outcome::Locked { .. }
        ));
        // Locked: even the right key is refused without being compared.
        let mut compared = false;
        let locked = t.attempt(a, "right", || {
            compared = true;
            true
        });
        assert!(
            matches!(locked, Outcome::Locked { retry_after } if retry_after <= Duration::from_secs(30))
        );
        assert!(!compared);
        // Another address is unaffected, and a right key clears its count.
        let b = ip("192.0.2.2");
        t.attempt(b, "x", || false);
        assert_eq!(t.attempt(b, "right", || true), Outcome::Granted);
        assert_eq!(t.attempt(b, "y", || false), ms(0));
    }

    #[test]
    fn the_table_is_capped_and_overflow_is_counted_together() {
        let t = LoginThrottle::new(limits());
        for i in 0..50 {
            t.attempt(ip(&format!("198.51.100.{i}")), &format!("g{i}"), || false);
        }
        assert_eq!(
            t.tracked(),
            3 + 1,
            "three addresses plus the overflow entry"
        );
        assert!(matches!(
            t.attempt(ip("203.0.113.9"), "another", || false),
            Outcome::Locked { .. }
        ));
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn networks_parse_and_match() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(IpNet::parse("127.0.0.1")
            .unwrap()
            .contains(ip("::ffff:127.0.0.1")));
        assert!(IpNet::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(IpNet::parse("10.0.0.0/33").is_none());
        assert!(IpNet::parse("nope").is_none());
        assert!(IpNet::parse("10.0.0.0/12")
            .unwrap()
            .contains(ip("10.15.0.1")));
        assert!(!IpNet::parse("10.0.0.0/12")
            .unwrap()
            .contains(ip("10.16.0.1")));
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_static("1.1.1.1, 203.0.113.5, 10.0.0.2"),
        );
        let trusted = [IpNet::parse("10.0.0.0/8").unwrap()];
        let peer = Some(ip("10.0.0.1"));
        assert_eq!(client_addr(peer, &headers, &trusted), ip("203.0.113.5"));
        assert_eq!(client_addr(peer, &headers, &[]), ip("10.0.0.1"));
        let outsider = Some(ip("198.51.100.1"));
        assert_eq!(
            client_addr(outsider, &headers, &trusted),
            ip("198.51.100.1")
        );
        let mut real = HeaderMap::new();
        real.insert(
            HeaderName::from_static("x-real-ip"),
            HeaderValue::from_static("203.0.113.8"),
        );
        assert_eq!(client_addr(peer, &real, &trusted), ip("203.0.113.8"));
    }
}
