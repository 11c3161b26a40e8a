//! Dashboard routes read request_logs and group_hourly_stats; rows are inserted directly through
//! the repository (another part of the service writes them in production).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use chrono::{Duration, Utc};
use serde_json::json;
use support::{hourly, log_row, this_hour, TestServer};

#[actix_rt::test]
async fn dashboard_routes_check_the_admin_key_in_all_positions() {
    let t = TestServer::start(&[]).await;
    for path in [
        "/api/dashboard/stats",
        "/api/dashboard/chart",
        "/api/dashboard/encryption-status",
    ] {
        t.assert_admin_auth("GET", path).await;
    }
    t.stop().await;
}

#[actix_rt::test]
async fn stats_cards_count_keys_requests_and_errors() {
    let t = TestServer::start(&["sk-1"]).await;
    let a = t
        .create_group(
            "a",
            &["sk-1", "sk-2", "sk-3"],
            json!({"blacklist_threshold": 1}),
        )
        .await;
    let (status, body) = t
        .post(
            "/api/keys/test-multiple",
            json!({"group_id": a, "keys_text": "sk-3"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t
        .post(
            "/api/groups",
            json!({"name": "agg", "group_type": "aggregate", "channel_type": "openai"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let agg = body["data"]["id"].as_i64().unwrap();

    let now = Utc::now().naive_utc();
    let mut logs: Vec<_> = (0..30)
        .map(|i| log_row(a, "a", "sk-1", now - Duration::seconds(10 + i), 200))
        .collect();
    logs.extend((0..10).map(|i| {
        log_row(
            a,
            "a",
            "sk-1",
            now - Duration::minutes(12) - Duration::seconds(i),
            200,
        )
    }));
    let mut retry = log_row(a, "a", "sk-1", now - Duration::seconds(5), 500);
    retry.request_type = "retry".into();
    logs.push(retry);
    t.repo().insert_request_logs(logs).await.unwrap();

    let hour = this_hour();
    t.repo()
        .insert_hourly_stats(vec![
            hourly(a, hour - Duration::hours(1), 90, 10),
            hourly(agg, hour - Duration::hours(1), 1000, 1000),
            hourly(a, hour - Duration::hours(30), 45, 5),
        ])
        .await
        .unwrap();

    let (status, body) = t.get("/api/dashboard/stats").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let d = &body["data"];
    assert_eq!(
        d["key_count"],
        json!({"value": 2, "sub_value": 1, "sub_value_tip": "Invalid Keys", "trend": 0, "trend_is_growth": true})
    );
    assert_eq!(
        d["rpm"]["value"], 3.0,
        "30 final rows in 10 minutes; retries do not count"
    );
    assert_eq!(d["rpm"]["trend"], 200.0);
    assert_eq!(d["rpm"]["trend_is_growth"], true);
    assert_eq!(
        d["request_count"]["value"], 100.0,
        "aggregate rows are left out"
    );
    assert_eq!(d["request_count"]["trend"], 100.0);
    assert_eq!(d["error_rate"]["value"], 10.0);
    assert_eq!(d["error_rate"]["trend"], 0.0);
    assert_eq!(d["error_rate"]["trend_is_growth"], false);
    let warnings = d["security_warnings"].as_array().unwrap();
    assert!(warnings
        .iter()
        .any(|w| w["type"] == "ENCRYPTION_KEY" && w["severity"] == "high"));
    assert!(
        warnings
            .iter()
            .any(|w| w["type"] == "Group Proxy Key [a] #1"),
        "{warnings:?}"
    );

    let (_, zh) = t
        .admin_lang("GET", "/api/dashboard/stats", None, "zh-CN")
        .await;
    assert_eq!(zh["data"]["key_count"]["sub_value_tip"], "无效密钥");
    t.stop().await;
}

#[actix_rt::test]
async fn empty_dashboard_has_zero_cards() {
    let t = TestServer::start(&[]).await;
    let (status, body) = t.get("/api/dashboard/stats").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let d = &body["data"];
    assert_eq!(d["rpm"]["value"], 0.0);
    assert_eq!(d["request_count"]["value"], 0.0);
    assert_eq!(d["error_rate"]["value"], 0.0);
    assert_eq!(d["error_rate"]["trend_is_growth"], true);
    t.stop().await;
}

#[actix_rt::test]
async fn chart_has_24_hourly_points() {
    let t = TestServer::start(&[]).await;
    let a = t.create_group("a", &[], json!({})).await;
    let b = t.create_group("b", &[], json!({})).await;
    let hour = this_hour();
    t.repo()
        .insert_hourly_stats(vec![
            hourly(a, hour, 5, 1),
            hourly(b, hour, 7, 0),
            hourly(a, hour - Duration::hours(23), 3, 3),
            hourly(a, hour - Duration::hours(24), 100, 100),
        ])
        .await
        .unwrap();
    let (status, body) = t.get("/api/dashboard/chart").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let d = &body["data"];
    assert_eq!(d["labels"].as_array().unwrap().len(), 24);
    let success = d["datasets"][0]["data"].as_array().unwrap();
    let failed = d["datasets"][1]["data"].as_array().unwrap();
    assert_eq!(
        (success[0].clone(), failed[0].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(
        (success[23].clone(), failed[23].clone()),
        (json!(12), json!(1))
    );
    assert_eq!(success.iter().map(|v| v.as_i64().unwrap()).sum::<i64>(), 15);
    assert_eq!(d["datasets"][0]["label"], "Success");
    assert_eq!(d["datasets"][0]["color"], "rgba(10, 200, 110, 1)");
    assert_eq!(d["datasets"][1]["label"], "Failed");
    let first = chrono::DateTime::parse_from_rfc3339(d["labels"][0].as_str().unwrap()).unwrap();
    assert_eq!(first.naive_utc(), hour - Duration::hours(23));

    let (_, body) = t.get(&format!("/api/dashboard/chart?groupId={b}")).await;
    assert_eq!(body["data"]["datasets"][0]["data"][23], 7);
    assert_eq!(body["data"]["datasets"][0]["data"][0], 0);
    let (status, body) = t.get("/api/dashboard/chart?groupId=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, body) = t
        .admin_lang("GET", "/api/dashboard/chart", None, "ja")
        .await;
    assert_eq!(body["data"]["datasets"][1]["label"], "失敗");
    t.stop().await;
}

async fn insert_raw_keys(t: &TestServer, group_id: i64, rows: Vec<(String, String)>) {
    async fn run(
        db: &gpt_load::db::Database,
        rows: Vec<gpt_load::db::models::NewKey>,
    ) -> Result<usize, gpt_load::db::DbError> {
        gpt_load::insert_batch!(db, gpt_load::db::schema::api_keys::table, rows)
    }
    let now = Utc::now().naive_utc();
    let rows = rows
        .into_iter()
        .map(|(key_value, key_hash)| gpt_load::db::models::NewKey {
            key_value,
            key_hash,
            group_id,
            status: "active".into(),
            notes: String::new(),
            request_count: 0,
            failure_count: 0,
            created_at: now,
            updated_at: now,
        })
        .collect();
    run(&t.repo().db, rows).await.unwrap();
}

#[actix_rt::test]
async fn encryption_status_detects_encrypted_data_without_a_key() {
    let t = TestServer::start(&[]).await;
    let gid = t.create_group("a", &["sk-1", "sk-2"], json!({})).await;
    let (status, body) = t.get("/api/dashboard/encryption-status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"],
        json!({"has_mismatch": false, "scenario_type": "", "message": "", "suggestion": ""}),
        "plain keys and no ENCRYPTION_KEY agree"
    );

    // Rows as an encrypting deployment stores them: ciphertext whose hash is an HMAC, not the
    // SHA-256 of the stored text. With most of the sample like that, the key is missing here.
    t.post("/api/keys/clear-all", json!({"group_id": gid}))
        .await;
    let rows = (0..10)
        .map(|i| {
            (
                format!("9f{i:02}a1b2c3d4e5f60718293a4b5c6d7e8f"),
                format!("{i:064x}"),
            )
        })
        .collect();
    insert_raw_keys(&t, gid, rows).await;
    let (_, body) = t.get("/api/dashboard/encryption-status").await;
    assert_eq!(body["data"]["has_mismatch"], true, "{body}");
    assert_eq!(body["data"]["scenario_type"], "key_not_configured");
    assert!(body["data"]["suggestion"]
        .as_str()
        .unwrap()
        .contains("ENCRYPTION_KEY"));
    let (_, zh) = t
        .admin_lang("GET", "/api/dashboard/encryption-status", None, "zh-CN")
        .await;
    assert_eq!(
        zh["data"]["message"],
        "存储的密钥已加密，但未设置 ENCRYPTION_KEY"
    );
    t.stop().await;
}
