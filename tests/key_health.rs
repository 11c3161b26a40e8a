//! Key health through real traffic: failure classes, cooldowns that end by themselves, request
//! faults that never touch a key, and the first-byte timeout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use awc::http::StatusCode;
use gpt_load_mock_upstream::Behavior;
use serde_json::{json, Value};
use support::TestServer;

const REVOKED: &str = "sk-health-revoked-01";
const LIMITED: &str = "sk-health-limited-01";
const FLAKY: &str = "sk-health-flaky-0001";
const GOOD: &str = "sk-health-good-00001";

async fn key_states(t: &TestServer, gid: i64) -> Vec<(String, String, i64)> {
    let (_, body) = t
        .get(&format!("/api/keys?group_id={gid}&page_size=100"))
        .await;
    let mut out: Vec<(String, String, i64)> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key_value"].as_str().unwrap().to_string(),
                k["status"].as_str().unwrap().to_string(),
                k["failure_count"].as_i64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[actix_rt::test]
async fn three_of_four_keys_failing_differently_cost_no_request() {
    let t = TestServer::start(&[REVOKED, LIMITED, FLAKY, GOOD]).await;
    let gid = t
        .create_group("health", &[REVOKED, LIMITED, FLAKY, GOOD], json!({}))
        .await;
    t.mock.script(REVOKED, Behavior::Unauthorized);
    t.mock.script_times(
        LIMITED,
        Behavior::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    t.mock.script(
        FLAKY,
        Behavior::Status {
            code: 503,
            body: r#"{"error":{"message":"overloaded"}}"#.into(),
        },
    );
    let started = Instant::now();
    let mut ok = 0;
    let mut limited_back = false;
    for i in 0..1000 {
        let (status, body) = t.chat("health", false).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
        ok += 1;
        if !limited_back && t.mock.requests_for_key(LIMITED) >= 2 {
            limited_back = true;
            assert!(
                started.elapsed() >= Duration::from_secs(1),
                "the rate-limited key rested for its Retry-After"
            );
        }
        if i == 999 && !limited_back {
            // The run was faster than the Retry-After: keep going until the key is back.
            let back = support::wait_until(Duration::from_secs(10), || async {
                t.chat("health", false).await;
                t.mock.requests_for_key(LIMITED) >= 2
            })
            .await;
            assert!(back, "the rate-limited key comes back by itself");
            limited_back = true;
        }
    }
    assert_eq!(ok, 1000);
    assert!(limited_back);
    // One 401 demotes the revoked key for `rate_limit_cooldown_max_seconds`: it is leased again
    // only when no other key is left (or once the demotion ends, until it reaches the threshold).
    let states = key_states(&t, gid).await;
    let find = |key: &str| states.iter().find(|(k, _, _)| k == key).unwrap().clone();
    assert_eq!(find(REVOKED).1, "active");
    assert_eq!(find(REVOKED).2, 1);
    let (_, listed) = t
        .get(&format!("/api/keys?group_id={gid}&page_size=100"))
        .await;
    let revoked = listed["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_value"] == REVOKED)
        .cloned()
        .unwrap();
    assert_eq!(revoked["demoted"], true, "{revoked}");
    assert_eq!(revoked["last_failure"], "key_dead");
    assert_eq!(
        find(FLAKY),
        (FLAKY.to_string(), "active".to_string(), 0),
        "503s cool a key down, never blacklist it"
    );
    assert_eq!(
        find(LIMITED),
        (LIMITED.to_string(), "active".to_string(), 0)
    );
    assert_eq!(t.mock.requests_for_key(REVOKED), 1);
    let flaky = t.mock.requests_for_key(FLAKY);
    assert!(
        flaky < 20,
        "a cooling key is skipped, not hammered: {flaky} attempts"
    );
    println!(
        "figures: 1000/1000 succeeded in {:?}; attempts revoked={} limited={} flaky={} good={}",
        started.elapsed(),
        t.mock.requests_for_key(REVOKED),
        t.mock.requests_for_key(LIMITED),
        flaky,
        t.mock.requests_for_key(GOOD)
    );
    t.stop().await;
}

#[actix_rt::test]
async fn request_faults_are_returned_and_never_counted() {
    let t = TestServer::start(&[GOOD]).await;
    let gid = t
        .create_group(
            "faults",
            &[GOOD],
            json!({"max_retries": 0, "failover_status_codes": "400-403,405-999"}),
        )
        .await;
    t.mock.script(
        GOOD,
        Behavior::Status {
            code: 400,
            body:
                r#"{"error":{"message":"context length exceeded","type":"invalid_request_error"}}"#
                    .into(),
        },
    );
    for _ in 0..5 {
        let (status, body) = t.chat("faults", false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(serde_json::from_str::<Value>(&body).unwrap()["error"]["message"].is_string());
    }
    assert_eq!(t.mock.requests_for_key(GOOD), 5, "the key stays in service");
    assert_eq!(
        key_states(&t, gid).await,
        vec![(GOOD.to_string(), "active".to_string(), 0)]
    );
    t.stop().await;
}

#[actix_rt::test]
async fn an_upstream_that_stalls_is_abandoned_at_the_first_byte_timeout() {
    let t = TestServer::start(&[FLAKY, GOOD]).await;
    t.create_group(
        "fbt",
        &[FLAKY, GOOD],
        json!({"first_byte_timeout_seconds": 1}),
    )
    .await;
    t.mock.script(FLAKY, Behavior::Hang);
    t.mock.set_stream(3, Duration::from_millis(5));
    let started = Instant::now();
    let (status, body) = t.chat("fbt", true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("data: [DONE]"),
        "the client sees a complete stream: {body}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(t.mock.requests_for_key(GOOD), 1);
    t.stop().await;
}
