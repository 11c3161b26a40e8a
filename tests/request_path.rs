//! The request path hardened: no group enumeration, confined paths, admission after
//! authentication under a slow-body attack, cancellation when the client leaves, bounded body
//! memory (a real process, its RSS read from /proc) and an honest graceful stop (SIGTERM).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use gpt_load_mock_upstream::{Behavior, MockUpstream};
use serde_json::json;
use support::{TestServer, AUTH, PROXY_KEY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const K1: &str = "sk-path-key-0000001";
const K2: &str = "sk-path-key-0000002";

/// Final-row status codes and messages, oldest first.
async fn log_rows(db: &gpt_load::db::Database) -> Vec<(i32, String, String)> {
    // Scoped here: diesel's `load` would shadow `AtomicBool::load` elsewhere in this file.
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use gpt_load::db::schema::request_logs;
    use gpt_load::with_conn;
    let rows: Result<Vec<(i32, String, String)>, gpt_load::db::DbError> = async {
        Ok(with_conn!(db, conn => {
            request_logs::table
                .select((
                    request_logs::status_code,
                    request_logs::error_message,
                    request_logs::request_type,
                ))
                .order(request_logs::timestamp.asc())
                .load(conn)
                .await?
        }))
    }
    .await;
    rows.unwrap()
}

async fn status_of(t: &TestServer, path: &str, key: &str) -> StatusCode {
    t.client
        .post(t.url(path))
        .insert_header(("Authorization", format!("Bearer {key}")))
        .send_json(&json!({"model": "gpt-4o-mini", "messages": []}))
        .await
        .unwrap()
        .status()
}

#[actix_rt::test]
async fn a_wrong_key_gets_401_whether_the_group_exists_or_not() {
    let t = TestServer::start(&[K1]).await;
    t.create_group("real", &[K1], json!({})).await;
    let chat = "/v1/chat/completions";
    for group in ["real", "no-such-group"] {
        assert_eq!(
            status_of(&t, &format!("/proxy/{group}{chat}"), "sk-wrong").await,
            StatusCode::UNAUTHORIZED,
            "{group}"
        );
    }
    // A group's own key does not reveal other groups either.
    assert_eq!(
        status_of(&t, &format!("/proxy/no-such-group{chat}"), PROXY_KEY).await,
        StatusCode::UNAUTHORIZED
    );
    // Only a global proxy key (AUTH_KEY by default) learns that a group is unknown.
    assert_eq!(
        status_of(&t, &format!("/proxy/no-such-group{chat}"), AUTH).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_of(&t, &format!("/proxy/real{chat}"), PROXY_KEY).await,
        StatusCode::OK
    );
    t.stop().await;
}

#[actix_rt::test]
async fn dot_segments_never_reach_the_upstream() {
    let t = TestServer::start(&[K1]).await;
    t.create_group("g", &[K1], json!({})).await;
    for path in [
        "/proxy/g/../../tenantB/v1/chat/completions",
        "/proxy/g/v1/../../tenantB/v1/chat/completions",
        "/proxy/g/%2e%2e/%2e%2e/tenantB/v1/chat/completions",
        "/proxy/g/%2E%2E/tenantB/v1/chat/completions",
        "/proxy/g/.%2E/tenantB/v1/chat/completions",
        "/proxy/g/v1/./chat/completions",
        "/proxy/g/v1/..%2f..%2ftenantB/chat/completions",
    ] {
        assert_eq!(
            status_of(&t, path, PROXY_KEY).await,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    assert_eq!(t.mock.total_requests(), 0, "nothing was forwarded");
    assert_eq!(
        status_of(&t, "/proxy/g/v1/chat/completions", PROXY_KEY).await,
        StatusCode::OK
    );
    assert_eq!(t.mock.requests()[0].path, "/v1/chat/completions");
    t.stop().await;
}

#[actix_rt::test]
async fn a_client_leaving_cancels_the_upstream_at_once_without_charging_the_key() {
    let t = TestServer::start(&[K1, K2]).await;
    let gid = t
        .create_group("c", &[K1, K2], json!({"max_retries": 3}))
        .await;
    t.mock.script(K1, Behavior::Hang);
    t.mock.script(K2, Behavior::Hang);
    let impatient = awc::Client::builder()
        .timeout(Duration::from_millis(500))
        .finish();
    let sent = impatient
        .post(t.url("/proxy/c/v1/chat/completions"))
        .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
        .send_json(&json!({"model": "gpt-4o-mini", "messages": []}))
        .await;
    // The client has given up and closed its connection by now.
    let left = Instant::now();
    assert!(sent.is_err(), "the upstream never answers");
    let closed = support::wait_until(Duration::from_secs(5), || async {
        !t.mock.connection_closes().is_empty()
    })
    .await;
    assert!(closed, "the upstream connection is closed");
    let closed_at = t.mock.connection_closes()[0];
    let delay = closed_at.saturating_duration_since(left);
    eprintln!(
        "client disconnect -> upstream connection closed: {:.1} ms",
        delay.as_secs_f64() * 1000.0
    );
    assert!(delay < Duration::from_millis(100), "{delay:?}");
    assert_eq!(t.mock.total_requests(), 1, "nothing is retried");

    assert!(t.app().state.flush_logs().await);
    let rows = log_rows(&t.app().state.repo.db).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, 499);
    assert!(rows[0].1.contains("client disconnected"), "{rows:?}");
    let (_, keys) = t
        .get(&format!("/api/keys?group_id={gid}&page_size=10"))
        .await;
    for key in keys["data"]["items"].as_array().unwrap() {
        assert_eq!(key["failure_count"], 0, "the key is not charged: {key}");
        assert_eq!(key["status"], "active");
    }
    t.stop().await;
}

/// Trickles bodies at `path` (one byte every 200 ms of a declared 1000) over fresh connections
/// until `stop`; returns the statuses the server answered with.
async fn slow_body_attacker(
    addr: std::net::SocketAddr,
    path: &'static str,
    credential: Option<&'static str>,
    stop: Arc<AtomicBool>,
) -> Vec<u16> {
    let mut answers = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut socket) = tokio::net::TcpStream::connect(addr).await else {
            continue;
        };
        let auth = credential
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        );
        if socket.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        let mut reply = [0u8; 64];
        loop {
            tokio::select! {
                read = socket.read(&mut reply) => {
                    if let Ok(n) = read {
                        let text = String::from_utf8_lossy(&reply[..n]).into_owned();
                        if let Some(code) = text.split(' ').nth(1).and_then(|c| c.parse().ok()) {
                            answers.push(code);
                        }
                    }
                    break;
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop.load(Ordering::Relaxed) || socket.write_all(b" ").await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    answers
}

#[actix_rt::test]
async fn slow_bodies_with_or_without_a_credential_do_not_starve_proxied_traffic() {
    let t = TestServer::start_with(
        &[K1],
        &[
            ("MAX_CONCURRENT_REQUESTS", "20"),
            ("SERVER_READ_TIMEOUT", "1"),
        ],
    )
    .await;
    t.create_group("g", &[K1], json!({})).await;
    let addr = t.app().addr;
    for (label, path, credential) in [
        ("without credentials", "/api/auth/login", None),
        (
            "with a proxy key",
            "/proxy/g/v1/chat/completions",
            Some(PROXY_KEY),
        ),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        // Three times as many slow connections as there are slots.
        let attackers: Vec<_> = (0..60)
            .map(|_| {
                actix_rt::spawn(slow_body_attacker(
                    addr,
                    path,
                    credential,
                    Arc::clone(&stop),
                ))
            })
            .collect();
        // Let every attacker get its request head in.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let served = Arc::new(AtomicUsize::new(0));
        let total = 200;
        let started = Instant::now();
        let normal: Vec<_> = (0..4)
            .map(|_| {
                let served = Arc::clone(&served);
                let client = awc::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .finish();
                let url = t.url("/proxy/g/v1/chat/completions");
                actix_rt::spawn(async move {
                    for _ in 0..total / 4 {
                        let ok = client
                            .post(&url)
                            .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
                            .send_json(&json!({"model": "gpt-4o-mini", "messages": []}))
                            .await
                            .is_ok_and(|r| r.status() == StatusCode::OK);
                        if ok {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for n in normal {
            n.await.unwrap();
        }
        // Keep the attack up for at least one body deadline, so its 408s are seen.
        let elapsed = started.elapsed();
        if elapsed < Duration::from_millis(1500) {
            tokio::time::sleep(Duration::from_millis(1500) - elapsed).await;
        }
        stop.store(true, Ordering::Relaxed);
        let mut answers = Vec::new();
        for a in attackers {
            answers.extend(a.await.unwrap());
        }
        let served = served.load(Ordering::Relaxed);
        let percent = served as f64 * 100.0 / total as f64;
        eprintln!(
            "slow-body attack {label}: {served}/{total} normal requests served ({percent:.1} %), attackers answered {:?}",
            answers.iter().fold(std::collections::BTreeMap::new(), |mut m, c| {
                *m.entry(*c).or_insert(0) += 1;
                m
            })
        );
        assert!(percent >= 99.0, "{label}: {percent} %");
        assert!(
            answers.contains(&408),
            "{label}: trickled bodies get 408: {answers:?}"
        );
        assert!(
            !answers.contains(&503),
            "{label}: no slot was refused: {answers:?}"
        );
    }
    t.stop().await;
}

/// A `gpt-load` process of its own, killed if the test ends without stopping it.
struct Process {
    child: Option<std::process::Child>,
    base: String,
    dsn: String,
    client: awc::Client,
}

impl Process {
    async fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Process {
        let dsn = support::test_database_dsn(dir);
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // GPT_LOAD_BIN measures another build (main's, say) with the same test.
        let bin = std::env::var("GPT_LOAD_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_gpt-load").to_string());
        let mut cmd = std::process::Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AUTH_KEY", AUTH)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("DATABASE_DSN", &dsn)
            .env("LOG_LEVEL", "warn")
            .current_dir(dir)
            // Kept for a failing test to print (`Process::log`).
            .stdout(std::fs::File::create(dir.join("gpt-load.log")).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let process = Process {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            dsn,
            client: awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish(),
        };
        let up = support::wait_until(Duration::from_secs(30), || async {
            process
                .client
                .get(format!("{}/health", process.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
        assert!(up, "the binary starts");
        process
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    async fn admin(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let mut res = self
            .client
            .post(format!("{}{path}", self.base))
            .insert_header(("Authorization", format!("Bearer {AUTH}")))
            .send_json(&body)
            .await
            .unwrap();
        res.json::<serde_json::Value>().await.unwrap()
    }

    async fn group(&self, mock: &MockUpstream, keys: &[&str]) {
        let res = self
            .admin(
                "/api/groups",
                json!({"name": "g", "channel_type": "openai", "test_model": "m", "proxy_keys": PROXY_KEY,
                       "upstreams": [{"url": mock.base_url(), "weight": 1}]}),
            )
            .await;
        let gid = res["data"]["id"].as_i64().unwrap();
        self.admin(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": keys.join("\n")}),
        )
        .await;
    }

    /// Peak resident memory of the process so far (`VmHWM`), in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kb * 1024
    }

    async fn sigterm_and_wait(&mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let mut child = self.child.take().unwrap();
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A body sent in 64 KiB slices with its length declared, so the test client holds no copy.
fn sliced(
    body: bytes::Bytes,
) -> actix_web::body::SizedStream<
    impl futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>>,
> {
    let len = body.len();
    let slices: Vec<Result<bytes::Bytes, std::convert::Infallible>> = (0..len)
        .step_by(64 * 1024)
        .map(|start| Ok(body.slice(start..(start + 64 * 1024).min(len))))
        .collect();
    actix_web::body::SizedStream::new(len as u64, futures_util::stream::iter(slices))
}

#[actix_rt::test]
async fn twenty_large_bodies_at_once_stay_within_the_body_memory_budget() {
    if support::sqlite_only("twenty_large_bodies_at_once_stay_within_the_body_memory_budget") {
        return;
    }
    const BUDGET_MB: u64 = 128;
    let mock = MockUpstream::start(&[K1]).await.unwrap();
    mock.set_recording(false);
    let dir = tempfile::tempdir().unwrap();
    let process = Process::start(dir.path(), &[("REQUEST_BODY_MEMORY_MB", "128")]).await;
    process.group(&mock, &[K1]).await;
    let before = process.peak_rss();
    // A chat request padded to 30 MB of JSON.
    let padding = "x".repeat(30 * 1000 * 1000);
    let body = bytes::Bytes::from(
        serde_json::to_vec(
            &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": padding}]}),
        )
        .unwrap(),
    );
    let url = format!("{}/proxy/g/v1/chat/completions", process.base);
    let sends: Vec<_> = (0..20)
        .map(|_| {
            let body = body.clone();
            let url = url.clone();
            actix_rt::spawn(async move {
                let client = awc::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .finish();
                match client
                    .post(url)
                    .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
                    .insert_header(("Content-Type", "application/json"))
                    .send_body(sliced(body))
                    .await
                {
                    Ok(res) => (
                        res.status().as_u16(),
                        res.headers().contains_key("retry-after"),
                    ),
                    // Refused before the whole body was sent: the server closed the connection.
                    Err(_) => (0, false),
                }
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for s in sends {
        outcomes.push(s.await.unwrap());
    }
    let peak = process.peak_rss();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let ok = outcomes.iter().filter(|o| o.0 == 200).count();
    let refused = outcomes.iter().filter(|o| o.0 == 503).count();
    eprintln!(
        "20 x 30 MB bodies: peak RSS {:.0} MiB (before the bodies {:.0} MiB), {ok} served, {refused} refused with 503, outcomes {outcomes:?}",
        mib(peak),
        mib(before)
    );
    assert!(ok >= 1, "some bodies fit the budget: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| o.0 == 200 || (o.0 == 503 && o.1) || o.0 == 0),
        "served, or refused with 503 and Retry-After: {outcomes:?}"
    );
    assert!(
        peak < (BUDGET_MB + 100) * 1024 * 1024,
        "peak RSS {:.0} MiB",
        mib(peak)
    );
}

#[actix_rt::test]
async fn sigterm_lets_slow_requests_finish_and_records_the_cut_ones_as_cut() {
    if support::sqlite_only("sigterm_lets_slow_requests_finish_and_records_the_cut_ones_as_cut") {
        return;
    }
    let mock = MockUpstream::start(&[K1, K2]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut process =
        Process::start(dir.path(), &[("SERVER_GRACEFUL_SHUTDOWN_TIMEOUT", "10")]).await;
    process.group(&mock, &[K1]).await;
    // Rows are written by the graceful stop, not before.
    process
        .client
        .put(format!("{}/api/settings", process.base))
        .insert_header(("Authorization", format!("Bearer {AUTH}")))
        .send_json(&json!({"request_log_write_interval_minutes": 60}))
        .await
        .unwrap();
    // A stream of 7 chunks a second apart: it outlives the old 5 s cut, not the 10 s timeout.
    mock.set_stream(7, Duration::from_secs(1));
    let request = |stream: bool| {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        let url = format!("{}/proxy/g/v1/chat/completions", process.base);
        actix_rt::spawn(async move {
            let mut res = client
                .post(url)
                .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
                .send_json(&json!({"model": "gpt-4o-mini", "messages": [], "stream": stream}))
                .await
                .ok()?;
            let status = res.status().as_u16();
            let body = res.body().limit(1 << 20).await.ok()?;
            Some((status, String::from_utf8_lossy(&body).into_owned()))
        })
    };
    let slow = request(true);
    let reached = support::wait_until(Duration::from_secs(10), || async {
        mock.total_requests() >= 1
    })
    .await;
    assert!(reached);
    // The next request on this key never gets an answer: the stop deadline must cut it.
    mock.script_times(K1, Behavior::Hang, 1);
    let hung = request(false);
    let reached = support::wait_until(Duration::from_secs(10), || async {
        mock.total_requests() >= 2
    })
    .await;
    assert!(reached);
    let term = Instant::now();
    let exit = process.sigterm_and_wait().await;
    let stopped_after = term.elapsed();
    assert!(exit.success(), "{exit:?}");
    let slow = slow.await.unwrap();
    let hung = hung.await.unwrap();
    eprintln!("stopped after {stopped_after:?}; slow stream {slow:?}; hung request {hung:?}");
    let (status, body) = slow.expect("the slow stream completes");
    assert_eq!(status, 200);
    assert!(body.contains("[DONE]"), "the whole stream arrived: {body}");
    assert_eq!(hung.map(|h| h.0), Some(503), "the cut request is told so");
    assert!(
        stopped_after >= Duration::from_secs(10) && stopped_after < Duration::from_secs(14),
        "{stopped_after:?}"
    );
    let db = gpt_load::db::Database::connect(
        &gpt_load::db::DatabaseUrl::parse(&process.dsn).unwrap(),
        1,
    )
    .await
    .unwrap();
    let rows = log_rows(&db).await;
    eprintln!("rows: {rows:?}");
    // Shown only when an assertion below fails: what the server said while it stopped.
    eprintln!(
        "server log:\n{}",
        std::fs::read_to_string(dir.path().join("gpt-load.log")).unwrap_or_default()
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().any(|r| r.0 == 200), "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r.0 == 503 && r.1.contains("server stopped")),
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r.0 != 499), "{rows:?}");
}
