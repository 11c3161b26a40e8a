//! Shared test harness: a real gpt-load server on 127.0.0.1:0 backed by a fresh SQLite file, a
//! scripted mock upstream, and small helpers for admin calls and waiting on conditions.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod gptload;
pub mod proxies;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use gpt_load::app::RunningApp;
use gpt_load::config::AppConfig;
use gpt_load_mock_upstream::MockUpstream;
use serde_json::{json, Value};

pub const AUTH: &str = "test-admin-Kx93-long-key";
pub const PROXY_KEY: &str = "sk-proxy-test-key";

/// A running server plus its mock upstream.
pub struct TestServer {
    pub app: Option<RunningApp>,
    pub mock: MockUpstream,
    pub client: awc::Client,
    pub base: String,
    pub dir: tempfile::TempDir,
}

/// The database backend the suite runs against: `GPT_LOAD_TEST_DATABASE` = `sqlite` (default),
/// `postgres` or `mysql` (the local servers; `.ci/test` runs the suite once per backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

pub fn backend() -> Backend {
    match std::env::var("GPT_LOAD_TEST_DATABASE").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("mysql") => Backend::Mysql,
        Ok("") | Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => {
            panic!("GPT_LOAD_TEST_DATABASE must be sqlite, postgres or mysql, not {other}")
        }
    }
}

/// True (and says so) when a test can only run on SQLite and the suite runs on another backend;
/// what such a test checks is covered by the SQLite run.
pub fn sqlite_only(test: &str) -> bool {
    if backend() == Backend::Sqlite {
        return false;
    }
    eprintln!(
        "{test}: SQLite-specific, covered by the SQLite run; not run on {:?}",
        backend()
    );
    true
}

/// The DSN of the database a test server in `dir` uses: a file in `dir` on SQLite; on the
/// servers, a database named after `dir` (so a restart on the same dir finds its data), created
/// on first use. `.ci/test` drops every `gl_test_*` database before and after its runs.
pub fn test_database_dsn(dir: &std::path::Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut hasher);
    let name = format!("gl_test_{:016x}", hasher.finish());
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program} is needed for GPT_LOAD_TEST_DATABASE: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || stderr.contains("already exists"),
            "{program} could not create {name}: {stderr}"
        );
    };
    match backend() {
        Backend::Sqlite => dir.join("gpt-load.db").display().to_string(),
        Backend::Postgres => {
            let server = std::env::var("TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
            run(
                "psql",
                &[
                    &format!("{server}/postgres"),
                    "-qc",
                    &format!("CREATE DATABASE {name}"),
                ],
            );
            format!("{server}/{name}")
        }
        Backend::Mysql => {
            let server = std::env::var("TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
            // mysql://user@host:port, as .ci/services.sh exports it (no password).
            let rest = server.trim_start_matches("mysql://");
            let (user, host_port) = rest.split_once('@').unwrap_or(("root", rest));
            let (host, port) = host_port.split_once(':').unwrap_or((host_port, "3306"));
            run(
                "mysql",
                &[
                    &format!("-h{host}"),
                    &format!("-P{port}"),
                    &format!("-u{user}"),
                    "-e",
                    &format!("CREATE DATABASE IF NOT EXISTS {name}"),
                ],
            );
            format!("{server}/{name}")
        }
    }
}

/// A config for tests: SQLite in `dir`, one worker, quiet logs; `extra` overrides.
pub fn test_config(dir: &std::path::Path, extra: &[(&str, &str)]) -> AppConfig {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("AUTH_KEY".into(), AUTH.into()),
        ("HOST".into(), "127.0.0.1".into()),
        ("PORT".into(), "1".into()),
        ("DATABASE_DSN".into(), test_database_dsn(dir)),
        ("WORKERS".into(), "2".into()),
        ("DB_POOL_SIZE".into(), "4".into()),
    ]);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let mut config = AppConfig::from_map(&vars).expect("valid test config");
    config.port = 0;
    config
}

impl TestServer {
    /// A server with default settings and a mock accepting `keys`.
    pub async fn start(keys: &[&str]) -> Self {
        Self::start_with(keys, &[]).await
    }

    /// A server with extra environment variables.
    pub async fn start_with(keys: &[&str], extra: &[(&str, &str)]) -> Self {
        Self::start_tuned(keys, extra, |_| {}).await
    }

    /// A server whose config `tune` adjusts after the environment is read (for knobs that are
    /// not environment variables, such as the background validation timing).
    pub async fn start_tuned(
        keys: &[&str],
        extra: &[(&str, &str)],
        tune: impl FnOnce(&mut AppConfig),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mock = MockUpstream::start(keys).await.unwrap();
        let mut config = test_config(dir.path(), extra);
        tune(&mut config);
        let app = gpt_load::app::start(config, false).await.unwrap();
        let base = format!("http://{}", app.addr);
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        Self {
            app: Some(app),
            mock,
            client,
            base,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn app(&self) -> &RunningApp {
        self.app.as_ref().unwrap()
    }

    /// An admin call with the admin key as Bearer; returns status and JSON body.
    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .insert_header(("Authorization", format!("Bearer {AUTH}")));
        let mut res = match body {
            Some(b) => req.send_json(&b).await.unwrap(),
            None => req.send().await.unwrap(),
        };
        let bytes = res.body().limit(64 << 20).await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (res.status(), value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.admin("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.admin("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.admin("PUT", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.admin("DELETE", path, None).await
    }

    /// Creates an `openai` group pointing at the mock with these upstream keys; returns its id.
    pub async fn create_group(&self, name: &str, keys: &[&str], config: Value) -> i64 {
        let (status, body) = self
            .post(
                "/api/groups",
                json!({
                    "name": name,
                    "channel_type": "openai",
                    "test_model": "gpt-4o-mini",
                    "upstreams": [{"url": self.mock.base_url(), "weight": 1}],
                    "proxy_keys": PROXY_KEY,
                    "config": config,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id = body["data"]["id"].as_i64().unwrap();
        if !keys.is_empty() {
            let (status, body) = self
                .post(
                    "/api/keys/add-multiple",
                    json!({"group_id": id, "keys_text": keys.join("\n")}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        id
    }

    /// Creates a group from a full JSON body (name, channel_type, upstreams… as the API takes them)
    /// plus upstream keys; returns its id.
    pub async fn create_group_json(&self, body: Value, keys: &[&str]) -> i64 {
        let (status, res) = self.post("/api/groups", body).await;
        assert_eq!(status, StatusCode::OK, "{res}");
        let id = res["data"]["id"].as_i64().unwrap();
        if !keys.is_empty() {
            let (status, res) = self
                .post(
                    "/api/keys/add-multiple",
                    json!({"group_id": id, "keys_text": keys.join("\n")}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{res}");
        }
        id
    }

    /// A chat completion through the proxy; returns status and the body as text.
    pub async fn chat(&self, group: &str, stream: bool) -> (StatusCode, String) {
        let mut res = self
            .client
            .post(self.url(&format!("/proxy/{group}/v1/chat/completions")))
            .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
            .send_json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": stream}))
            .await
            .unwrap();
        let status = res.status();
        let body = res
            .body()
            .limit(16 << 20)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        (status, body)
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }
}

/// Adds members to an aggregate group straight through the repository (the admin route for
/// sub-groups belongs to the admin API), then reloads the registry so the proxy sees them.
pub async fn add_sub_groups(t: &TestServer, aggregate: i64, members: &[(i64, i32)]) {
    t.app()
        .state
        .repo
        .add_sub_groups(aggregate, members)
        .await
        .unwrap();
    t.app().state.reload_config().await.unwrap();
}

/// Polls `check` until it is true or `deadline` passes; returns whether it became true.
pub async fn wait_until<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Where a credential goes.
#[derive(Clone, Copy, Debug)]
pub enum CredentialPosition {
    Query,
    Bearer,
    XApiKey,
    XGoogApiKey,
}

pub const ALL_POSITIONS: [CredentialPosition; 4] = [
    CredentialPosition::Query,
    CredentialPosition::Bearer,
    CredentialPosition::XApiKey,
    CredentialPosition::XGoogApiKey,
];

/// A raw response: status, headers and body bytes.
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl RawResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

impl TestServer {
    /// A request with an optional credential in one position, extra headers and a raw body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        credential: Option<(CredentialPosition, &str)>,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> RawResponse {
        let mut url = self.url(path);
        let mut req_headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match credential {
            Some((CredentialPosition::Query, key)) => {
                let sep = if url.contains('?') { '&' } else { '?' };
                url = format!("{url}{sep}key={}", urlencode(key));
            }
            Some((CredentialPosition::Bearer, key)) => {
                req_headers.push(("Authorization".into(), format!("Bearer {key}")))
            }
            Some((CredentialPosition::XApiKey, key)) => {
                req_headers.push(("X-Api-Key".into(), key.to_string()))
            }
            Some((CredentialPosition::XGoogApiKey, key)) => {
                req_headers.push(("X-Goog-Api-Key".into(), key.to_string()))
            }
            None => {}
        }
        let mut req = self.client.request(method.parse().unwrap(), url);
        for (k, v) in &req_headers {
            req = req.insert_header((k.as_str(), v.as_str()));
        }
        let mut res = match body {
            Some((content_type, bytes)) => req
                .insert_header(("content-type", content_type))
                .send_body(bytes)
                .await
                .unwrap(),
            None => req.send().await.unwrap(),
        };
        let body = res.body().limit(256 << 20).await.unwrap();
        RawResponse {
            status: res.status(),
            headers: res.headers().clone(),
            body,
        }
    }

    /// An admin call with an `Accept-Language` header.
    pub async fn admin_lang(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        lang: &str,
    ) -> (StatusCode, Value) {
        let res = self
            .send(
                method,
                path,
                Some((CredentialPosition::Bearer, AUTH)),
                &[("Accept-Language", lang)],
                body.map(|b| ("application/json", serde_json::to_vec(&b).unwrap())),
            )
            .await;
        (res.status, res.json())
    }

    /// Checks that a route refuses a missing or wrong admin key in every position with 401 and
    /// GPT-Load's envelope, and accepts the right key in every position.
    pub async fn assert_admin_auth(&self, method: &str, path: &str) {
        let body = || {
            if method == "GET" || method == "DELETE" {
                None
            } else {
                Some(("application/json", b"{}".to_vec()))
            }
        };
        let res = self.send(method, path, None, &[], body()).await;
        assert_eq!(
            res.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a key"
        );
        assert_eq!(
            res.json(),
            json!({"code": "UNAUTHORIZED", "message": "Authentication failed"}),
            "{method} {path}"
        );
        for position in ALL_POSITIONS {
            let res = self
                .send(method, path, Some((position, "wrong-key")), &[], body())
                .await;
            assert_eq!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with a wrong key in {position:?}"
            );
            let res = self
                .send(method, path, Some((position, AUTH)), &[], body())
                .await;
            assert_ne!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with the right key in {position:?}: {}",
                res.text()
            );
        }
    }

    /// The repository of the running server, for inserting rows directly.
    pub fn repo(&self) -> &gpt_load::db::repo::Repo {
        &self.app().state.repo
    }

    /// Polls the task status until no task runs; returns the final status.
    pub async fn wait_for_task(&self, deadline: Duration) -> Value {
        let end = Instant::now() + deadline;
        loop {
            let (status, body) = self.get("/api/tasks/status").await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["data"]["is_running"] == false {
                return body["data"].clone();
            }
            assert!(Instant::now() < end, "task still running: {body}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A chat completion through the proxy with a chosen proxy key.
    pub async fn chat_with_key(&self, group: &str, key: &str) -> (StatusCode, String) {
        let mut res = self
            .client
            .post(self.url(&format!("/proxy/{group}/v1/chat/completions")))
            .insert_header(("Authorization", format!("Bearer {key}")))
            .send_json(
                &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await
            .unwrap();
        let status = res.status();
        let body = res
            .body()
            .limit(16 << 20)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// The upstream keys the mock has seen on chat requests since the last `clear_requests`.
    pub fn keys_seen(&self) -> Vec<String> {
        self.mock
            .requests()
            .into_iter()
            .filter_map(|r| r.key)
            .collect()
    }
}

/// Percent-encodes a query value.
pub fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A request log row for direct insertion.
pub fn log_row(
    group_id: i64,
    group_name: &str,
    key: &str,
    at: chrono::NaiveDateTime,
    status_code: i32,
) -> gpt_load::db::repo_logs::LogRow {
    let codec = gpt_load::crypto::KeyCodec::plaintext();
    gpt_load::db::repo_logs::LogRow {
        id: uuid::Uuid::new_v4().to_string(),
        timestamp: at,
        group_id,
        group_name: group_name.into(),
        parent_group_id: 0,
        parent_group_name: String::new(),
        key_value: codec.encode(key).unwrap(),
        key_hash: codec.hash(key),
        model: "gpt-4o-mini".into(),
        is_success: status_code < 400,
        source_ip: "10.0.0.1".into(),
        status_code,
        request_path: "/proxy/g/v1/chat/completions".into(),
        duration: 12,
        error_message: if status_code < 400 {
            String::new()
        } else {
            "upstream said no".into()
        },
        user_agent: String::new(),
        request_type: "final".into(),
        upstream_addr: "http://upstream/v1/chat/completions".into(),
        is_stream: false,
        request_body: String::new(),
        input_tokens: None,
        output_tokens: None,
        total_tokens: None,
        cached_tokens: None,
        cache_write_tokens: None,
        reasoning_tokens: None,
        proxy_key: String::new(),
    }
}

/// An hourly stats row for direct insertion.
pub fn hourly(
    group_id: i64,
    time: chrono::NaiveDateTime,
    success: i64,
    failure: i64,
) -> gpt_load::db::repo_stats::HourlyStat {
    gpt_load::db::repo_stats::HourlyStat {
        time,
        group_id,
        success_count: success,
        failure_count: failure,
        created_at: time,
        updated_at: time,
    }
}

/// The start of the current UTC hour.
pub fn this_hour() -> chrono::NaiveDateTime {
    gpt_load::admin::current_hour()
}
