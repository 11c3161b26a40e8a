//! The key pool under short supply, through real traffic: the leasing order never pins requests to
//! a dead key, rests are per (key, model), and operator changes survive in-flight failures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use gpt_load_mock_upstream::Behavior;
use serde_json::json;
use support::TestServer;

const REVOKED: &str = "sk-pool-revoked-00001";
const LIMITED: &str = "sk-pool-limited-00001";
const BROKEN: &str = "sk-pool-broken-000001";
const HEALTHY: &str = "sk-pool-healthy-00001";

/// The issue's four keys: one revoked (401), one rate limited (429), one broken (500) and one
/// healthy key that answers a single 429 without `Retry-After` first. Once the first requests
/// have sorted the keys out, nearly every request must succeed.
#[actix_rt::test]
async fn four_keys_one_healthy_serve_nearly_every_request() {
    let keys = [REVOKED, LIMITED, BROKEN, HEALTHY];
    let t = TestServer::start(&keys).await;
    t.create_group("short", &keys, json!({})).await;
    t.mock.script(REVOKED, Behavior::Unauthorized);
    t.mock.script(
        LIMITED,
        Behavior::RateLimited {
            retry_after_secs: 60,
        },
    );
    t.mock.script(BROKEN, Behavior::ServerError);
    t.mock.script_times(
        HEALTHY,
        Behavior::Status {
            code: 429,
            body: r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#.into(),
        },
        1,
    );
    const TOTAL: usize = 500;
    const WARM_UP: usize = 5;
    let mut ok = 0;
    let mut ok_after_warm_up = 0;
    for i in 0..TOTAL {
        let (status, _) = t.chat("short", false).await;
        if status == StatusCode::OK {
            ok += 1;
            if i >= WARM_UP {
                ok_after_warm_up += 1;
            }
        }
    }
    let rate = ok_after_warm_up as f64 / (TOTAL - WARM_UP) as f64;
    println!(
        "figures: {ok}/{TOTAL} succeeded; {ok_after_warm_up}/{} after the first {WARM_UP} ({:.1} %); \
         attempts revoked={} limited={} broken={} healthy={}",
        TOTAL - WARM_UP,
        rate * 100.0,
        t.mock.requests_for_key(REVOKED),
        t.mock.requests_for_key(LIMITED),
        t.mock.requests_for_key(BROKEN),
        t.mock.requests_for_key(HEALTHY),
    );
    assert!(rate >= 0.99, "success after warm-up: {:.1} %", rate * 100.0);
    assert!(
        t.mock.requests_for_key(REVOKED) <= 5,
        "the revoked key is leased only when nothing else is left"
    );
    t.stop().await;
}

const PRO: &str = "sk-pool-model-pro-001";
const SPARE: &str = "sk-pool-model-spare01";

/// A chat completion for `model`; returns the status.
async fn chat_model(t: &TestServer, group: &str, model: &str) -> StatusCode {
    let mut res = t
        .client
        .post(t.url(&format!("/proxy/{group}/v1/chat/completions")))
        .insert_header(("Authorization", format!("Bearer {}", support::PROXY_KEY)))
        .send_json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .await
        .unwrap();
    let _ = res.body().await;
    res.status()
}

async fn listed(t: &TestServer, gid: i64, key: &str) -> serde_json::Value {
    let (_, body) = t
        .get(&format!("/api/keys?group_id={gid}&page_size=100"))
        .await;
    body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_value"] == key)
        .cloned()
        .unwrap()
}

/// A 429 for one model rests the key for that model only: the key list shows the rest, requests
/// for another model keep using the key, and an operator can end the rest for that model.
#[actix_rt::test]
async fn a_rate_limit_rests_the_key_for_its_model_only() {
    let t = TestServer::start(&[PRO, SPARE]).await;
    let gid = t.create_group("models", &[PRO, SPARE], json!({})).await;
    t.mock.script_times(
        PRO,
        Behavior::RateLimited {
            retry_after_secs: 600,
        },
        1,
    );
    let hit = support::wait_until(std::time::Duration::from_secs(5), || async {
        assert_eq!(
            chat_model(&t, "models", "gemini-2.5-pro").await,
            StatusCode::OK
        );
        t.mock.requests_for_key(PRO) >= 1
    })
    .await;
    assert!(hit, "the rate-limited key was leased");
    let key = listed(&t, gid, PRO).await;
    assert_eq!(key["state"], "active", "{key}");
    assert!(key["cooldown_until"].is_null());
    assert_eq!(
        key["model_cooldowns"][0]["model"], "gemini-2.5-pro",
        "{key}"
    );
    assert!(key["model_cooldowns"][0]["cooldown_until"].is_string());
    assert_eq!(key["last_failure"], "rate_limited");
    let (_, stats) = t.get(&format!("/api/groups/{gid}/stats")).await;
    assert_eq!(stats["data"]["key_stats"]["cooling_keys"], 1, "{stats}");

    let rested = t.mock.requests_for_key(PRO);
    for _ in 0..20 {
        assert_eq!(
            chat_model(&t, "models", "gemini-2.5-pro").await,
            StatusCode::OK
        );
    }
    let pro_on_rested_key = t.mock.requests_for_key(PRO) - rested;
    for _ in 0..20 {
        assert_eq!(
            chat_model(&t, "models", "gemini-2.5-flash").await,
            StatusCode::OK
        );
    }
    let flash_on_rested_key = t.mock.requests_for_key(PRO) - rested - pro_on_rested_key;
    println!(
        "figures: after a 429 for gemini-2.5-pro, the key served {pro_on_rested_key}/20 pro requests \
         and {flash_on_rested_key}/20 flash requests"
    );
    assert_eq!(pro_on_rested_key, 0, "the key rests for pro");
    assert_eq!(
        flash_on_rested_key, 10,
        "flash keeps its share of the rotation"
    );

    let id = key["id"].as_i64().unwrap();
    let (status, body) = t
        .post(
            &format!("/api/keys/{id}/reset-cooldown?model=gemini-2.5-pro"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "Cooldown reset");
    assert_eq!(body["data"]["model_cooldowns"], json!([]));
    let before = t.mock.requests_for_key(PRO);
    for _ in 0..4 {
        assert_eq!(
            chat_model(&t, "models", "gemini-2.5-pro").await,
            StatusCode::OK
        );
    }
    assert_eq!(
        t.mock.requests_for_key(PRO) - before,
        2,
        "back for pro at once"
    );
    t.stop().await;
}

const RACED: &str = "sk-pool-raced-0000001";
const CALM: &str = "sk-pool-calm-00000001";

/// An operator disables a key while failures on it are in flight: the disable holds in the pool
/// and in the database, whatever order the failures' writes were queued in.
#[actix_rt::test]
async fn a_disable_survives_failures_in_flight() {
    let t = TestServer::start(&[RACED, CALM]).await;
    let gid = t
        .create_group(
            "race",
            &[RACED, CALM],
            json!({"blacklist_threshold": 1000, "min_usable_keys_percent": 0}),
        )
        .await;
    t.mock.script(RACED, Behavior::Unauthorized);
    let id = listed(&t, gid, RACED).await["id"].as_i64().unwrap();
    for round in 0..5 {
        let start = t.mock.requests_for_key(RACED);
        let requests = futures_util::future::join_all((0..20).map(|_| t.chat("race", false)));
        let disable = async {
            // Disable once the first failure is at the upstream, with the others in flight.
            let failing = support::wait_until(std::time::Duration::from_secs(5), || async {
                t.mock.requests_for_key(RACED) > start
            })
            .await;
            assert!(failing, "round {round}: the key was leased");
            t.put(
                &format!("/api/keys/{id}/status"),
                json!({"status": "disabled"}),
            )
            .await
        };
        let (results, (status, body)) = futures_util::join!(requests, disable);
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(results.iter().all(|(s, _)| *s == StatusCode::OK));
        let key = listed(&t, gid, RACED).await;
        assert_eq!(
            (key["status"].as_str(), key["state"].as_str()),
            (Some("disabled"), Some("disabled")),
            "round {round}: {key}"
        );
        let row = t.repo().key(id).await.unwrap().unwrap();
        assert_eq!(row.status, "disabled", "round {round}: stored");
        let (status, body) = t
            .put(
                &format!("/api/keys/{id}/status"),
                json!({"status": "active"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["failure_count"], 0);
    }
    t.stop().await;
}
