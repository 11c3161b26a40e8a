//! Request logging end to end: a row for every outcome with the right fields, key usage and
//! hourly statistics, body logging, retention, and nothing lost on a graceful stop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use awc::http::StatusCode;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::StreamExt;
use gpt_load::db::schema::{api_keys, group_hourly_stats, request_logs};
use gpt_load::with_conn;
use gpt_load_mock_upstream::Behavior;
use serde_json::json;
use support::{TestServer, PROXY_KEY};

const K1: &str = "sk-logs-key-000001";
const K2: &str = "sk-logs-key-000002";

#[derive(Debug, Queryable)]
struct Row {
    group_name: String,
    parent_group_name: String,
    key_value: String,
    model: String,
    is_success: bool,
    status_code: i32,
    request_path: String,
    error_message: String,
    request_type: String,
    upstream_addr: String,
    is_stream: bool,
    request_body: String,
    user_agent: String,
}

async fn rows(t: &TestServer) -> Vec<Row> {
    assert!(t.app().state.flush_logs().await);
    let db = &t.app().state.repo.db;
    let result: Result<Vec<Row>, gpt_load::db::DbError> = async {
        Ok(with_conn!(db, conn => {
            request_logs::table
                .select((
                    request_logs::group_name,
                    request_logs::parent_group_name,
                    request_logs::key_value,
                    request_logs::model,
                    request_logs::is_success,
                    request_logs::status_code,
                    request_logs::request_path,
                    request_logs::error_message,
                    request_logs::request_type,
                    request_logs::upstream_addr,
                    request_logs::is_stream,
                    request_logs::request_body,
                    request_logs::user_agent,
                ))
                .order(request_logs::timestamp.asc())
                .load(conn)
                .await?
        }))
    }
    .await;
    result.unwrap()
}

async fn hourly(t: &TestServer) -> Vec<(i64, i64, i64)> {
    let db = &t.app().state.repo.db;
    let result: Result<Vec<(i64, i64, i64)>, gpt_load::db::DbError> = async {
        Ok(with_conn!(db, conn => {
            group_hourly_stats::table
                .select((group_hourly_stats::group_id, group_hourly_stats::success_count, group_hourly_stats::failure_count))
                .order(group_hourly_stats::group_id.asc())
                .load(conn)
                .await?
        }))
    }
    .await;
    result.unwrap()
}

#[actix_rt::test]
async fn every_outcome_leaves_the_right_rows_and_counters() {
    let t = TestServer::start(&[K1, K2]).await;
    let gid = t
        .create_group(
            "logged",
            &[K1, K2],
            json!({"max_retries": 1, "blacklist_threshold": 0, "upstream_error_cooldown_seconds": 0}),
        )
        .await;
    // 1: success on K1.
    assert_eq!(t.chat("logged", false).await.0, StatusCode::OK);
    // 2: K2 fails with 500, retried on K1 which succeeds: one retry row, one final row.
    t.mock.script_times(K2, Behavior::ServerError, 1);
    assert_eq!(t.chat("logged", false).await.0, StatusCode::OK);
    // 3: both fail: retry row + final failure row.
    t.mock.script_times(K1, Behavior::ServerError, 1);
    t.mock.script_times(K2, Behavior::ServerError, 1);
    assert_eq!(
        t.chat("logged", false).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    // 4: an empty group: the 503 row.
    t.create_group("nokeys", &[], json!({})).await;
    assert_eq!(
        t.chat("nokeys", true).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let rows = rows(&t).await;
    let summary: Vec<(String, i32, bool, String)> = rows
        .iter()
        .map(|r| {
            (
                r.request_type.clone(),
                r.status_code,
                r.is_success,
                r.key_value.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("final".into(), 200, true, K1.into()),
            ("retry".into(), 500, false, K2.into()),
            ("final".into(), 200, true, K1.into()),
            ("retry".into(), 500, false, K2.into()),
            ("final".into(), 500, false, K1.into()),
            ("final".into(), 503, false, String::new()),
        ]
    );
    let first = &rows[0];
    assert_eq!(first.group_name, "logged");
    assert_eq!(first.model, "gpt-4o-mini");
    assert_eq!(first.request_path, "/proxy/logged/v1/chat/completions");
    assert_eq!(
        first.upstream_addr,
        format!("{}/v1/chat/completions", t.mock.base_url())
    );
    assert!(!first.is_stream);
    assert!(
        first.request_body.is_empty() && first.user_agent.is_empty(),
        "body logging is off by default"
    );
    assert!(!rows[1].error_message.is_empty());
    assert!(rows[5].is_stream && rows[5].error_message.contains("No active API keys"));

    // Key usage: only successful attempts count.
    let db = &t.app().state.repo.db;
    let usage: Result<Vec<(String, i64, bool)>, gpt_load::db::DbError> = async {
        Ok(with_conn!(db, conn => {
            api_keys::table
                .filter(api_keys::group_id.eq(gid))
                .select((api_keys::key_value, api_keys::request_count, api_keys::last_used_at.is_not_null()))
                .order(api_keys::id.asc())
                .load(conn)
                .await?
        }))
    }
    .await;
    assert_eq!(
        usage.unwrap(),
        vec![(K1.to_string(), 2, true), (K2.to_string(), 0, false)]
    );
    // Hourly stats: retries excluded; the 503 of the other group counted under it.
    let stats = hourly(&t).await;
    assert_eq!(stats[0], (gid, 2, 1));
    assert_eq!(stats[1].1 + stats[1].2, 1);
    t.stop().await;
}

#[actix_rt::test]
async fn with_request_logs_off_nothing_is_recorded_and_traffic_is_served() {
    let t = TestServer::start_with(&[K1], &[("ENABLE_REQUEST_LOGS", "false")]).await;
    t.create_group("quiet", &[K1], json!({})).await;
    for stream in [false, true, false] {
        assert_eq!(t.chat("quiet", stream).await.0, StatusCode::OK);
    }
    assert_eq!(t.keys_seen().len(), 3, "the mock answered every request");
    assert!(rows(&t).await.is_empty());
    assert!(hourly(&t).await.is_empty());
    t.stop().await;
}

#[actix_rt::test]
async fn a_locked_database_sheds_the_oldest_records_and_the_proxy_keeps_answering() {
    use std::sync::atomic::{AtomicU64, Ordering};
    // Holding the whole database with one statement is SQLite's way; the batcher's shedding
    // itself does not depend on the backend (unit-tested in the actors crate).
    if support::sqlite_only("a_locked_database_sheds…") {
        return;
    }
    let t = TestServer::start_with(&[K1], &[("REQUEST_LOG_BUFFER_SIZE", "10")]).await;
    t.create_group("busy", &[K1], json!({})).await;
    let (status, _) = t
        .put(
            "/api/settings",
            json!({"request_log_write_interval_minutes": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let counters = std::sync::Arc::clone(&t.app().state.log_counters);

    // Another process-like writer holds the database: every log flush waits out SQLite's busy
    // timeout and fails, so records pile up in the bounded buffer.
    let db_path = t.dir.path().join("gpt-load.db");
    let mut locker =
        <diesel::SqliteConnection as diesel::Connection>::establish(db_path.to_str().unwrap())
            .unwrap();
    diesel::RunQueryDsl::execute(diesel::sql_query("BEGIN EXCLUSIVE"), &mut locker).unwrap();

    let mut answered = 0;
    for _ in 0..40 {
        if t.chat("busy", false).await.0 == StatusCode::OK {
            answered += 1;
        }
    }
    assert_eq!(answered, 40, "the proxy never waits on the database");
    let shed_seen = support::wait_until(Duration::from_secs(20), || async {
        AtomicU64::load(&counters.shed, Ordering::SeqCst) > 0
    })
    .await;
    assert!(
        shed_seen,
        "records beyond the buffer were shed and counted (written {}, failed flushes {}, buffered {})",
        AtomicU64::load(&counters.written, Ordering::SeqCst),
        AtomicU64::load(&counters.failed_flushes, Ordering::SeqCst),
        AtomicU64::load(&counters.buffered, Ordering::SeqCst)
    );

    diesel::RunQueryDsl::execute(diesel::sql_query("ROLLBACK"), &mut locker).unwrap();
    drop(locker);
    // Flushes first: records still queued may be shed on their way into the buffer.
    let stored = rows(&t).await.len() as u64;
    let shed = AtomicU64::load(&counters.shed, Ordering::SeqCst);
    assert_eq!(
        stored + shed,
        40,
        "every record is either stored or counted as shed"
    );

    let (status, body) = t.get("/api/dashboard/stats").await;
    assert_eq!(status, StatusCode::OK);
    let warnings = body["data"]["security_warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w["type"] == "Request logs"
            && w["severity"] == "high"
            && w["message"].as_str().unwrap().contains(&shed.to_string())),
        "{warnings:?}"
    );
    t.stop().await;
}

#[actix_rt::test]
async fn aggregate_traffic_is_logged_and_counted_under_both_groups() {
    let t = TestServer::start(&[K1]).await;
    let member = t.create_group("member", &[K1], json!({})).await;
    let (_, body) = t.post("/api/groups", json!({"name": "agg", "group_type": "aggregate", "channel_type": "openai", "proxy_keys": PROXY_KEY})).await;
    let agg = body["data"]["id"].as_i64().unwrap();
    support::add_sub_groups(&t, agg, &[(member, 1)]).await;
    for _ in 0..3 {
        assert_eq!(t.chat("agg", false).await.0, StatusCode::OK);
    }
    let rows = rows(&t).await;
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r.group_name == "member" && r.parent_group_name == "agg"));
    let stats = hourly(&t).await;
    assert!(
        stats.contains(&(member, 3, 0)) && stats.contains(&(agg, 3, 0)),
        "{stats:?}"
    );
    t.stop().await;
}

#[actix_rt::test]
async fn streams_are_logged_when_they_end_and_a_client_leaving_is_a_499() {
    let t = TestServer::start(&[K1]).await;
    t.create_group("s", &[K1], json!({"enable_request_body_logging": true}))
        .await;
    t.mock.set_stream(3, Duration::from_millis(5));
    assert_eq!(t.chat("s", true).await.0, StatusCode::OK);
    t.mock.set_stream(50, Duration::from_millis(100));
    let mut res = t
        .client
        .post(t.url("/proxy/s/v1/chat/completions"))
        .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
        .insert_header(("User-Agent", "log-test/1.0"))
        .send_json(&json!({"model": "gpt-4o-mini", "messages": [], "stream": true}))
        .await
        .unwrap();
    res.next().await.unwrap().unwrap();
    drop(res);
    let found = support::wait_until(Duration::from_secs(10), || async {
        rows(&t).await.len() == 2
    })
    .await;
    assert!(found, "the abandoned stream is logged");
    let rows = rows(&t).await;
    assert!(rows[0].is_success && rows[0].is_stream && rows[0].status_code == 200);
    assert_eq!(rows[1].status_code, 499);
    assert!(!rows[1].is_success);
    assert_eq!(rows[1].user_agent, "log-test/1.0");
    assert!(
        rows[1].request_body.contains("\"stream\":true"),
        "body logging is on for this group"
    );
    t.stop().await;
}

#[actix_rt::test]
async fn huge_bodies_are_logged_truncated_with_a_note() {
    let t = TestServer::start(&[K1]).await;
    t.create_group("b", &[K1], json!({"enable_request_body_logging": true}))
        .await;
    let content = "x".repeat(100_000);
    let mut res = t
        .client
        .post(t.url("/proxy/b/v1/chat/completions"))
        .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
        .send_json(&json!({"model": "m", "messages": [{"role": "user", "content": content}]}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.body().await.unwrap();
    let rows = rows(&t).await;
    assert!(rows[0].request_body.len() < 65_100);
    assert!(
        rows[0].request_body.contains("[truncated: 65000 of"),
        "{}",
        &rows[0].request_body[65_000..]
    );
    t.stop().await;
}

#[actix_rt::test]
async fn retention_deletes_exactly_the_old_rows() {
    let t = TestServer::start(&[K1]).await;
    t.create_group("r", &[K1], json!({})).await;
    for _ in 0..3 {
        t.chat("r", false).await;
    }
    assert_eq!(rows(&t).await.len(), 3);
    let db = &t.app().state.repo.db;
    let old = chrono::Utc::now().naive_utc() - chrono::Duration::days(10);
    let aged: Result<usize, gpt_load::db::DbError> = async {
        Ok(with_conn!(db, conn => {
            diesel::update(request_logs::table.filter(request_logs::status_code.eq(200)))
                .set(request_logs::timestamp.eq(old))
                .execute(conn)
                .await
                .map(|_| 0)?
        }))
    }
    .await;
    aged.unwrap();
    t.chat("r", false).await;
    assert_eq!(
        gpt_load::retention::run_once(&t.app().state.repo, &t.app().state.snapshot).await,
        3,
        "default retention is 7 days"
    );
    assert_eq!(rows(&t).await.len(), 1);
    let (status, _) = t
        .put("/api/settings", json!({"request_log_retention_days": 0}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        gpt_load::retention::run_once(&t.app().state.repo, &t.app().state.snapshot).await,
        0,
        "0 keeps logs forever"
    );
    t.stop().await;
}

#[actix_rt::test]
async fn sigterm_during_load_loses_no_row() {
    let mock = gpt_load_mock_upstream::MockUpstream::start(&[K1])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dsn = support::test_database_dsn(dir.path());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gpt-load"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AUTH_KEY", support::AUTH)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("DATABASE_DSN", &dsn)
        .env("LOG_LEVEL", "warn")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let up = support::wait_until(Duration::from_secs(30), || async {
        client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    assert!(up, "the binary starts");
    let admin = |path: &str| {
        client
            .post(format!("{base}{path}"))
            .insert_header(("Authorization", format!("Bearer {}", support::AUTH)))
    };
    let mut res = admin("/api/groups")
        .send_json(&json!({"name": "g", "channel_type": "openai", "test_model": "m", "upstreams": [{"url": mock.base_url(), "weight": 1}]}))
        .await
        .unwrap();
    let gid = res.json::<serde_json::Value>().await.unwrap()["data"]["id"]
        .as_i64()
        .unwrap();
    admin("/api/keys/add-multiple")
        .send_json(&json!({"group_id": gid, "keys_text": K1}))
        .await
        .unwrap();
    // Logs wait for the hourly flush: only the graceful stop can write them.
    client
        .put(format!("{base}/api/settings"))
        .insert_header(("Authorization", format!("Bearer {}", support::AUTH)))
        .send_json(&json!({"request_log_write_interval_minutes": 60}))
        .await
        .unwrap();
    mock.set_stream(20, Duration::from_millis(20));
    let mut completed = 0;
    let mut in_flight = Vec::new();
    for i in 0..60 {
        let req = client
            .post(format!("{base}/proxy/g/v1/chat/completions"))
            .insert_header(("Authorization", format!("Bearer {}", support::AUTH)))
            .send_json(&json!({"model": "m", "messages": [], "stream": i % 2 == 0}));
        if i < 50 {
            let mut r = req.await.unwrap();
            r.body().limit(1 << 20).await.unwrap();
            completed += 1;
        } else {
            in_flight.push(actix_rt::spawn(async move {
                let mut r = req.await.ok()?;
                r.body().limit(1 << 20).await.ok().map(|_| ())
            }));
        }
    }
    // SIGTERM only once every in-flight request is being served (its stream is mid-way).
    let reached = support::wait_until(Duration::from_secs(10), || async {
        mock.total_requests() >= 60
    })
    .await;
    assert!(reached);
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let mut finished = 0;
    for handle in in_flight {
        if handle.await.ok().flatten().is_some() {
            finished += 1;
        }
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "graceful exit: {status:?}");
    let db = gpt_load::db::Database::connect(&gpt_load::db::DatabaseUrl::parse(&dsn).unwrap(), 1)
        .await
        .unwrap();
    let stored: Result<i64, gpt_load::db::DbError> = async {
        Ok(with_conn!(&db, conn => {
            request_logs::table.count().get_result(conn).await?
        }))
    }
    .await;
    let stored = stored.unwrap();
    // Every completed request is logged; in-flight ones are drained (logged as served or 499).
    assert_eq!(
        completed + finished,
        60,
        "in-flight requests are drained, not cut"
    );
    assert_eq!(stored, 60, "every request sent has exactly one row");
}
