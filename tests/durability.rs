//! What a crash or an outage costs: request logs lost to a SIGKILL under steady load (at most about
//! a second of traffic), a killed `migrate-keys` not blocking the next start on the same host, and
//! admin calls answering 503 quickly while the database hangs and the proxy keeps serving.
//!
//! `GPT_LOAD_TEST_BIN` points the process tests at another build of the binary (to measure an
//! older version with the same harness); by default they run this crate's binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
// `RunQueryDsl::load` would shadow the atomics' `load`: they are called by path here.
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use gpt_load::db::instance_lock::{InstanceLock, LockKind, LockTiming};
use gpt_load::db::schema::{instance_locks, request_logs};
use gpt_load::db::{Database, DatabaseUrl, DbError};
use gpt_load::with_conn;
use parking_lot::Mutex;
use serde_json::{json, Value};
use support::TestServer;

const K1: &str = "sk-durable-key-000001";

fn binary() -> String {
    std::env::var("GPT_LOAD_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gpt-load").into())
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// One `gpt-load` process on loopback with its own log file.
struct Server {
    port: u16,
    child: Option<Child>,
}

impl Server {
    /// The binary with a clean environment, logging to `dir/server.log`.
    fn command(dir: &Path, dsn: &str) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        let mut cmd = Command::new(binary());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AUTH_KEY", support::AUTH)
            .env("HOST", "127.0.0.1")
            .env("DATABASE_DSN", dsn)
            .env("LOG_LEVEL", "warn")
            .env("WORKERS", "2")
            .current_dir(dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null());
        cmd
    }

    fn start(dir: &Path, dsn: &str) -> Server {
        let port = free_port();
        let child = Self::command(dir, dsn)
            .env("PORT", port.to_string())
            .spawn()
            .unwrap();
        Server {
            port,
            child: Some(child),
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_healthy(&self, client: &awc::Client, dir: &Path) -> Duration {
        let started = Instant::now();
        let up = support::wait_until(Duration::from_secs(60), || async {
            client
                .get(format!("{}/health", self.base()))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
        assert!(up, "the server starts:\n{}", log_tail(dir));
        started.elapsed()
    }

    fn signal(&mut self, sig: &str) {
        if let Some(child) = self.child.take() {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(child.id().to_string())
                .status();
            let mut child = child;
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal("KILL");
    }
}

fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

async fn admin(c: &awc::Client, base: &str, method: &str, path: &str, body: Value) -> Value {
    let mut res = c
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .insert_header(("Authorization", format!("Bearer {}", support::AUTH)))
        .send_json(&body)
        .await
        .unwrap();
    let status = res.status();
    let value: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "{method} {path}: {value}");
    value
}

/// Creates group `g` on the mock with `keys`.
async fn create_group(c: &awc::Client, base: &str, upstream: &str, keys: &[&str]) {
    let gid = admin(
        c,
        base,
        "POST",
        "/api/groups",
        json!({"name": "g", "channel_type": "openai", "test_model": "gpt-4o-mini",
               "upstreams": [{"url": upstream, "weight": 1}]}),
    )
    .await["data"]["id"]
        .as_i64()
        .unwrap();
    admin(
        c,
        base,
        "POST",
        "/api/keys/add-multiple",
        json!({"group_id": gid, "keys_text": keys.join("\n")}),
    )
    .await;
}

async fn count_rows(dsn: &str) -> i64 {
    let db = Database::connect(&DatabaseUrl::parse(dsn).unwrap(), 1)
        .await
        .unwrap();
    let n: Result<i64, DbError> = async {
        Ok(with_conn!(&db, conn => {
            request_logs::table.count().get_result(conn).await?
        }))
    }
    .await;
    n.unwrap()
}

/// Answered requests with the time each answer was complete.
#[derive(Default)]
struct Answers {
    done: Mutex<Vec<Instant>>,
    in_flight: AtomicUsize,
}

/// Sends chat requests at `rate` per second (a fixed schedule, catching up when late) until
/// `stop` is set; returns the task and the shared tally.
fn steady_load(
    base: String,
    rate: u32,
    stop: Arc<AtomicBool>,
) -> (actix_rt::task::JoinHandle<()>, Arc<Answers>) {
    let answers = Arc::new(Answers::default());
    let tally = Arc::clone(&answers);
    let task = actix_rt::spawn(async move {
        let c = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while !AtomicBool::load(&stop, Ordering::SeqCst) {
            ticker.tick().await;
            let req = c
                .post(format!("{base}/proxy/g/v1/chat/completions"))
                .insert_header(("Authorization", format!("Bearer {}", support::AUTH)))
                .send_json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}));
            let tally = Arc::clone(&tally);
            tally.in_flight.fetch_add(1, Ordering::SeqCst);
            actix_rt::spawn(async move {
                if let Ok(mut res) = req.await {
                    let ok = res.status() == StatusCode::OK;
                    if res.body().limit(1 << 20).await.is_ok() && ok {
                        tally.done.lock().push(Instant::now());
                    }
                }
                tally.in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (task, answers)
}

/// Runs steady load at `rate` for `run_for`, SIGKILLs the server, restarts it and counts rows.
/// Returns (answered, rows, answered in the last second before the kill).
async fn kill_under_load(rate: u32, run_for: Duration) -> (usize, i64, usize) {
    let mock = gpt_load_mock_upstream::MockUpstream::start(&[K1])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dsn = support::test_database_dsn(dir.path());
    let c = &client();
    let mut server = Server::start(dir.path(), &dsn);
    server.wait_healthy(c, dir.path()).await;
    create_group(c, &server.base(), &mock.base_url(), &[K1]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (task, answers) = steady_load(server.base(), rate, Arc::clone(&stop));
    tokio::time::sleep(run_for).await;
    let killed_at = Instant::now();
    server.signal("KILL");
    stop.store(true, Ordering::SeqCst);
    let _ = task.await;
    let settled = support::wait_until(Duration::from_secs(30), || async {
        AtomicUsize::load(&answers.in_flight, Ordering::SeqCst) == 0
    })
    .await;
    assert!(settled, "requests cut by the kill ended");
    let done = answers.done.lock().clone();
    let answered = done.iter().filter(|t| **t <= killed_at).count();
    let last_second = done
        .iter()
        .filter(|t| **t <= killed_at && killed_at.duration_since(**t) <= Duration::from_secs(1))
        .count();

    // The restarted server finds every row the killed one committed.
    let restarted = Server::start(dir.path(), &dsn);
    restarted.wait_healthy(c, dir.path()).await;
    let rows = count_rows(&dsn).await;
    drop(restarted);
    let warnings: Vec<String> = std::fs::read_to_string(dir.path().join("server.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(10)
        .map(str::to_string)
        .collect();
    if !warnings.is_empty() {
        println!("server warnings:\n{}", warnings.join("\n"));
    }
    println!(
        "SIGKILL at {rate} req/s after {run_for:?}: {answered} answered, {rows} rows, {} lost; {last_second} answered in the last second",
        answered as i64 - rows
    );
    (answered, rows, last_second)
}

#[actix_rt::test]
async fn sigkill_under_steady_load_loses_at_most_a_second_of_request_logs() {
    // The high rate runs on SQLite only. On a PostgreSQL or MySQL server sharing two cores with
    // a debug build and the load generator, one 500-row batch can take longer than the 1 s
    // delay, so the loss there measures the database's write throughput, not the flush policy
    // (seen in CI: 782 of 2,400 on a loaded PostgreSQL, 328 of 2,070 on a quieter run). The low
    // rate checks the 1 s bound on every backend.
    let runs: &[(u32, Duration)] = match support::backend() {
        support::Backend::Sqlite => &[(300, Duration::from_secs(8)), (5, Duration::from_secs(10))],
        _ => &[(5, Duration::from_secs(10))],
    };
    for &(rate, run_for) in runs {
        let (answered, rows, last_second) = kill_under_load(rate, run_for).await;
        assert!(
            answered as u64 >= u64::from(rate) * run_for.as_secs() / 2,
            "the load ran: {answered} answered at {rate} req/s"
        );
        let lost = answered as i64 - rows;
        // A record reaches the database within 1 s of its answer (the default
        // REQUEST_LOG_MAX_DELAY_MS); a quarter second more covers a busy machine's scheduling.
        let allowance = last_second as i64 + i64::from(rate) / 4 + 1;
        assert!(
            lost <= allowance,
            "at {rate} req/s {lost} of {answered} answered requests have no row (allowed {allowance})"
        );
    }
}

// ---- a killed migrate-keys ------------------------------------------------------------------

async fn lock_rows(db: &Database) -> Vec<(String, String, Option<i64>)> {
    let rows: Result<Vec<(String, String, Option<i64>)>, DbError> = async {
        Ok(with_conn!(db, conn => {
            instance_locks::table
                .select((instance_locks::kind, instance_locks::host, instance_locks::pid))
                .load(conn)
                .await?
        }))
    }
    .await;
    rows.unwrap()
}

#[actix_rt::test]
async fn a_sigkilled_migrate_keys_does_not_delay_the_next_server_start_on_this_host() {
    let mock = gpt_load_mock_upstream::MockUpstream::start(&[K1])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dsn = support::test_database_dsn(dir.path());
    let c = &client();
    // Some keys to migrate, so the run holds its lock for a while.
    let mut server = Server::start(dir.path(), &dsn);
    server.wait_healthy(c, dir.path()).await;
    let many: Vec<String> = (0..3000)
        .map(|i| format!("sk-durable-many-{i:06}"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    create_group(c, &server.base(), &mock.base_url(), &many).await;
    server.signal("TERM");

    let db = Database::connect(&DatabaseUrl::parse(&dsn).unwrap(), 1)
        .await
        .unwrap();
    assert!(
        lock_rows(&db).await.is_empty(),
        "a stopped server leaves no row"
    );
    let mut run = Server::command(dir.path(), &dsn)
        .args(["migrate-keys", "--to", "a-durable-encryption-key-0001"])
        .spawn()
        .unwrap();
    let locked = support::wait_until(Duration::from_secs(30), || async {
        lock_rows(&db)
            .await
            .iter()
            .any(|(kind, _, _)| kind == "migrate-keys")
    })
    .await;
    assert!(
        locked,
        "migrate-keys took its lock:\n{}",
        log_tail(dir.path())
    );
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(run.id().to_string())
        .status();
    let _ = run.wait();
    let left = lock_rows(&db).await;
    assert!(
        matches!(left.as_slice(), [(kind, host, Some(pid))] if kind == "migrate-keys" && !host.is_empty() && *pid == i64::from(run.id())),
        "the killed run left its row, naming its host and pid: {left:?}"
    );

    // Its heartbeat is fresh, but its process is gone: the server starts at once.
    let started = Instant::now();
    let server = Server::start(dir.path(), &dsn);
    let took = server.wait_healthy(c, dir.path()).await;
    println!("server start after a SIGKILLed migrate-keys: healthy after {took:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "no wait for the dead run's heartbeat"
    );
    let rows = lock_rows(&db).await;
    assert!(
        rows.iter().all(|(kind, _, _)| kind == "server"),
        "the dead run's row was taken over: {rows:?}"
    );
    drop(server);
}

#[actix_rt::test]
async fn a_fresh_row_of_another_host_still_blocks_until_its_heartbeat_goes_stale() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::parse(&support::test_database_dsn(dir.path())).unwrap();
    let db = Database::connect(&url, 2).await.unwrap();
    let insert = |id: &'static str, host: String| {
        let db = db.clone();
        async move {
            let r: Result<usize, DbError> = async {
                Ok(with_conn!(&db, conn => {
                    diesel::insert_into(instance_locks::table)
                        .values((
                            instance_locks::id.eq(id),
                            instance_locks::kind.eq("migrate-keys"),
                            instance_locks::holder.eq("somewhere, pid 4000000"),
                            instance_locks::started_at.eq(diesel::dsl::now),
                            instance_locks::heartbeat_at.eq(diesel::dsl::now),
                            instance_locks::host.eq(host),
                            // Above any kernel's pid_max: no such process here.
                            instance_locks::pid.eq(Some(1_i64 << 30)),
                        ))
                        .execute(conn)
                        .await?
                }))
            }
            .await;
            r.unwrap();
        }
    };
    // A dead process of this host: taken over.
    insert("dead-here", gpt_load::db::instance_lock::host_identity()).await;
    let lock = InstanceLock::acquire(&db, LockKind::Server, LockTiming::default())
        .await
        .unwrap();
    assert_eq!(lock_rows(&db).await.len(), 1, "the dead row is gone");
    lock.release().await;
    // The same pid on another host (or a row written before hosts were recorded) is not ours
    // to judge: it blocks until its heartbeat is stale.
    insert("other-host", "another-host boot pid:[1]".into()).await;
    let err = InstanceLock::acquire(&db, LockKind::Server, LockTiming::default())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("migrate-keys"), "{err}");
}

// ---- a hung database --------------------------------------------------------------------------

/// A TCP relay to PostgreSQL that can freeze: while frozen it keeps every connection open and
/// accepts new ones but forwards nothing — a database that hangs (a stalled server, a network
/// partition), not one that refuses.
struct Relay {
    port: u16,
    frozen: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (frozen, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let target = target.clone();
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    if watch.wait_for(|f| !*f).await.is_err() {
                        return;
                    }
                    let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::join!(
                        Self::pipe(ri, wo, watch.clone()),
                        Self::pipe(ro, wi, watch.clone())
                    );
                });
            }
        });
        Relay { port, frozen }
    }

    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        mut watch: tokio::sync::watch::Receiver<bool>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if watch.wait_for(|f| !*f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    fn freeze(&self, on: bool) {
        self.frozen.send_replace(on);
    }
}

#[actix_rt::test]
async fn with_the_database_hung_admin_calls_answer_503_fast_and_the_proxy_serves() {
    // A hung server needs a network database; PostgreSQL runs wherever these tests run.
    let server = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("gl_test_hung_{}", uuid::Uuid::new_v4().simple());
    let status = Command::new("psql")
        .args([
            &format!("{server}/postgres"),
            "-qc",
            &format!("CREATE DATABASE {name}"),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let host_port = server
        .rsplit('@')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let relay = Relay::start(host_port).await;
    let user = server
        .trim_start_matches("postgres://")
        .split('@')
        .next()
        .unwrap()
        .to_string();
    let dsn = format!("postgres://{user}@127.0.0.1:{}/{name}", relay.port);
    let t = TestServer::start_with(&[K1], &[("DATABASE_DSN", &dsn)]).await;
    t.create_group("g", &[K1], json!({})).await;
    assert_eq!(t.chat("g", false).await.0, StatusCode::OK);
    let timeout = Duration::from_millis(t.app().state.config.db_timeout_ms);

    relay.freeze(true);
    let written_before = AtomicU64::load(&t.app().state.log_counters.written, Ordering::SeqCst);
    for (method, path, body) in [
        ("GET", "/api/logs?page=1&page_size=10", None),
        (
            "PUT",
            "/api/settings",
            Some(json!({"request_timeout": 601})),
        ),
        ("GET", "/api/keys?group_id=1&page=1&page_size=10", None),
    ] {
        let started = Instant::now();
        let (status, body) = t.admin(method, path, body).await;
        let took = started.elapsed();
        println!("{method} {path} with the database hung: {status} after {took:?}");
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {body}"
        );
        assert_eq!(body["code"], "DATABASE_UNAVAILABLE", "{body}");
        assert!(
            took <= timeout + Duration::from_secs(1),
            "{method} {path} answered after {took:?} (timeout {timeout:?})"
        );
    }
    // The proxy never needs the database: it keeps serving, and its logs wait in memory.
    for _ in 0..20 {
        assert_eq!(t.chat("g", false).await.0, StatusCode::OK);
    }
    assert_eq!(
        AtomicU64::load(&t.app().state.log_counters.written, Ordering::SeqCst),
        written_before,
        "nothing can be written while the database hangs"
    );

    relay.freeze(false);
    let repo = &t.app().state.repo;
    let caught_up = support::wait_until(Duration::from_secs(30), || async {
        let n: Result<i64, DbError> = async {
            Ok(with_conn!(&repo.db, conn => {
                request_logs::table.count().get_result(conn).await?
            }))
        }
        .await;
        n.is_ok_and(|n| n == 21)
    })
    .await;
    assert!(
        caught_up,
        "the buffered logs are written once the database answers"
    );
    let (status, body) = t.get("/api/logs?page=1&page_size=10").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.stop().await;
    let _ = Command::new("psql")
        .args([
            &format!("{server}/postgres"),
            "-qc",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ])
        .status();
}
