//! The OpenAI proxy end to end: rotation, streaming, retries, blacklisting, auth and errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use awc::http::StatusCode;
use futures_util::StreamExt;
use gpt_load_mock_upstream::Behavior;
use serde_json::{json, Value};
use support::{wait_until, TestServer, PROXY_KEY};

const K1: &str = "sk-upstream-key-one";
const K2: &str = "sk-upstream-key-two";
const K3: &str = "sk-upstream-key-three";

#[actix_rt::test]
async fn keys_are_used_evenly() {
    let t = TestServer::start(&[K1, K2, K3]).await;
    t.create_group("oa", &[K1, K2, K3], json!({})).await;
    for _ in 0..30 {
        let (status, body) = t.chat("oa", false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["object"], "chat.completion");
    }
    for key in [K1, K2, K3] {
        assert_eq!(t.mock.requests_for_key(key), 10, "{key}");
    }
    t.stop().await;
}

#[actix_rt::test]
async fn upstream_key_replaces_client_credentials() {
    let t = TestServer::start(&[K1]).await;
    t.create_group("oa", &[K1], json!({})).await;
    let mut res = t
        .client
        .post(t.url("/proxy/oa/v1/chat/completions?key=sk-proxy-test-key&trace=1"))
        .insert_header(("X-Api-Key", "client-secret-should-not-leak"))
        .insert_header(("X-Custom", "kept"))
        .send_json(&json!({"model": "gpt-4o-mini", "messages": []}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.body().await.unwrap();
    let seen = t.mock.requests();
    let req = seen.last().unwrap();
    assert_eq!(req.key.as_deref(), Some(K1));
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(
        req.query, "trace=1",
        "the proxy key must be removed from the query"
    );
    assert!(req.header("x-api-key").is_none());
    assert_eq!(req.header("x-custom"), Some("kept"));
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {K1}").as_str())
    );
    assert!(serde_json::from_slice::<Value>(&req.body).unwrap()["messages"].is_array());
    t.stop().await;
}

#[actix_rt::test]
async fn stream_reaches_the_client_chunk_by_chunk() {
    let t = TestServer::start(&[K1]).await;
    t.create_group("oa", &[K1], json!({})).await;
    t.mock.set_stream(5, Duration::from_millis(200));
    let mut res = t
        .client
        .post(t.url("/proxy/oa/v1/chat/completions"))
        .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
        .send_json(&json!({"model": "gpt-4o-mini", "messages": [], "stream": true}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let first = res.next().await.unwrap().unwrap();
    // The first chunk is in the client's hands while the upstream has not produced the last one.
    let sent_when_first_arrived = t.mock.chunks_sent();
    assert!(String::from_utf8_lossy(&first).contains("data:"));
    assert!(
        sent_when_first_arrived < 5,
        "first chunk arrived only after {sent_when_first_arrived} chunks were sent"
    );
    let mut all = first.to_vec();
    while let Some(chunk) = res.next().await {
        all.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(all).unwrap();
    let order: Vec<usize> = (0..5)
        .map(|i| text.find(&format!("chunk-{i} ")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "chunks out of order");
    assert!(text.trim_end().ends_with("data: [DONE]"));
    t.stop().await;
}

#[actix_rt::test]
async fn rate_limited_key_is_retried_on_another_key() {
    let t = TestServer::start(&[K1, K2]).await;
    t.create_group("oa", &[K1, K2], json!({})).await;
    t.mock.script_times(
        K1,
        Behavior::RateLimited {
            retry_after_secs: 30,
        },
        1,
    );
    let (status, body) = t.chat("oa", false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys: Vec<_> = t
        .mock
        .requests()
        .iter()
        .map(|r| r.key.clone().unwrap())
        .collect();
    assert_eq!(keys, vec![K1.to_string(), K2.to_string()]);
    t.stop().await;
}

#[actix_rt::test]
async fn hanging_upstream_times_out_and_retries_elsewhere() {
    let t = TestServer::start(&[K1, K2]).await;
    t.create_group("oa", &[K1, K2], json!({"response_header_timeout": 1}))
        .await;
    t.mock.script(K1, Behavior::Hang);
    let (status, body) = t.chat("oa", false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(t.mock.requests_for_key(K2), 1);
    t.stop().await;
}

#[actix_rt::test]
async fn a_key_failing_threshold_times_leaves_the_pool_for_good() {
    let t = TestServer::start(&[K1, K2]).await;
    let gid = t
        .create_group("oa", &[K1, K2], json!({"blacklist_threshold": 3}))
        .await;
    t.mock.script(K1, Behavior::Unauthorized);
    for _ in 0..10 {
        let (status, body) = t.chat("oa", false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        t.mock.requests_for_key(K1),
        3,
        "K1 must be tried exactly up to the threshold"
    );
    for _ in 0..10 {
        assert_eq!(t.chat("oa", false).await.0, StatusCode::OK);
    }
    assert_eq!(
        t.mock.requests_for_key(K1),
        3,
        "a blacklisted key is never used again"
    );
    let persisted = wait_until(Duration::from_secs(5), || async {
        let (_, body) = t
            .get(&format!("/api/keys?group_id={gid}&status=invalid"))
            .await;
        body["data"]["items"].as_array().is_some_and(|items| {
            items.len() == 1 && items[0]["key_value"] == K1 && items[0]["failure_count"] == 3
        })
    })
    .await;
    assert!(persisted, "the blacklisting is persisted");
    t.stop().await;
}

#[actix_rt::test]
async fn all_keys_dead_ends_in_503_envelope() {
    let t = TestServer::start(&[K1, K2]).await;
    t.create_group(
        "oa",
        &[K1, K2],
        json!({"blacklist_threshold": 1, "min_usable_keys_percent": 0}),
    )
    .await;
    t.mock.script(K1, Behavior::Unauthorized);
    t.mock.script(K2, Behavior::Unauthorized);
    let (status, body) = t.chat("oa", false).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the last upstream failure is passed through: {body}"
    );
    assert!(
        !body.contains(K2) && !body.contains(K1),
        "upstream keys never reach the client: {body}"
    );
    let (status, body) = t.chat("oa", false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "NO_KEYS_AVAILABLE");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("No active API keys"));
    t.stop().await;
}

#[actix_rt::test]
async fn empty_group_answers_503() {
    let t = TestServer::start(&[K1]).await;
    t.create_group("empty", &[], json!({})).await;
    let (status, body) = t.chat("empty", false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    t.stop().await;
}

#[actix_rt::test]
async fn retries_stop_at_max_retries() {
    let t = TestServer::start(&[K1, K2, K3]).await;
    t.create_group(
        "oa",
        &[K1, K2, K3],
        json!({"max_retries": 1, "blacklist_threshold": 0}),
    )
    .await;
    for key in [K1, K2, K3] {
        t.mock.script(key, Behavior::ServerError);
    }
    let (status, body) = t.chat("oa", false).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(t.mock.total_requests(), 2, "one attempt plus one retry");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"]["message"].is_string(),
        "the upstream's JSON error is passed through: {body}"
    );
    t.stop().await;
}

#[actix_rt::test]
async fn settings_changes_apply_without_restart() {
    let t = TestServer::start(&[K1, K2]).await;
    t.create_group("oa", &[K1, K2], json!({})).await;
    let (status, body) = t
        .put(
            "/api/settings",
            json!({"max_retries": 0, "blacklist_threshold": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.mock.script(K1, Behavior::ServerError);
    let (status, _) = t.chat("oa", false).await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "max_retries 0: no retry"
    );
    assert_eq!(t.mock.total_requests(), 1);
    let (status, _) = t.put("/api/settings", json!({"max_retries": 2})).await;
    assert_eq!(status, StatusCode::OK);
    t.mock.clear_requests();
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        outcomes.push(t.chat("oa", false).await.0);
    }
    assert!(
        outcomes.iter().all(|s| *s == StatusCode::OK),
        "retries are back: {outcomes:?}"
    );
    t.stop().await;
}

#[actix_rt::test]
async fn client_auth_is_checked_before_the_group() {
    let t = TestServer::start(&[K1]).await;
    t.create_group("oa", &[K1], json!({})).await;
    for (path, auth) in [
        ("/proxy/oa/v1/chat/completions", None),
        ("/proxy/oa/v1/chat/completions", Some("Bearer wrong-key")),
        ("/proxy/nope/v1/chat/completions", None),
    ] {
        let mut req = t.client.post(t.url(path));
        if let Some(a) = auth {
            req = req.insert_header(("Authorization", a));
        }
        let mut res = req.send_json(&json!({})).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path} {auth:?}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(
            v,
            json!({"code": "UNAUTHORIZED", "message": "Authentication failed"})
        );
    }
    // A group's key does not tell which other groups exist; only a global key learns of a 404.
    let res = t
        .client
        .post(t.url("/proxy/nope/v1/chat/completions"))
        .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
        .send_json(&json!({}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let mut res = t
        .client
        .post(t.url("/proxy/nope/v1/chat/completions"))
        .insert_header(("Authorization", format!("Bearer {}", support::AUTH)))
        .send_json(&json!({}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["code"], "NOT_FOUND");
    // The global proxy key (seeded from AUTH_KEY) works for every group.
    let mut res = t
        .client
        .post(t.url("/proxy/oa/v1/chat/completions"))
        .insert_header(("x-api-key", support::AUTH))
        .send_json(&json!({"model": "m", "messages": []}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.body().await.unwrap();
    assert_eq!(t.mock.requests_for_key(K1), 1);
    t.stop().await;
}

#[actix_rt::test]
async fn oversized_bodies_get_413() {
    let t = TestServer::start_with(&[K1], &[("MAX_REQUEST_BODY_SIZE_MB", "1")]).await;
    t.create_group("oa", &[K1], json!({})).await;
    let big = "x".repeat(2 * 1024 * 1024);
    let mut res = t
        .client
        .post(t.url("/proxy/oa/v1/chat/completions"))
        .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
        .send_body(big)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(t.mock.total_requests(), 0);
    t.stop().await;
}

#[actix_rt::test]
async fn reset_mid_stream_ends_the_client_stream_without_a_retry() {
    let t = TestServer::start(&[K1, K2]).await;
    t.create_group("oa", &[K1, K2], json!({})).await;
    t.mock
        .script(K1, Behavior::ResetMidStream { after_chunks: 2 });
    let mut res = t
        .client
        .post(t.url("/proxy/oa/v1/chat/completions"))
        .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
        .send_json(&json!({"model": "gpt-4o-mini", "messages": [], "stream": true}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut text = String::new();
    let mut failed = false;
    while let Some(chunk) = res.next().await {
        match chunk {
            Ok(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(text.contains("chunk-1 "), "{text}");
    assert!(
        failed || !text.contains("[DONE]"),
        "a cut stream must not look complete: {text}"
    );
    assert_eq!(
        t.mock.requests_for_key(K2),
        0,
        "no retry after the head was sent"
    );
    // The service is unharmed.
    assert_eq!(t.chat("oa", false).await.0, StatusCode::OK);
    t.stop().await;
}
