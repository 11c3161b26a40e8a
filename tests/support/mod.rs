//! Shared test harness: a real gpt-load server on 127.0.0.1:0 backed by a fresh SQLite file, a
//! scripted mock upstream, and small helpers for admin calls and waiting on conditions.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

/// A config for tests: SQLite in `dir`, one worker, quiet logs; `extra` overrides.
pub fn test_config(dir: &std::path::Path, extra: &[(&str, &str)]) -> AppConfig {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("AUTH_KEY".into(), AUTH.into()),
        ("HOST".into(), "127.0.0.1".into()),
        ("PORT".into(), "1".into()),
        (
            "DATABASE_DSN".into(),
            dir.join("gpt-load.db").display().to_string(),
        ),
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
        let dir = tempfile::tempdir().unwrap();
        let mock = MockUpstream::start(keys).await.unwrap();
        let app = gpt_load::app::start(test_config(dir.path(), extra), false)
            .await
            .unwrap();
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
