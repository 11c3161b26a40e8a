//! Shared state of a running mock: accepted keys, per-key scripts, recorded requests and counters.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::HttpRequest;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

/// What the mock does with a request that carries an accepted key.
#[derive(Clone, Debug, PartialEq)]
pub enum Behavior {
    /// Answer normally in the provider's wire format.
    Ok,
    /// 401 with the provider's error JSON (key invalid); Gemini native paths answer 400 `API_KEY_INVALID` like the real API.
    Unauthorized,
    /// 429 with `Retry-After: secs` header and provider rate-limit error JSON.
    RateLimited {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// 500 with provider error JSON.
    ServerError,
    /// Any status with a given raw body (content-type application/json).
    Status {
        /// HTTP status code (an invalid code becomes 500).
        code: u16,
        /// Raw response body.
        body: String,
    },
    /// Never answers (sleeps ~1 hour); the client must time out.
    Hang,
    /// Streamed requests: send the preamble and `after_chunks` content chunks, then abort the connection
    /// without a proper end. Non-streamed requests: send headers and half of the body, then abort.
    ResetMidStream {
        /// Number of content chunks written before the abort (streamed requests only).
        after_chunks: usize,
    },
}

/// One request as received by the mock (recorded before any key check).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Key extracted from `?key=`, `Authorization: Bearer`, `x-api-key` or `x-goog-api-key` (in that order).
    pub key: Option<String>,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path without the query string.
    pub path: String,
    /// Raw query string (without `?`), empty when absent.
    pub query: String,
    /// All request headers, names lowercase, in received order.
    pub headers: Vec<(String, String)>,
    /// Raw request body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// First value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Script {
    base: Option<Behavior>,
    pending: VecDeque<(Behavior, usize)>,
}

/// Mutable state shared between the handle and the server workers.
pub(crate) struct State {
    keys: RwLock<HashSet<String>>,
    accept_any_key: bool,
    pub(crate) latency: Duration,
    scripts: Mutex<HashMap<String, Script>>,
    has_scripts: AtomicBool,
    stream_chunks: AtomicUsize,
    stream_interval_ns: AtomicU64,
    record: AtomicBool,
    requests: Mutex<Vec<RecordedRequest>>,
    per_key: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
    chunks_sent: AtomicUsize,
    /// When a client closed a connection while it was still open on this side.
    closes: Mutex<Vec<std::time::Instant>>,
    next_id: AtomicU64,
}

impl State {
    pub(crate) fn new(keys: &[String], accept_any_key: bool, latency: Duration) -> Self {
        State {
            keys: RwLock::new(keys.iter().cloned().collect()),
            accept_any_key,
            latency,
            scripts: Mutex::new(HashMap::new()),
            has_scripts: AtomicBool::new(false),
            stream_chunks: AtomicUsize::new(5),
            stream_interval_ns: AtomicU64::new(0),
            record: AtomicBool::new(true),
            requests: Mutex::new(Vec::new()),
            per_key: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
            chunks_sent: AtomicUsize::new(0),
            closes: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn add_key(&self, key: &str) {
        self.keys.write().insert(key.to_owned());
    }

    pub(crate) fn is_accepted(&self, key: &str) -> bool {
        self.accept_any_key || self.keys.read().contains(key)
    }

    pub(crate) fn script(&self, key: &str, behavior: Behavior) {
        let mut scripts = self.scripts.lock();
        scripts.entry(key.to_owned()).or_default().base = Some(behavior);
        self.has_scripts.store(true, Ordering::Release);
    }

    pub(crate) fn script_times(&self, key: &str, behavior: Behavior, n: usize) {
        if n == 0 {
            return;
        }
        let mut scripts = self.scripts.lock();
        scripts
            .entry(key.to_owned())
            .or_default()
            .pending
            .push_back((behavior, n));
        self.has_scripts.store(true, Ordering::Release);
    }

    pub(crate) fn clear_script(&self, key: &str) {
        let mut scripts = self.scripts.lock();
        scripts.remove(key);
        if scripts.is_empty() {
            self.has_scripts.store(false, Ordering::Release);
        }
    }

    /// Behaviour for the current request with an accepted key; consumes one use of a `script_times` entry.
    pub(crate) fn next_behavior(&self, key: &str) -> Behavior {
        if !self.has_scripts.load(Ordering::Acquire) {
            return Behavior::Ok;
        }
        let mut scripts = self.scripts.lock();
        let Some(script) = scripts.get_mut(key) else {
            return Behavior::Ok;
        };
        if let Some((behavior, remaining)) = script.pending.front_mut() {
            let out = behavior.clone();
            *remaining -= 1;
            if *remaining == 0 {
                script.pending.pop_front();
            }
            return out;
        }
        script.base.clone().unwrap_or(Behavior::Ok)
    }

    pub(crate) fn set_stream(&self, chunks: usize, interval: Duration) {
        self.stream_chunks.store(chunks, Ordering::Relaxed);
        let ns = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        self.stream_interval_ns.store(ns, Ordering::Relaxed);
    }

    pub(crate) fn stream_shape(&self) -> (usize, Duration) {
        (
            self.stream_chunks.load(Ordering::Relaxed),
            Duration::from_nanos(self.stream_interval_ns.load(Ordering::Relaxed)),
        )
    }

    pub(crate) fn set_recording(&self, on: bool) {
        self.record.store(on, Ordering::Relaxed);
    }

    /// Counts the request and, when recording is on, stores a copy of it.
    pub(crate) fn record(&self, key: Option<&str>, req: &HttpRequest, body: &Bytes) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(key) = key {
            let mut per_key = self.per_key.lock();
            match per_key.get_mut(key) {
                Some(n) => *n += 1,
                None => {
                    per_key.insert(key.to_owned(), 1);
                }
            }
        }
        if !self.record.load(Ordering::Relaxed) {
            return;
        }
        let recorded = RecordedRequest {
            key: key.map(str::to_owned),
            method: req.method().as_str().to_owned(),
            path: req.path().to_owned(),
            query: req.query_string().to_owned(),
            headers: req
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.clone(),
        };
        self.requests.lock().push(recorded);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().clone()
    }

    pub(crate) fn requests_for_key(&self, key: &str) -> usize {
        self.per_key.lock().get(key).copied().unwrap_or(0)
    }

    pub(crate) fn record_close(&self) {
        self.closes.lock().push(std::time::Instant::now());
    }

    pub(crate) fn closes(&self) -> Vec<std::time::Instant> {
        self.closes.lock().clone()
    }

    pub(crate) fn total_requests(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    pub(crate) fn clear_requests(&self) {
        self.requests.lock().clear();
        self.per_key.lock().clear();
        self.total.store(0, Ordering::Relaxed);
    }

    pub(crate) fn chunk_sent(&self) {
        self.chunks_sent.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn chunks_sent(&self) -> usize {
        self.chunks_sent.load(Ordering::Acquire)
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn script_times_overlays_base_and_queues() {
        let s = State::new(&["k".to_owned()], false, Duration::ZERO);
        assert_eq!(s.next_behavior("k"), Behavior::Ok);
        s.script("k", Behavior::ServerError);
        s.script_times("k", Behavior::Hang, 1);
        s.script_times("k", Behavior::Unauthorized, 2);
        assert_eq!(s.next_behavior("k"), Behavior::Hang);
        assert_eq!(s.next_behavior("k"), Behavior::Unauthorized);
        assert_eq!(s.next_behavior("k"), Behavior::Unauthorized);
        assert_eq!(s.next_behavior("k"), Behavior::ServerError);
        assert_eq!(s.next_behavior("other"), Behavior::Ok);
        s.clear_script("k");
        assert_eq!(s.next_behavior("k"), Behavior::Ok);
    }
}
