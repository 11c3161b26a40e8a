//! Cluster mode with real processes: several `gpt-load` binaries on loopback sharing one freshly
//! created PostgreSQL database and Redis (a unique key prefix on the shared server, or a private
//! `redis-server` for the restart test). Timings the issue asks about are measured and printed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use diesel_async::{
    AsyncConnection, AsyncMysqlConnection, AsyncPgConnection, SimpleAsyncConnection,
};
use gpt_load_mock_upstream::{Behavior, MockUpstream};
use parking_lot::Mutex;
use serde_json::{json, Value};

const K1: &str = "sk-cluster-key-one-0001";
const K2: &str = "sk-cluster-key-two-0002";
const K3: &str = "sk-cluster-key-three-03";
/// The default `CLUSTER_LEADER_TTL_MS`: the nodes run with default timing, which is what the
/// failover bounds below are about.
const TTL_MS: u64 = 3000;
/// Promised with default timing: a SIGKILLed leader is replaced within 5 s, a SIGTERMed one
/// within 1 s.
const KILL_FAILOVER_LIMIT: Duration = Duration::from_secs(5);
const TERM_FAILOVER_LIMIT: Duration = Duration::from_secs(1);

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn unique(tag: &str) -> String {
    format!(
        "{tag}_{}_{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap()
    )
}

/// The shared database server: PostgreSQL, or MySQL when the suite runs on MySQL
/// (`GPT_LOAD_TEST_DATABASE=mysql`, see tests/support); a cluster needs a server either way.
fn server() -> (bool, String) {
    let env = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.into());
    match support::backend() {
        support::Backend::Mysql => (false, env("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")),
        _ => (
            true,
            env("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"),
        ),
    }
}

async fn admin_sql(sql: String) -> Result<(), diesel::result::Error> {
    let (pg, url) = server();
    if pg {
        let mut admin = AsyncPgConnection::establish(&format!("{url}/test"))
            .await
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.into()))?;
        admin.batch_execute(&sql).await
    } else {
        let mut admin = AsyncMysqlConnection::establish(&format!("{url}/test"))
            .await
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.into()))?;
        admin.batch_execute(&sql).await
    }
}

fn drop_sql(name: &str) -> String {
    if server().0 {
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    } else {
        format!("DROP DATABASE IF EXISTS {name}")
    }
}

/// A fresh database, dropped at the end, or when a failing test unwinds.
struct PgDb {
    name: String,
    dropped: bool,
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let sql = drop_sql(&self.name);
        // Drop cannot await: a throwaway runtime on its own thread does the async cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let _ = admin_sql(sql).await;
            });
        })
        .join();
    }
}

impl PgDb {
    async fn create() -> Self {
        let name = unique("gl_cluster");
        admin_sql(format!("CREATE DATABASE {name}"))
            .await
            .expect("the database server (TEST_POSTGRES_URL / TEST_MYSQL_URL) must be running");
        PgDb {
            name,
            dropped: false,
        }
    }

    fn dsn(&self) -> String {
        format!("{}/{}", server().1, self.name)
    }

    async fn drop_db(mut self) {
        admin_sql(drop_sql(&self.name)).await.unwrap();
        self.dropped = true;
    }
}

/// One `gpt-load` process; killed with SIGKILL if the test ends without stopping it.
struct Node {
    name: &'static str,
    port: u16,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn spawn(name: &'static str, dir: &Path, env: &[(&str, String)]) -> Node {
        let mut node = Node {
            name,
            port: free_port(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            log: dir.join(format!("{name}.log")),
            child: None,
        };
        node.start();
        node
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpt-load"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AUTH_KEY", support::AUTH)
            .env("HOST", "127.0.0.1")
            .env("PORT", self.port.to_string())
            .env("WORKERS", "2")
            .env("DB_POOL_SIZE", "4")
            .env("LOG_LEVEL", "info")
            .env("ENABLE_METRICS", "true");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .current_dir(self.log.parent().unwrap())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn signal(&mut self, sig: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(child.id().to_string())
                .status();
        }
    }

    fn kill9(&mut self) {
        self.signal("KILL");
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    async fn stop(&mut self) {
        self.signal("TERM");
        if let Some(mut child) = self.child.take() {
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // Access log lines drown out what matters when a test fails.
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("Request served"))
            .collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
}

async fn health(c: &awc::Client, node: &Node) -> Option<Value> {
    let mut res = c.get(format!("{}/health", node.base())).send().await.ok()?;
    res.json::<Value>().await.ok()
}

async fn role(c: &awc::Client, node: &Node) -> Option<String> {
    health(c, node)
        .await
        .and_then(|h| h["role"].as_str().map(str::to_string))
}

async fn wait_healthy(c: &awc::Client, node: &Node) {
    let up = support::wait_until(Duration::from_secs(60), || async {
        health(c, node)
            .await
            .is_some_and(|h| h["status"] == "healthy")
    })
    .await;
    assert!(up, "{} starts:\n{}", node.name, node.log_tail());
}

/// The leaders among `nodes` right now.
async fn leaders(c: &awc::Client, nodes: &[&Node]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for node in nodes {
        if role(c, node).await.as_deref() == Some("leader") {
            out.push(node.name);
        }
    }
    out
}

async fn admin(c: &awc::Client, node: &Node, method: &str, path: &str, body: Value) -> Value {
    let mut res = c
        .request(method.parse().unwrap(), format!("{}{path}", node.base()))
        .insert_header(("Authorization", format!("Bearer {}", support::AUTH)))
        .send_json(&body)
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(
        status,
        StatusCode::OK,
        "{method} {path} on {}: {body}",
        node.name
    );
    body
}

async fn chat(c: &awc::Client, base: &str, group: &str, key: &str) -> Result<StatusCode, String> {
    let mut res = c
        .post(format!("{base}/proxy/{group}/v1/chat/completions"))
        .insert_header(("Authorization", format!("Bearer {key}")))
        .send_json(
            &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .map_err(|e| e.to_string())?;
    let _ = res.body().limit(1 << 20).await;
    Ok(res.status())
}

/// `gptload_keys{group=…,state=…}` as the node's key pool sees it.
async fn pool_keys(c: &awc::Client, node: &Node, group: &str, state: &str) -> Option<i64> {
    let mut res = c
        .get(format!("{}/metrics", node.base()))
        .insert_header(("Authorization", format!("Bearer {}", support::AUTH)))
        .send()
        .await
        .ok()?;
    let text = String::from_utf8(res.body().limit(4 << 20).await.ok()?.to_vec()).ok()?;
    let labels = format!("group=\"{group}\",state=\"{state}\"");
    text.lines()
        .filter(|l| l.starts_with("gptload_keys") && l.contains(&labels))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Waits until `check` holds on every node; returns how long that took.
async fn time_until_all<'a, F, Fut>(nodes: &[&'a Node], limit: Duration, check: F) -> Duration
where
    F: Fn(&'a Node) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    for node in nodes {
        let ok = support::wait_until(limit, || check(node)).await;
        assert!(
            ok,
            "{} did not catch up in {limit:?}:\n{}",
            node.name,
            node.log_tail()
        );
    }
    start.elapsed()
}

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Deletes every Redis key under the test's own prefix (never anything else).
async fn clear_prefix(url: &str, prefix: &str) {
    let mut conn = redis_conn(url).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// Removes the test's Redis keys when the test ends, failing or not.
struct PrefixGuard {
    url: String,
    prefix: String,
}

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(clear_prefix(&url, &prefix));
        })
        .join();
    }
}

/// Leadership terms from the leader's journal, by epoch.
async fn terms(url: &str, prefix: &str) -> Vec<(u64, String, i64, i64)> {
    let mut conn = redis_conn(url).await;
    let raw: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{prefix}cluster:terms"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut out: Vec<(u64, String, i64, i64)> = raw
        .values()
        .map(|v| {
            let t: Value = serde_json::from_str(v).unwrap();
            (
                t["epoch"].as_u64().unwrap(),
                t["node"].as_str().unwrap().to_string(),
                t["started_ms"].as_i64().unwrap(),
                t["last_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Proxy traffic spread over the nodes in `targets` until stopped; counts outcomes.
struct Traffic {
    targets: Arc<Mutex<Vec<String>>>,
    ok: Arc<AtomicUsize>,
    failed: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: actix_rt::task::JoinHandle<()>,
}

impl Traffic {
    fn start(targets: Vec<String>, group: &'static str) -> Traffic {
        let targets = Arc::new(Mutex::new(targets));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (targets, ok, failed, stop) = (
                Arc::clone(&targets),
                Arc::clone(&ok),
                Arc::clone(&failed),
                Arc::clone(&stop),
            );
            actix_rt::spawn(async move {
                let c = client();
                let mut i = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let base = {
                        let t = targets.lock();
                        t[i % t.len()].clone()
                    };
                    i += 1;
                    match chat(&c, &base, group, support::AUTH).await {
                        Ok(StatusCode::OK) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        other => failed.lock().push(format!("{base}: {other:?}")),
                    }
                }
            })
        };
        Traffic {
            targets,
            ok,
            failed,
            stop,
            task,
        }
    }

    /// Routes traffic to `targets` only, and returns once no request to any other node is in
    /// flight (requests are sequential: two more completions mean the old target is done), as a
    /// load balancer would have drained it.
    async fn set_targets(&self, targets: Vec<String>) {
        *self.targets.lock() = targets;
        let done = || self.ok.load(Ordering::SeqCst) + self.failed.lock().len();
        let before = done();
        let drained =
            support::wait_until(Duration::from_secs(10), || async { done() >= before + 2 }).await;
        assert!(drained, "traffic keeps flowing");
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        let failed = self.failed.lock().clone();
        (self.ok.load(Ordering::SeqCst), failed)
    }
}

fn group_body(name: &str, mock: &MockUpstream, threshold: i64) -> Value {
    json!({
        "name": name,
        "channel_type": "openai",
        "test_model": "gpt-4o-mini",
        "upstreams": [{"url": mock.base_url(), "weight": 1}],
        "config": {"blacklist_threshold": threshold, "max_retries": 3},
    })
}

#[actix_rt::test]
async fn a_follower_without_redis_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gpt-load"))
        .env_clear()
        .env("AUTH_KEY", support::AUTH)
        .env("IS_SLAVE", "true")
        .env("PORT", free_port().to_string())
        .env(
            "DATABASE_DSN",
            dir.path().join("db.sqlite").display().to_string(),
        )
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("IS_SLAVE") && text.contains("REDIS_DSN"),
        "{text}"
    );
}

#[actix_rt::test]
async fn an_unreachable_redis_stops_the_start_without_printing_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gpt-load"))
        .env_clear()
        .env("AUTH_KEY", support::AUTH)
        .env("PORT", free_port().to_string())
        .env(
            "REDIS_DSN",
            format!("redis://:Sup3rSecretPw@127.0.0.1:{}/0", free_port()),
        )
        .env(
            "DATABASE_DSN",
            dir.path().join("db.sqlite").display().to_string(),
        )
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Redis at 127.0.0.1:"), "{text}");
    assert!(!text.contains("Sup3rSecretPw"), "{text}");
}

#[actix_rt::test]
async fn two_candidates_and_a_follower_elect_fail_over_and_stay_in_step() {
    let redis_url = &std::env::var("TEST_REDIS_URL")
        .map(|u| format!("{}/", u.trim_end_matches('/')))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let prefix = format!("{}:", unique("gltest"));
    let _keys = PrefixGuard {
        url: redis_url.to_string(),
        prefix: prefix.clone(),
    };
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mock = MockUpstream::start(&[K1, K2, K3]).await.unwrap();
    let env = |slave: bool| {
        vec![
            ("DATABASE_DSN", db.dsn()),
            ("REDIS_DSN", redis_url.to_string()),
            ("REDIS_KEY_PREFIX", prefix.clone()),
            ("IS_SLAVE", slave.to_string()),
        ]
    };
    let c = &client();
    // All three start at once on the empty database: the start-up lock lets one create the
    // schema and default settings while the others wait.
    let mut a = Node::spawn("a", dir.path(), &env(false));
    let mut b = Node::spawn("b", dir.path(), &env(false));
    let f = Node::spawn("f", dir.path(), &env(true));
    wait_healthy(c, &a).await;
    wait_healthy(c, &b).await;
    wait_healthy(c, &f).await;

    // Exactly one leader, and it stays so over several TTLs.
    let elected = support::wait_until(Duration::from_secs(10), || async {
        leaders(c, &[&a, &b, &f]).await.len() == 1
    })
    .await;
    assert!(elected, "a leader is elected:\n{}", a.log_tail());
    let watch_until = Instant::now() + Duration::from_millis(3 * TTL_MS);
    while Instant::now() < watch_until {
        let l = leaders(c, &[&a, &b, &f]).await;
        assert_eq!(l.len(), 1, "one leader at a time: {l:?}");
        assert_ne!(l[0], "f", "a follower never leads");
    }
    assert_eq!(role(c, &f).await.as_deref(), Some("follower"));
    let h = health(c, &a).await.unwrap();
    assert_eq!(
        (h["database"].as_str(), h["redis"].as_str()),
        (Some("ok"), Some("ok"))
    );

    // A group and its keys created on the follower are served by the other nodes within 1 s.
    let gid = admin(c, &f, "POST", "/api/groups", group_body("g", &mock, 2)).await["data"]["id"]
        .as_i64()
        .unwrap();
    admin(
        c,
        &f,
        "POST",
        "/api/keys/add-multiple",
        json!({"group_id": gid, "keys_text": format!("{K1}\n{K2}\n{K3}")}),
    )
    .await;
    let group_delay = time_until_all(&[&a, &b], Duration::from_secs(1), |n| async move {
        chat(c, &n.base(), "g", support::AUTH).await == Ok(StatusCode::OK)
    })
    .await;
    println!(
        "group + keys created on the follower: served by the other nodes after {group_delay:?}"
    );

    // A system setting changed on the follower applies on the other nodes within 1 s.
    admin(
        c,
        &f,
        "PUT",
        "/api/settings",
        json!({"proxy_keys": format!("{},sk-cluster-proxy-new", support::AUTH)}),
    )
    .await;
    let setting_delay = time_until_all(&[&a, &b], Duration::from_secs(1), |n| async move {
        chat(c, &n.base(), "g", "sk-cluster-proxy-new").await == Ok(StatusCode::OK)
    })
    .await;
    println!("setting changed on the follower: applied on the other nodes after {setting_delay:?}");

    // Failures count across the cluster: one on `a`, one on `b` reach the threshold of 2, and
    // every node stops leasing the key within 1 s.
    mock.script(K1, Behavior::Unauthorized);
    let k1_before = mock.requests_for_key(K1);
    for (node, want) in [(&a, k1_before + 1), (&b, k1_before + 2)] {
        let hit = support::wait_until(Duration::from_secs(5), || async {
            assert_eq!(
                chat(c, &node.base(), "g", support::AUTH).await,
                Ok(StatusCode::OK)
            );
            mock.requests_for_key(K1) >= want
        })
        .await;
        assert!(hit, "{} leased K1", node.name);
    }
    let blacklisted_at = Instant::now();
    let blacklist_delay = time_until_all(&[&b, &a, &f], Duration::from_secs(1), |n| async move {
        pool_keys(c, n, "g", "invalid").await == Some(1)
    })
    .await;
    println!(
        "key blacklisted by cluster-wide failures (1 on a, 1 on b): out of every pool after {blacklist_delay:?}"
    );
    assert!(blacklisted_at.elapsed() < Duration::from_secs(2));
    for node in [&a, &b, &f] {
        for _ in 0..6 {
            assert_eq!(
                chat(c, &node.base(), "g", support::AUTH).await,
                Ok(StatusCode::OK)
            );
        }
    }
    assert_eq!(
        mock.requests_for_key(K1),
        k1_before + 2,
        "no node leases the blacklisted key"
    );

    // Admin tasks are exclusive across the cluster: while an import runs on `a`, `b` refuses to
    // start one, shows `a`'s progress, and starts its own once it is done.
    let bulk = admin(c, &a, "POST", "/api/groups", group_body("bulk", &mock, 3)).await["data"]
        ["id"]
        .as_i64()
        .unwrap();
    let many: Vec<String> = (0..30_000).map(|i| format!("sk-bulk-{i:08}")).collect();
    let started = admin(
        c,
        &a,
        "POST",
        "/api/keys/add-async",
        json!({"group_id": bulk, "keys_text": many.join("\n")}),
    )
    .await;
    assert_eq!(started["data"]["is_running"], true, "{started}");
    let mut refused = c
        .post(format!("{}/api/keys/add-async", b.base()))
        .insert_header(("Authorization", format!("Bearer {}", support::AUTH)))
        .send_json(&json!({"group_id": bulk, "keys_text": "sk-bulk-from-b"}))
        .await
        .unwrap();
    let refused_body: Value = refused.json().await.unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT, "{refused_body}");
    let seen_on_b = admin(c, &b, "GET", "/api/tasks/status", json!({})).await;
    assert_eq!(seen_on_b["data"]["task_type"], "KEY_IMPORT", "{seen_on_b}");
    assert_eq!(seen_on_b["data"]["group_name"], "bulk", "{seen_on_b}");
    let done = support::wait_until(Duration::from_secs(60), || async {
        let s = admin(c, &b, "GET", "/api/tasks/status", json!({})).await;
        s["data"]["is_running"] == false && s["data"]["result"]["added_count"] == 30_000
    })
    .await;
    assert!(done, "{}", a.log_tail());
    let mut after = c
        .post(format!("{}/api/keys/add-async", b.base()))
        .insert_header(("Authorization", format!("Bearer {}", support::AUTH)))
        .send_json(&json!({"group_id": bulk, "keys_text": "sk-bulk-from-b"}))
        .await
        .unwrap();
    let after_body: Value = after.json().await.unwrap();
    assert_eq!(after.status(), StatusCode::OK, "{after_body}");

    // Kill -9 the leader under traffic: another candidate leads within TTL + TTL/6.
    let traffic = Traffic::start(vec![a.base(), b.base(), f.base()], "g");
    support::wait_until(Duration::from_secs(5), || async {
        traffic.ok.load(Ordering::SeqCst) >= 20
    })
    .await;
    let mut failovers = Vec::new();
    for round in 0..2 {
        let leader_is_a = role(c, &a).await.as_deref() == Some("leader");
        let (dead, survivor) = if leader_is_a {
            (&mut a, &b)
        } else {
            (&mut b, &a)
        };
        traffic.set_targets(vec![survivor.base(), f.base()]).await;
        let killed_at = Instant::now();
        dead.kill9();
        let took_over = support::wait_until(Duration::from_secs(10), || async {
            role(c, survivor).await.as_deref() == Some("leader")
        })
        .await;
        let failover = killed_at.elapsed();
        assert!(
            took_over,
            "round {round}: {} takes over:\n{}",
            survivor.name,
            survivor.log_tail()
        );
        println!(
            "round {round}: leader killed with SIGKILL, {} leads after {failover:?}",
            survivor.name
        );
        failovers.push(failover);
        // The killed node comes back as a candidate and joins the traffic again.
        dead.start();
        wait_healthy(c, dead).await;
        assert_eq!(role(c, dead).await.as_deref(), Some("candidate"));
        let dead_base = dead.base();
        traffic
            .set_targets(vec![dead_base, survivor.base(), f.base()])
            .await;
        let before = traffic.ok.load(Ordering::SeqCst);
        support::wait_until(Duration::from_secs(5), || async {
            traffic.ok.load(Ordering::SeqCst) >= before + 20
        })
        .await;
    }
    // A graceful stop hands over without waiting for the TTL.
    let leader_is_a = role(c, &a).await.as_deref() == Some("leader");
    let (stopping, survivor) = if leader_is_a {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    traffic.set_targets(vec![survivor.base(), f.base()]).await;
    let stopped_at = Instant::now();
    stopping.signal("TERM");
    let took_over = support::wait_until(Duration::from_secs(10), || async {
        role(c, survivor).await.as_deref() == Some("leader")
    })
    .await;
    assert!(took_over);
    let handover = stopped_at.elapsed();
    println!(
        "leader stopped with SIGTERM: {} leads after {handover:?}",
        survivor.name
    );
    stopping.stop().await;
    let (ok, failed) = traffic.finish().await;
    println!(
        "proxy traffic during failovers: {ok} succeeded, {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "traffic kept succeeding: {failed:?}");
    assert!(ok >= 60);
    for failover in &failovers {
        assert!(
            *failover <= KILL_FAILOVER_LIMIT,
            "a SIGKILLed leader is replaced within {KILL_FAILOVER_LIMIT:?} (bound TTL + TTL/6 = 3.5 s): {failover:?}"
        );
    }
    assert!(
        handover <= TERM_FAILOVER_LIMIT,
        "a SIGTERMed leader is replaced within {TERM_FAILOVER_LIMIT:?}: {handover:?}"
    );

    // The leader-only journal job never ran on two nodes at once.
    let terms = terms(redis_url, &prefix).await;
    assert!(terms.len() >= 3, "{terms:?}");
    for pair in terms.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        assert!(next.0 > prev.0, "epochs rise: {terms:?}");
        assert!(
            next.2 >= prev.3,
            "term {} started at {} before term {} stopped at {}: {terms:?}",
            next.0,
            next.2,
            prev.0,
            prev.3
        );
    }
    println!("leader terms (epoch, node, started_ms, last_ms): {terms:?}");

    drop(f);
    drop(a);
    drop(b);
    db.drop_db().await;
}

/// A private Redis on its own port: the only Redis a test may restart.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        PrivateRedis {
            port,
            child: Some(child),
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn wait_ready(&self) {
        let url = self.url();
        let up = support::wait_until(Duration::from_secs(10), || async {
            match redis::Client::open(url.as_str()) {
                Ok(client) => client.get_multiplexed_async_connection().await.is_ok(),
                Err(_) => false,
            }
        })
        .await;
        assert!(up, "redis-server starts");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[actix_rt::test]
async fn nodes_ride_out_a_redis_restart_and_reload_what_they_missed() {
    let mut redis = PrivateRedis::start(free_port());
    redis.wait_ready().await;
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mock = MockUpstream::start(&[K1, K2]).await.unwrap();
    let env = |slave: bool| {
        vec![
            ("DATABASE_DSN", db.dsn()),
            ("REDIS_DSN", redis.url()),
            ("REDIS_KEY_PREFIX", "gpt-load:".to_string()),
            ("IS_SLAVE", slave.to_string()),
        ]
    };
    let c = &client();
    let a = Node::spawn("a", dir.path(), &env(false));
    wait_healthy(c, &a).await;
    let f = Node::spawn("f", dir.path(), &env(true));
    wait_healthy(c, &f).await;
    let elected = support::wait_until(Duration::from_secs(10), || async {
        role(c, &a).await.as_deref() == Some("leader")
    })
    .await;
    assert!(elected);
    let gid = admin(c, &a, "POST", "/api/groups", group_body("g", &mock, 3)).await["data"]["id"]
        .as_i64()
        .unwrap();
    admin(
        c,
        &a,
        "POST",
        "/api/keys/add-multiple",
        json!({"group_id": gid, "keys_text": K1}),
    )
    .await;
    time_until_all(&[&f], Duration::from_secs(1), |n| async move {
        chat(c, &n.base(), "g", support::AUTH).await == Ok(StatusCode::OK)
    })
    .await;

    let traffic = Traffic::start(vec![a.base(), f.base()], "g");
    redis.kill();
    let noticed = support::wait_until(Duration::from_secs(10), || async {
        health(c, &a)
            .await
            .is_some_and(|h| h["redis"] == "unreachable")
    })
    .await;
    assert!(noticed, "/health reports Redis unreachable");
    // The leader cannot renew: it steps down rather than lead blind.
    let stepped_down = support::wait_until(Duration::from_secs(5), || async {
        role(c, &a).await.as_deref() == Some("candidate")
    })
    .await;
    assert!(stepped_down, "{}", a.log_tail());
    // A write while Redis is down reaches the database but no event can be sent.
    admin(
        c,
        &f,
        "POST",
        "/api/keys/add-multiple",
        json!({"group_id": gid, "keys_text": K2}),
    )
    .await;

    let restarted_at = Instant::now();
    let mut redis = PrivateRedis::start(redis.port);
    redis.wait_ready().await;
    // Both nodes resubscribe and reload everything, so `a` picks up the key it missed.
    let resync = time_until_all(&[&a], Duration::from_secs(10), |n| async move {
        pool_keys(c, n, "g", "usable").await == Some(2)
    })
    .await;
    println!("Redis restarted: the missed key is in the leader's pool {:?} after the restart ({resync:?} of waiting)", restarted_at.elapsed());
    let releader = support::wait_until(Duration::from_secs(10), || async {
        role(c, &a).await.as_deref() == Some("leader")
    })
    .await;
    assert!(releader, "{}", a.log_tail());
    assert_eq!(health(c, &f).await.unwrap()["redis"], "ok");
    // Events flow again on the restored subscription.
    admin(
        c,
        &f,
        "PUT",
        "/api/settings",
        json!({"proxy_keys": format!("{},sk-after-restart", support::AUTH)}),
    )
    .await;
    let delay = time_until_all(&[&a], Duration::from_secs(1), |n| async move {
        chat(c, &n.base(), "g", "sk-after-restart").await == Ok(StatusCode::OK)
    })
    .await;
    println!("after the Redis restart, a setting changed on the follower applied on the leader after {delay:?}");
    let (ok, failed) = traffic.finish().await;
    println!(
        "proxy traffic across the Redis restart: {ok} succeeded, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "the hot path does not need Redis: {failed:?}"
    );
    assert!(ok > 0);
    drop(a);
    drop(f);
    redis.kill();
    db.drop_db().await;
}

#[actix_rt::test]
async fn a_single_node_leads_itself_and_health_reports_its_dependencies() {
    let t = support::TestServer::start(&[K1]).await;
    let (status, body) = t.get("/health").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["role"], "leader");
    assert_eq!(body["epoch"], 1);
    assert_eq!(body["database"], "ok");
    assert_eq!(body["redis"], "disabled");
    assert!(body["uptime"].is_string() && body["node_id"].is_string());
    t.stop().await;
}
