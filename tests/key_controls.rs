//! Operator controls and visibility of key health: disabling and enabling a key
//! (`PUT /api/keys/{id}/status`), resetting a cooldown (`POST /api/keys/{id}/reset-cooldown`),
//! each key's live state in the key list, cooling keys in the group stats, and manual validation
//! that never blacklists a group below its usable-key floor.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use awc::http::StatusCode;
use gpt_load_mock_upstream::Behavior;
use serde_json::{json, Value};
use support::{urlencode, TestServer};

const A: &str = "sk-controls-key-a-0001";
const B: &str = "sk-controls-key-b-0001";

async fn key(t: &TestServer, gid: i64, value: &str) -> Value {
    let (status, body) = t
        .get(&format!(
            "/api/keys?group_id={gid}&key_value={}",
            urlencode(value)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["items"][0].clone()
}

async fn set_status(t: &TestServer, id: i64, status: &str) -> (StatusCode, Value) {
    t.put(
        &format!("/api/keys/{id}/status"),
        json!({ "status": status }),
    )
    .await
}

#[actix_rt::test]
async fn a_disabled_key_is_never_leased_nor_validated_until_enabled() {
    let t = TestServer::start(&[A, B]).await;
    let gid = t.create_group("ctl", &[A, B], json!({})).await;
    let a = key(&t, gid, A).await["id"].as_i64().unwrap();

    let (status, body) = set_status(&t, a, "disabled").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "disabled");
    assert_eq!(body["data"]["state"], "disabled");
    assert_eq!(body["message"], "Key disabled");

    for _ in 0..30 {
        let (status, body) = t.chat("ctl", false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(t.mock.requests_for_key(A), 0, "30 requests never lease it");
    assert_eq!(t.mock.requests_for_key(B), 30);

    let (_, listed) = t
        .get(&format!("/api/keys?group_id={gid}&status=disabled"))
        .await;
    assert_eq!(listed["data"]["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"]["items"][0]["key_value"], A);
    let (_, stats) = t.get(&format!("/api/groups/{gid}/stats")).await;
    assert_eq!(stats["data"]["key_stats"]["disabled_keys"], 1);
    assert_eq!(stats["data"]["key_stats"]["active_keys"], 1);

    // Validation never probes or changes it: not the group task...
    let (status, body) = t
        .post("/api/keys/validate-group", json!({ "group_id": gid }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["total"], 1,
        "only the enabled key is validated"
    );
    let done = t.wait_for_task(Duration::from_secs(10)).await;
    assert_eq!(done["result"]["total_keys"], 1, "{done}");
    assert_eq!(t.mock.requests_for_key(A), 0);
    // ...nor an explicit test, which probes it but leaves it disabled.
    t.mock.script(A, Behavior::Unauthorized);
    let (status, body) = t
        .post(
            "/api/keys/test-multiple",
            json!({ "group_id": gid, "keys_text": A }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["results"][0]["is_valid"], false);
    let after = key(&t, gid, A).await;
    assert_eq!(
        (after["status"].as_str(), after["failure_count"].as_i64()),
        (Some("disabled"), Some(0))
    );
    t.mock.clear_script(A);

    let (status, body) = set_status(&t, a, "active").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "active");
    assert_eq!(body["data"]["state"], "active");
    assert_eq!(body["data"]["failure_count"], 0);
    let before = t.mock.requests_for_key(A);
    for _ in 0..4 {
        let (status, _) = t.chat("ctl", false).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(t.mock.requests_for_key(A), before + 2, "leased again");
    t.stop().await;
}

#[actix_rt::test]
async fn status_changes_reject_bad_input_with_json_errors() {
    let t = TestServer::start(&[A]).await;
    let gid = t.create_group("ctl-bad", &[A], json!({})).await;
    let a = key(&t, gid, A).await["id"].as_i64().unwrap();
    for bad in ["invalid", "bogus", "", "Active"] {
        let (status, body) = set_status(&t, a, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["code"], "VALIDATION_FAILED");
    }
    let (status, body) = t.put(&format!("/api/keys/{a}/status"), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "INVALID_JSON");
    let (status, body) = set_status(&t, 999_999, "disabled").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "NOT_FOUND");
    let (status, body) = set_status(&t, 0, "disabled").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = t.post("/api/keys/abc/reset-cooldown", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = t.post("/api/keys/999999/reset-cooldown", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = t
        .get(&format!("/api/keys?group_id={gid}&status=bogus"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "VALIDATION_FAILED");
    t.assert_admin_auth("PUT", &format!("/api/keys/{a}/status"))
        .await;
    t.assert_admin_auth("POST", &format!("/api/keys/{a}/reset-cooldown"))
        .await;
    t.stop().await;
}

#[actix_rt::test]
async fn cooling_keys_show_their_state_and_an_operator_can_end_the_rest() {
    let t = TestServer::start(&[A, B]).await;
    // Key scope: the rate limit rests the whole key (per-model rests: tests/key_pool.rs).
    let gid = t
        .create_group("ctl-cool", &[A, B], json!({"rate_limit_scope": "key"}))
        .await;
    t.mock.script_times(
        A,
        Behavior::RateLimited {
            retry_after_secs: 600,
        },
        1,
    );
    for _ in 0..2 {
        let (status, body) = t.chat("ctl-cool", false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(t.mock.requests_for_key(A), 1);
    let cooling = key(&t, gid, A).await;
    assert_eq!(cooling["status"], "active", "a cooldown is not stored");
    assert_eq!(cooling["state"], "cooling_down");
    assert_eq!(cooling["last_failure"], "rate_limited");
    let until = chrono::DateTime::parse_from_rfc3339(cooling["cooldown_until"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let left = until - chrono::Utc::now();
    assert!(
        left > chrono::Duration::seconds(590) && left <= chrono::Duration::seconds(600),
        "Retry-After 600 s: {left}"
    );
    let (_, stats) = t.get(&format!("/api/groups/{gid}/stats")).await;
    assert_eq!(stats["data"]["key_stats"]["cooling_keys"], 1, "{stats}");
    assert_eq!(stats["data"]["key_stats"]["active_keys"], 2);
    let other = key(&t, gid, B).await;
    assert_eq!(other["state"], "active");
    assert!(other["cooldown_until"].is_null() && other["last_failure"].is_null());

    for _ in 0..4 {
        t.chat("ctl-cool", false).await;
    }
    assert_eq!(t.mock.requests_for_key(A), 1, "the cooling key rests");

    let id = cooling["id"].as_i64().unwrap();
    let (status, body) = t
        .post(&format!("/api/keys/{id}/reset-cooldown"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "Cooldown reset");
    assert_eq!(body["data"]["state"], "active");
    assert!(body["data"]["cooldown_until"].is_null());
    for _ in 0..4 {
        let (status, _) = t.chat("ctl-cool", false).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        t.mock.requests_for_key(A),
        3,
        "back in the rotation at once"
    );
    let (_, stats) = t.get(&format!("/api/groups/{gid}/stats")).await;
    assert_eq!(stats["data"]["key_stats"]["cooling_keys"], 0);

    let (status, body) = t
        .post(&format!("/api/keys/{id}/reset-cooldown"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "The key was not cooling down");
    t.stop().await;
}

#[actix_rt::test]
async fn manual_validation_never_blacklists_below_the_floor() {
    let t = TestServer::start(&[A, B]).await;
    let gid = t
        .create_group("ctl-floor", &[A, B], json!({"blacklist_threshold": 1}))
        .await;
    t.mock.script(A, Behavior::Unauthorized);
    t.mock.script(B, Behavior::Unauthorized);
    let (status, body) = t
        .post("/api/keys/validate-group", json!({ "group_id": gid }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done = t.wait_for_task(Duration::from_secs(10)).await;
    assert_eq!(done["result"]["valid_keys"], 0, "{done}");
    let states = [key(&t, gid, A).await, key(&t, gid, B).await];
    let invalid = states.iter().filter(|k| k["status"] == "invalid").count();
    assert_eq!(
        invalid, 1,
        "the floor (10 % of 2 keys, at least 1) keeps one key in service: {states:?}"
    );
    assert!(states.iter().all(|k| k["failure_count"] == 1));
    assert!(states.iter().all(|k| k["last_failure"] == "key_dead"));
    t.stop().await;
}
