//! A GPT-Load-style operator script, purely over HTTP: create a group, import keys with the async
//! task and poll it, send proxy traffic, copy the group, export its keys, delete everything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use awc::http::StatusCode;
use serde_json::json;
use support::{CredentialPosition, TestServer, AUTH, PROXY_KEY};

#[actix_rt::test]
async fn scripted_session_over_http() {
    let keys: Vec<String> = (0..300).map(|i| format!("sk-script-{i:03}")).collect();
    let accepted: Vec<&str> = keys.iter().map(String::as_str).collect();
    let t = TestServer::start(&accepted).await;

    // 1. Create a group (as a script would, with X-Api-Key).
    let res = t
        .send(
            "POST",
            "/api/groups",
            Some((CredentialPosition::XApiKey, AUTH)),
            &[],
            Some((
                "application/json",
                serde_json::to_vec(&json!({
                    "name": "prod-openai",
                    "display_name": "Production",
                    "channel_type": "openai",
                    "test_model": "gpt-4o-mini",
                    "upstreams": [{"url": t.mock.base_url(), "weight": 1}],
                    "proxy_keys": PROXY_KEY,
                }))
                .unwrap(),
            )),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let group = res.json()["data"].clone();
    let gid = group["id"].as_i64().unwrap();

    // 2. Import keys asynchronously and poll the task until it finishes.
    let (status, body) = t
        .post(
            "/api/keys/add-async",
            json!({"group_id": gid, "keys_text": keys.join("\n")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["code"], 0);
    assert_eq!(body["data"]["is_running"], true);
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = loop {
        let (status, body) = t.get("/api/tasks/status").await;
        assert_eq!(status, StatusCode::OK);
        if body["data"]["is_running"] == false {
            break body["data"]["result"].clone();
        }
        assert!(Instant::now() < deadline, "import did not finish: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(result, json!({"added_count": 300, "ignored_count": 0}));

    // curl -d without a Content-Type header (form-urlencoded) still works, as with GPT-Load.
    let res = t
        .send(
            "POST",
            "/api/keys/add-multiple",
            Some((CredentialPosition::Bearer, AUTH)),
            &[],
            Some((
                "application/x-www-form-urlencoded",
                format!("{{\"group_id\": {gid}, \"keys_text\": \"sk-script-000\"}}").into_bytes(),
            )),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["data"]["ignored_count"], 1);

    // 3. Proxy traffic uses the imported keys.
    t.mock.clear_requests();
    for _ in 0..5 {
        let (status, body) = t.chat("prod-openai", false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let seen = t.keys_seen();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|k| k.starts_with("sk-script-")));

    // 4. Copy the group with its keys. As in GPT-Load, the keys reach the copy through a key
    // import task; once it finishes, the copy serves traffic.
    let (status, body) = t
        .post(
            &format!("/api/groups/{gid}/copy"),
            json!({"copy_keys": "all"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let copy = body["data"]["group"].clone();
    assert_eq!(copy["name"], "prod-openai_copy");
    let copy_id = copy["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = t.get("/api/tasks/status").await;
        if body["data"]["is_running"] == false {
            assert_eq!(body["data"]["result"]["added_count"], 300, "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "copy import did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = t.chat("prod-openai_copy", false).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // 5. Export the copy's keys (download with ?key=).
    let res = t
        .send(
            "GET",
            &format!("/api/keys/export?group_id={copy_id}&status=all"),
            Some((CredentialPosition::Query, AUTH)),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let mut exported: Vec<String> = res.text().lines().map(str::to_string).collect();
    exported.sort();
    assert_eq!(exported, keys);

    // 6. Delete both groups; their proxies are gone.
    for id in [copy_id, gid] {
        let (status, body) = t.delete(&format!("/api/groups/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({"code": 0, "message": "Group and related keys deleted successfully"})
        );
    }
    let (_, body) = t.get("/api/groups").await;
    assert_eq!(body["data"], json!([]));
    let (status, _) = t.chat("prod-openai", false).await;
    assert_ne!(status, StatusCode::OK);
    t.stop().await;
}
