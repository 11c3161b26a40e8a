//! In-process mock of the OpenAI, Anthropic and Gemini upstream APIs for gpt-load's tests and benchmarks.
//!
//! The mock checks the API key it receives, answers in each provider's native wire format (JSON and
//! SSE), can be scripted per key to fail, and records every request for assertions.

mod formats;
mod handlers;
mod sse;
mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

use state::State;
pub use state::{Behavior, RecordedRequest};

/// Largest request body the mock accepts.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Start-up options of [`MockUpstream::start_with`].
#[derive(Clone, Debug)]
pub struct MockOptions {
    /// Accepted API keys.
    pub keys: Vec<String>,
    /// Accept every non-empty key (scripts still apply).
    pub accept_any_key: bool,
    /// Artificial delay before answering each request.
    pub latency: Duration,
    /// Number of actix worker threads (at least 1).
    pub workers: usize,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            keys: Vec::new(),
            accept_any_key: false,
            latency: Duration::ZERO,
            workers: 1,
            port: 0,
        }
    }
}

/// A running mock upstream server; stopped by [`MockUpstream::stop`] or on drop.
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    handle: ServerHandle,
}

impl MockUpstream {
    /// Starts on 127.0.0.1:0 with these accepted keys, on the current actix/tokio runtime.
    pub async fn start(keys: &[&str]) -> io::Result<MockUpstream> {
        Self::start_with(MockOptions {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ..MockOptions::default()
        })
        .await
    }

    /// Starts with explicit options (any key, latency, workers, port).
    pub async fn start_with(opts: MockOptions) -> io::Result<MockUpstream> {
        Self::start_inner(opts, true).await
    }

    /// Like [`MockUpstream::start_with`] but without the duplicate per-connection socket handle that
    /// [`Behavior::ResetMidStream`] uses to send a TCP reset (the abort is then a plain FIN, which some
    /// clients read as a normal end). Halves the file descriptors used; meant for benchmarks.
    pub async fn start_lean(opts: MockOptions) -> io::Result<MockUpstream> {
        Self::start_inner(opts, false).await
    }

    async fn start_inner(opts: MockOptions, reset_support: bool) -> io::Result<MockUpstream> {
        let state = Arc::new(State::new(&opts.keys, opts.accept_any_key, opts.latency));
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .default_service(web::to(handlers::dispatch))
        })
        .on_connect({
            let state = Arc::clone(&state);
            move |conn, ext| {
                if reset_support {
                    handlers::on_connect(conn, ext);
                    handlers::watch_close(conn, ext, &state);
                }
            }
        })
        .workers(opts.workers.max(1))
        .disable_signals()
        .shutdown_timeout(1)
        .bind(("127.0.0.1", opts.port))?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| io::Error::other("mock upstream: no bound address"))?;
        let server = server.run();
        let handle = server.handle();
        // The listening socket is bound already, so connections queue in the backlog until the
        // spawned server future starts its accept loop on the next scheduler turn.
        tokio::spawn(server);
        tokio::task::yield_now().await;
        Ok(MockUpstream {
            addr,
            state,
            handle,
        })
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds an accepted key.
    pub fn add_key(&self, key: &str) {
        self.state.add_key(key);
    }

    /// Scripted behaviour for one key, persistent until changed (pending `script_times` entries still run first).
    pub fn script(&self, key: &str, behavior: Behavior) {
        self.state.script(key, behavior);
    }

    /// Behaviour for the next `n` requests using this key, then back to the previous behaviour (calls queue up).
    pub fn script_times(&self, key: &str, behavior: Behavior, n: usize) {
        self.state.script_times(key, behavior, n);
    }

    /// Removes the persistent and pending scripts of a key.
    pub fn clear_script(&self, key: &str) {
        self.state.clear_script(key);
    }

    /// SSE shape for streamed replies: number of content chunks and delay between chunks (default 5, 0 ms).
    pub fn set_stream(&self, chunks: usize, interval: Duration) {
        self.state.set_stream(chunks, interval);
    }

    /// Turns storing of [`RecordedRequest`]s on or off (counters keep working); on by default.
    pub fn set_recording(&self, on: bool) {
        self.state.set_recording(on);
    }

    /// Every request received (also rejected ones), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// Number of requests received carrying this key (also rejected ones).
    pub fn requests_for_key(&self, key: &str) -> usize {
        self.state.requests_for_key(key)
    }

    /// Number of requests received in total (also rejected ones and ones without a key).
    pub fn total_requests(&self) -> usize {
        self.state.total_requests()
    }

    /// When clients closed connections that were still open on the mock's side (a proxy giving
    /// up on a pending answer, say), in order. Not recorded by [`MockUpstream::start_lean`].
    pub fn connection_closes(&self) -> Vec<std::time::Instant> {
        self.state.closes()
    }

    /// Forgets recorded requests and resets the request counters.
    pub fn clear_requests(&self) {
        self.state.clear_requests();
    }

    /// Number of content chunks produced so far by streamed responses (preamble and closing events not counted).
    pub fn chunks_sent(&self) -> usize {
        self.state.chunks_sent()
    }

    /// Stops the server, dropping open connections.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        // Sends the stop command right away; completion is not awaited.
        drop(self.handle.stop(false));
    }
}
