//! Swapping the binary: this server starts on a database GPT-Load 1.4.9 built and filled (on the
//! backend `GPT_LOAD_TEST_DATABASE` names), serves its groups, keys, logs and statistics as they
//! are, rotates its keys (GPT-Load-encrypted ones included, with the same ENCRYPTION_KEY), leaves
//! GPT-Load's values in GPT-Load's formats, starts normally the second time, and refuses a schema
//! that is neither ours nor GPT-Load's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use awc::http::StatusCode;
use chrono::Utc;
use gpt_load::config::AppConfig;
use gpt_load_mock_upstream::MockUpstream;
use serde_json::{json, Value};
use support::gptload::{self, ENCRYPTION_KEY, GLOBAL_PROXY_KEY, GROUPS, KEYS, LOG_IDS, ROW_COUNTS};
use support::{backend, test_config, Backend, TestServer};

/// Runs `script` on the test database of `dir` with the backend's own client; returns its output.
fn sql(dir: &std::path::Path, script: &str) -> String {
    let dsn = support::test_database_dsn(dir);
    let mut cmd = match backend() {
        Backend::Sqlite => {
            let mut c = Command::new("sqlite3");
            c.args(["-batch", "-bail", &dsn]);
            c
        }
        Backend::Postgres => {
            let mut c = Command::new("psql");
            c.args([
                dsn.as_str(),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
            ]);
            c
        }
        Backend::Mysql => {
            let rest = dsn.trim_start_matches("mysql://");
            let (user, rest) = rest.split_once('@').unwrap();
            let (host_port, db) = rest.split_once('/').unwrap();
            let (host, port) = host_port.split_once(':').unwrap();
            let mut c = Command::new("mysql");
            c.args([
                format!("-h{host}"),
                format!("-P{port}"),
                format!("-u{user}"),
                "-N".into(),
                "-B".into(),
                db.to_string(),
            ]);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Builds GPT-Load's schema and rows in the test database of `dir`.
fn seed(dir: &std::path::Path, encrypted: bool, upstream: &str) {
    sql(dir, &gptload::schema(backend()));
    sql(
        dir,
        &gptload::rows(backend(), encrypted, upstream, Utc::now()),
    );
}

fn row_counts(dir: &std::path::Path) -> Vec<(String, i64)> {
    ROW_COUNTS
        .iter()
        .map(|(table, _)| {
            let quoted = if backend() == Backend::Mysql {
                format!("`{table}`")
            } else {
                format!("\"{table}\"")
            };
            let n = sql(dir, &format!("SELECT COUNT(*) FROM {quoted};"));
            (table.to_string(), n.parse().unwrap())
        })
        .collect()
}

fn expected_counts() -> Vec<(String, i64)> {
    ROW_COUNTS
        .iter()
        .map(|(t, n)| (t.to_string(), *n))
        .collect()
}

/// GPT-Load's rows are all still there and none was added, except the settings GPT-Load 1.4.9
/// does not have (ours, inserted with their defaults like on any first start).
fn assert_same_rows(before: &[(String, i64)], after: &[(String, i64)]) {
    for ((table, was), (_, is)) in before.iter().zip(after) {
        if table == "system_settings" {
            assert!(is >= was, "{table}: {was} rows before, {is} after");
        } else {
            assert_eq!(is, was, "{table}: {was} rows before, {is} after");
        }
    }
}

/// The stored `(key_value, key_hash)` of every `api_keys` row, by id.
fn stored_keys(dir: &std::path::Path) -> Vec<String> {
    sql(dir, "SELECT key_value, key_hash FROM api_keys ORDER BY id;")
        .lines()
        .map(|l| l.replace(['\t', '|'], " "))
        .collect()
}

async fn start(dir: tempfile::TempDir, mock: MockUpstream, config: AppConfig) -> TestServer {
    let app = gpt_load::app::start(config, false).await.unwrap();
    let base = format!("http://{}", app.addr);
    TestServer {
        app: Some(app),
        mock,
        client: awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish(),
        base,
        dir,
    }
}

async fn restart(t: TestServer, extra: &[(&str, &str)]) -> TestServer {
    let TestServer { app, mock, dir, .. } = t;
    if let Some(app) = app {
        app.stop().await;
    }
    let config = test_config(dir.path(), extra);
    start(dir, mock, config).await
}

/// A proxied call with GPT-Load's global proxy key; returns the status.
async fn call(
    t: &TestServer,
    group: &str,
    path: &str,
    auth: (&str, &str),
    body: Value,
) -> StatusCode {
    let mut res = t
        .client
        .post(t.url(&format!("/proxy/{group}{path}")))
        .insert_header(auth)
        .send_json(&body)
        .await
        .unwrap();
    let status = res.status();
    let _ = res.body().await;
    status
}

async fn chat(t: &TestServer, group: &str) -> StatusCode {
    call(
        t,
        group,
        "/v1/chat/completions",
        ("authorization", &format!("Bearer {GLOBAL_PROXY_KEY}")),
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
}

/// The keys the mock upstream accepts: all but the one GPT-Load blacklisted.
fn all_plain_keys() -> Vec<&'static str> {
    KEYS.iter()
        .map(|k| k.0)
        .filter(|k| !k.contains("invalid"))
        .collect()
}

/// What the admin API shows for GPT-Load's groups, keys, logs and statistics.
async fn check_admin_view(t: &TestServer) {
    let (status, body) = t.get("/api/groups").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let groups = body["data"].as_array().unwrap();
    let mut seen: Vec<(i64, String, String)> = groups
        .iter()
        .map(|g| {
            (
                g["id"].as_i64().unwrap(),
                g["name"].as_str().unwrap().to_string(),
                g["channel_type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    let expected: Vec<(i64, String, String)> = GROUPS
        .iter()
        .map(|(id, n, c)| (*id, n.to_string(), c.to_string()))
        .collect();
    assert_eq!(seen, expected);
    let group = |id: i64| groups.iter().find(|g| g["id"] == id).unwrap().clone();
    assert_eq!(group(1)["config"], json!({"max_retries": 2}));
    assert_eq!(
        group(1)["model_redirect_rules"],
        json!({"gpt-4": "gpt-4o-mini"})
    );
    assert_eq!(
        group(3)["header_rules"],
        json!([{"key": "X-From-GptLoad", "value": "1", "action": "set"}])
    );
    assert_eq!(group(3)["param_overrides"], json!({"temperature": 0.5}));
    assert_eq!(group(6)["group_type"], "aggregate");
    assert_eq!(group(1)["display_name"], "GL oa");
    // GORM's time with nanoseconds and an offset reads back as the same instant.
    let created = group(1)["created_at"].as_str().unwrap().to_string();
    let fixture_day = (Utc::now() - chrono::Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    assert!(created.starts_with(&fixture_day), "{created}");

    let (status, body) = t.get("/api/groups/6/sub-groups").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut members: Vec<(i64, i64)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["group"]["id"].as_i64().unwrap(),
                m["weight"].as_i64().unwrap(),
            )
        })
        .collect();
    members.sort();
    assert_eq!(members, vec![(1, 10), (7, 5)]);

    let (status, body) = t.get("/api/keys?group_id=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut keys: Vec<(i64, String, String, i64, i64)> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_i64().unwrap(),
                k["key_value"].as_str().unwrap().to_string(),
                k["status"].as_str().unwrap().to_string(),
                k["request_count"].as_i64().unwrap(),
                k["failure_count"].as_i64().unwrap(),
            )
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            (1, "sk-gl-oa-active-1".into(), "active".into(), 41, 0),
            (2, "sk-gl-oa-active-2".into(), "active".into(), 0, 0),
            (3, "sk-gl-oa-invalid-3".into(), "invalid".into(), 0, 3),
        ]
    );

    let (status, body) = t.get("/api/logs?page_size=100").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let logs = body["data"]["items"].as_array().unwrap();
    let ids: Vec<&str> = logs.iter().map(|l| l["id"].as_str().unwrap()).collect();
    // Newest first.
    assert_eq!(ids, vec![LOG_IDS[3], LOG_IDS[2], LOG_IDS[1], LOG_IDS[0]]);
    assert_eq!(logs[3]["key_value"], "sk-gl-oa-invalid-3");
    assert_eq!(logs[3]["request_type"], "retry");
    assert_eq!(logs[3]["status_code"], 401);
    assert_eq!(logs[1]["parent_group_name"], "agg");
    assert_eq!(
        logs[0]["parent_group_name"], "",
        "a NULL from an older GPT-Load"
    );
    assert_eq!(logs[0]["key_value"], "");
    // Found by GPT-Load's own key hash.
    let (status, body) = t.get("/api/logs?key_value=sk-gl-oa-active-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let found: Vec<&str> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(found, vec![LOG_IDS[1]]);

    let (status, body) = t.get("/api/groups/1/stats").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["stats_24_hour"]["total_requests"], 42,
        "{body}"
    );
    assert_eq!(
        body["data"]["stats_24_hour"]["failed_requests"], 2,
        "{body}"
    );
    assert_eq!(body["data"]["key_stats"]["total_keys"], 3, "{body}");
    assert_eq!(body["data"]["key_stats"]["invalid_keys"], 1, "{body}");

    let (status, body) = t.get("/api/settings").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.to_string().contains("gpt-load.example.com"),
        "customised app_url kept"
    );
}

/// Requests on every channel type and the aggregate are served by the adopted keys, rotating
/// over the active ones and never using the invalid one.
async fn check_proxying(t: &TestServer) {
    for _ in 0..4 {
        assert_eq!(chat(t, "oa").await, StatusCode::OK);
    }
    assert!(t.mock.requests_for_key("sk-gl-oa-active-1") >= 1);
    assert!(t.mock.requests_for_key("sk-gl-oa-active-2") >= 1);
    assert_eq!(t.mock.requests_for_key("sk-gl-oa-invalid-3"), 0);
    assert_eq!(chat(t, "agg").await, StatusCode::OK);
    let bearer = format!("Bearer {GLOBAL_PROXY_KEY}");
    let status = call(
        t,
        "oa-resp",
        "/v1/responses",
        ("authorization", &bearer),
        json!({"model": "gpt-4.1-nano", "input": "hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t.mock.requests_for_key("sk-gl-resp-1"), 1);
    let status = call(
        t,
        "gem",
        "/v1beta/models/gemini-2.0-flash:generateContent",
        ("x-goog-api-key", GLOBAL_PROXY_KEY),
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t.mock.requests_for_key("sk-gl-gem-1"), 1);
    let status = call(
        t,
        "claude",
        "/v1/messages",
        ("x-api-key", GLOBAL_PROXY_KEY),
        json!({"model": "claude-3-haiku-20240307", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t.mock.requests_for_key("sk-gl-claude-1"), 1);
}

#[actix_rt::test]
async fn an_encrypted_gptload_database_is_adopted_in_place() {
    let mock = MockUpstream::start(&all_plain_keys()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), true, &mock.base_url());
    let before = row_counts(dir.path());
    assert_eq!(before, expected_counts());
    let stored_before = stored_keys(dir.path());

    let config = test_config(dir.path(), &[("ENCRYPTION_KEY", ENCRYPTION_KEY)]);
    let t = start(dir, mock, config).await;
    let after = row_counts(t.dir.path());
    eprintln!(
        "{:?}: rows before adoption {before:?}, after {after:?}",
        backend()
    );
    assert_same_rows(&before, &after);
    assert_eq!(
        sql(t.dir.path(), "SELECT kdf_id FROM key_encryption;"),
        "gpt-load.pbkdf2-sha256.i100000",
        "the GPT-Load format is recorded"
    );

    check_admin_view(&t).await;
    let served_before = t.mock.requests_for_key("sk-gl-oa-active-1");
    check_proxying(&t).await;
    eprintln!(
        "{:?}: sk-gl-oa-active-1 (stored GPT-Load-encrypted) served {} proxied requests",
        backend(),
        t.mock.requests_for_key("sk-gl-oa-active-1") - served_before
    );

    // GPT-Load's JSON columns take our writes (a `json` column on PostgreSQL).
    let (status, body) = t
        .put(
            "/api/groups/2",
            json!({"config": {"max_retries": 1}, "header_rules": [{"key": "X-New", "value": "2", "action": "set"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = t.get("/api/groups").await;
    let updated = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == 2)
        .unwrap()
        .clone();
    assert_eq!(updated["config"], json!({"max_retries": 1}));
    assert_eq!(updated["header_rules"][0]["key"], "X-New");
    let created = t
        .create_group_json(
            json!({"name": "after-adoption", "channel_type": "openai", "test_model": "gpt-4o-mini",
                   "upstreams": [{"url": t.mock.base_url(), "weight": 1}]}),
            &[],
        )
        .await;
    assert!(created > 7, "new ids continue after GPT-Load's: {created}");

    // A key added now is stored in GPT-Load's format and deduplicated by GPT-Load's hash.
    let (status, body) = t
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": 2, "keys_text": "sk-gl-resp-1\nsk-gl-resp-new"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["added_count"], 1, "{body}");
    assert_eq!(body["data"]["ignored_count"], 1, "{body}");
    let new_value = sql(
        t.dir.path(),
        "SELECT key_value FROM api_keys WHERE id = (SELECT MAX(id) FROM api_keys);",
    );
    assert!(
        new_value.len() > 60 && new_value.bytes().all(|b| b.is_ascii_hexdigit()),
        "{new_value}"
    );

    // GPT-Load's own rows still hold GPT-Load's values (counters aside, which traffic moves).
    let stored_after = stored_keys(t.dir.path());
    assert_eq!(stored_after[..KEYS.len()], stored_before[..]);

    // Second start: a normal start on a database of ours.
    let t = restart(t, &[("ENCRYPTION_KEY", ENCRYPTION_KEY)]).await;
    assert_eq!(chat(&t, "oa").await, StatusCode::OK);
    let (_, body) = t.get("/api/groups").await;
    assert_eq!(body["data"].as_array().unwrap().len(), GROUPS.len() + 1);
    assert_eq!(
        sql(
            t.dir.path(),
            "SELECT COUNT(*) FROM __diesel_schema_migrations WHERE version = '20261126000001';"
        ),
        "1"
    );
    t.stop().await;
}

#[actix_rt::test]
async fn a_plain_gptload_database_is_adopted_in_place() {
    let mock = MockUpstream::start(&all_plain_keys()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), false, &mock.base_url());
    let config = test_config(dir.path(), &[]);
    let t = start(dir, mock, config).await;
    assert_same_rows(&expected_counts(), &row_counts(t.dir.path()));
    check_admin_view(&t).await;
    check_proxying(&t).await;
    assert_eq!(
        sql(t.dir.path(), "SELECT COUNT(*) FROM key_encryption;"),
        "0"
    );
    t.stop().await;
}

#[actix_rt::test]
async fn gptload_encryption_without_the_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), true, "http://127.0.0.1:9");
    let err = gpt_load::app::start(test_config(dir.path(), &[]), false)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("GPT-Load's format"), "{err}");
    let err = gpt_load::app::start(
        test_config(dir.path(), &[("ENCRYPTION_KEY", "not-the-gpt-load-key")]),
        false,
    )
    .await
    .err()
    .expect("refused")
    .to_string();
    assert!(err.contains("is not the key GPT-Load encrypted"), "{err}");
}

#[actix_rt::test]
async fn a_schema_that_is_neither_ours_nor_gptloads_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), false, "http://127.0.0.1:9");
    sql(
        dir.path(),
        "ALTER TABLE api_keys RENAME COLUMN key_hash TO key_digest;",
    );
    let err = gpt_load::app::start(test_config(dir.path(), &[]), false)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("table `api_keys`, column `key_hash`: the column is missing"),
        "{err}"
    );
    assert!(err.contains("GPT-Load 1.4.x"), "{err}");
    // Nothing was added: still no migration record.
    let tables = sql(
        dir.path(),
        match backend() {
            Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE name = '__diesel_schema_migrations';",
            Backend::Postgres => "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '__diesel_schema_migrations';",
            Backend::Mysql => "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = '__diesel_schema_migrations';",
        },
    );
    assert_eq!(tables, "0");

    // A partial schema (one table of six, as another product might have) is refused too.
    let partial = tempfile::tempdir().unwrap();
    let groups_only: String = gptload::schema(backend())
        .lines()
        .filter(|l| l.contains("TABLE `groups`") || l.contains("TABLE \"groups\""))
        .collect();
    sql(partial.path(), &groups_only);
    let err = gpt_load::app::start(test_config(partial.path(), &[]), false)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("table `system_settings`: the table is missing (found only groups)"),
        "{err}"
    );
}

#[actix_rt::test]
async fn migrate_keys_converts_gptload_values_to_ours() {
    let mock = MockUpstream::start(&all_plain_keys()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), true, &mock.base_url());
    let config = test_config(dir.path(), &[]);
    let db = gpt_load::db::Database::connect(&config.database, 2)
        .await
        .unwrap();
    let mut lines = Vec::new();
    let mut sink = |line: &str| lines.push(line.to_string());
    let report = gpt_load::migrate_keys::run(
        &db,
        gpt_load::migrate_keys::MigrateOptions::new(Some(ENCRYPTION_KEY), Some(ENCRYPTION_KEY)),
        &mut sink,
    )
    .await
    .unwrap();
    assert_eq!(report.keys, KEYS.len() as u64, "{lines:?}");
    let values = sql(dir.path(), "SELECT key_value FROM api_keys ORDER BY id;");
    assert!(values.lines().all(|v| v.starts_with("v1$")), "{values}");
    let config = test_config(dir.path(), &[("ENCRYPTION_KEY", ENCRYPTION_KEY)]);
    let t = start(dir, mock, config).await;
    assert_eq!(chat(&t, "oa").await, StatusCode::OK);
    let (_, body) = t.get("/api/logs?key_value=sk-gl-oa2-1").await;
    assert_eq!(body["data"]["items"][0]["id"], LOG_IDS[2], "{body}");
    t.stop().await;
}
