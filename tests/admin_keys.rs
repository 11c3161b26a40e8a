//! Key routes: listing filters, export, notes, restore, clear, test; key-text parsing; and that
//! every key write reaches the proxy's key pool at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use serde_json::{json, Value};
use support::{CredentialPosition, TestServer, AUTH};

#[actix_rt::test]
async fn every_key_route_checks_the_admin_key_in_all_positions() {
    let t = TestServer::start(&[]).await;
    for (method, path) in [
        ("GET", "/api/keys?group_id=999999"),
        ("GET", "/api/keys/export?group_id=999999"),
        ("POST", "/api/keys/add-multiple"),
        ("POST", "/api/keys/delete-multiple"),
        ("POST", "/api/keys/restore-multiple"),
        ("POST", "/api/keys/restore-all-invalid"),
        ("POST", "/api/keys/clear-all-invalid"),
        ("POST", "/api/keys/clear-all"),
        ("POST", "/api/keys/test-multiple"),
        ("PUT", "/api/keys/999999/notes"),
    ] {
        t.assert_admin_auth(method, path).await;
    }
    t.stop().await;
}

async fn keys(t: &TestServer, query: &str) -> Value {
    let (status, body) = t.get(&format!("/api/keys?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

async fn key_id(t: &TestServer, gid: i64, key: &str) -> i64 {
    keys(t, &format!("group_id={gid}&key_value={key}")).await["items"][0]["id"]
        .as_i64()
        .unwrap()
}

#[actix_rt::test]
async fn listing_filters_and_paginates() {
    let t = TestServer::start(&["sk-a", "sk-b", "sk-c"]).await;
    let gid = t
        .create_group(
            "k",
            &["sk-a", "sk-b", "sk-c", "sk-x"],
            json!({"blacklist_threshold": 1}),
        )
        .await;
    let (status, body) = t
        .post(
            "/api/keys/test-multiple",
            json!({"group_id": gid, "keys_text": "sk-x"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let page = keys(&t, &format!("group_id={gid}&page=2&page_size=3")).await;
    assert_eq!(
        page["pagination"],
        json!({"page": 2, "page_size": 3, "total_items": 4, "total_pages": 2, "total_exact": true})
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let invalid = keys(&t, &format!("group_id={gid}&status=invalid")).await;
    assert_eq!(invalid["items"][0]["key_value"], "sk-x");
    assert_eq!(invalid["items"][0]["failure_count"], 1);
    assert_eq!(invalid["pagination"]["total_items"], 1);
    let active = keys(&t, &format!("group_id={gid}&status=active&page_size=0")).await;
    assert_eq!(active["pagination"]["total_items"], 3);
    assert_eq!(active["pagination"]["page_size"], 15);
    let one = keys(&t, &format!("group_id={gid}&key_value=%20sk-b%20")).await;
    assert_eq!(one["items"][0]["key_value"], "sk-b");
    let item = &one["items"][0];
    for field in [
        "id",
        "key_hash",
        "group_id",
        "status",
        "notes",
        "request_count",
        "created_at",
        "updated_at",
    ] {
        assert!(item.get(field).is_some(), "{field} in {item}");
    }
    assert!(item["last_used_at"].is_null());

    for (query, status, message) in [
        (
            "",
            StatusCode::BAD_REQUEST,
            "group_id query parameter is required",
        ),
        (
            "group_id=",
            StatusCode::BAD_REQUEST,
            "group_id query parameter is required",
        ),
        (
            "group_id=abc",
            StatusCode::BAD_REQUEST,
            "Invalid group_id format",
        ),
        ("group_id=99999", StatusCode::NOT_FOUND, "Group not found"),
        (
            &format!("group_id={gid}&status=weird"),
            StatusCode::BAD_REQUEST,
            "status must be 'active', 'invalid' or 'disabled'",
        ),
    ] {
        let (got, body) = t.get(&format!("/api/keys?{query}")).await;
        assert_eq!(got, status, "{query}: {body}");
        assert_eq!(body["message"], message);
    }
    t.stop().await;
}

#[actix_rt::test]
async fn key_text_parsing_accepts_json_arrays_and_any_separators() {
    let t = TestServer::start(&[]).await;
    let gid = t.create_group("p", &[], json!({})).await;
    for (text, added, ignored) in [
        (r#"["sk-1", " sk-2 ", ""]"#, 2, 0),
        ("sk-3,sk-4;sk-5\n\tsk-6  sk-3 ,, ;", 4, 1),
        ("sk-1 sk-7", 1, 1),
    ] {
        let (status, body) = t
            .post(
                "/api/keys/add-multiple",
                json!({"group_id": gid, "keys_text": text}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{text}: {body}");
        assert_eq!(body["data"]["added_count"], added, "{text}");
        assert_eq!(body["data"]["ignored_count"], ignored, "{text}");
    }
    assert_eq!(
        keys(&t, &format!("group_id={gid}")).await["pagination"]["total_items"],
        7
    );
    for (body, code) in [
        (
            json!({"group_id": gid, "keys_text": " \n "}),
            "VALIDATION_FAILED",
        ),
        (
            json!({"group_id": gid, "keys_text": ",;, "}),
            "VALIDATION_FAILED",
        ),
        (
            json!({"group_id": 0, "keys_text": "sk-1"}),
            "VALIDATION_FAILED",
        ),
        (json!({"group_id": gid}), "INVALID_JSON"),
        (json!({"keys_text": "sk"}), "INVALID_JSON"),
        (json!({"group_id": "1", "keys_text": "sk"}), "INVALID_JSON"),
    ] {
        for route in [
            "add-multiple",
            "delete-multiple",
            "restore-multiple",
            "test-multiple",
        ] {
            let (status, res) = t.post(&format!("/api/keys/{route}"), body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{route} {body}: {res}");
            assert_eq!(res["code"], code, "{route} {body}");
        }
    }
    let too_many: Vec<String> = (0..5001).map(|i| format!("sk-{i}")).collect();
    for route in [
        "add-multiple",
        "delete-multiple",
        "restore-multiple",
        "test-multiple",
    ] {
        let (status, res) = t
            .post(
                &format!("/api/keys/{route}"),
                json!({"group_id": gid, "keys_text": too_many.join(" ")}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{route}");
        assert!(res["message"].as_str().unwrap().contains("5000"), "{res}");
        let (status, _) = t
            .post(
                &format!("/api/keys/{route}"),
                json!({"group_id": 424242, "keys_text": "sk-1"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{route}");
    }
    t.stop().await;
}

#[actix_rt::test]
async fn export_streams_keys_as_a_text_download() {
    let t = TestServer::start(&["sk-ok"]).await;
    let all: Vec<String> = (0..1234).map(|i| format!("sk-export-{i:05}")).collect();
    let gid = t
        .create_group("exp", &[], json!({"blacklist_threshold": 1}))
        .await;
    let (status, _) = t
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": all.join("\n")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    t.post(
        "/api/keys/test-multiple",
        json!({"group_id": gid, "keys_text": "sk-export-00000"}),
    )
    .await;

    let res = t
        .send(
            "GET",
            &format!("/api/keys/export?group_id={gid}"),
            Some((CredentialPosition::Query, AUTH)),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.header("content-type").unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        res.header("content-disposition").unwrap(),
        "attachment; filename=keys-exp-all.txt"
    );
    let lines: Vec<String> = res.text().lines().map(str::to_string).collect();
    assert_eq!(lines, all);

    let res = t
        .send(
            "GET",
            &format!("/api/keys/export?group_id={gid}&status=invalid"),
            Some((CredentialPosition::Query, AUTH)),
            &[],
            None,
        )
        .await;
    assert_eq!(res.text(), "sk-export-00000\n");
    assert!(res
        .header("content-disposition")
        .unwrap()
        .contains("keys-exp-invalid.txt"));
    let res = t
        .send(
            "GET",
            &format!("/api/keys/export?group_id={gid}&status=active"),
            Some((CredentialPosition::Query, AUTH)),
            &[],
            None,
        )
        .await;
    assert_eq!(res.text().lines().count(), 1233);

    for (query, status) in [
        (
            format!("group_id={gid}&status=nope"),
            StatusCode::BAD_REQUEST,
        ),
        ("group_id=x".to_string(), StatusCode::BAD_REQUEST),
        ("".to_string(), StatusCode::BAD_REQUEST),
        ("group_id=999".to_string(), StatusCode::NOT_FOUND),
    ] {
        let (got, body) = t.get(&format!("/api/keys/export?{query}")).await;
        assert_eq!(got, status, "{query}: {body}");
    }
    t.stop().await;
}

#[actix_rt::test]
async fn notes_are_trimmed_and_limited() {
    let t = TestServer::start(&[]).await;
    let gid = t.create_group("n", &["sk-n"], json!({})).await;
    let id = key_id(&t, gid, "sk-n").await;
    let (status, body) = t
        .put(
            &format!("/api/keys/{id}/notes"),
            json!({"notes": "  team A  "}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        keys(&t, &format!("group_id={gid}")).await["items"][0]["notes"],
        "team A"
    );
    let (status, _) = t
        .put(
            &format!("/api/keys/{id}/notes"),
            json!({"notes": "é".repeat(255)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "255 characters, not bytes");
    let (status, body) = t
        .put(
            &format!("/api/keys/{id}/notes"),
            json!({"notes": "x".repeat(256)}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "VALIDATION_FAILED");
    let (status, body) = t.put("/api/keys/999999/notes", json!({"notes": "x"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Key not found");
    let (status, body) = t.put("/api/keys/abc/notes", json!({"notes": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Invalid key ID format");
    let (status, body) = t
        .put(&format!("/api/keys/{id}/notes"), json!({"notes": 5}))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("INVALID_JSON"))
    );
    t.stop().await;
}

#[actix_rt::test]
async fn test_multiple_probes_keys_and_updates_their_health() {
    let t = TestServer::start(&["sk-good"]).await;
    let gid = t
        .create_group(
            "t",
            &["sk-good", "sk-bad"],
            json!({"blacklist_threshold": 2}),
        )
        .await;
    t.mock.clear_requests();
    let (status, body) = t
        .post(
            "/api/keys/test-multiple",
            json!({"group_id": gid, "keys_text": "sk-good sk-bad sk-stranger"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["data"]["results"].as_array().unwrap();
    assert_eq!(
        results[0],
        json!({"key_value": "sk-good", "is_valid": true})
    );
    assert_eq!(results[1]["is_valid"], false);
    assert!(
        results[1]["error"]
            .as_str()
            .unwrap()
            .starts_with("[status 401] Incorrect API key"),
        "{body}"
    );
    assert_eq!(
        results[2],
        json!({"key_value": "sk-stranger", "is_valid": false,
               "error": "Key does not exist in this group or has been removed."})
    );
    assert!(body["data"]["total_duration"].as_u64().is_some());
    // The validation request is the channel's: POST /v1/chat/completions with the test model.
    let probes = t.mock.requests();
    assert_eq!(probes.len(), 2, "unknown keys are not sent upstream");
    assert_eq!(probes[0].path, "/v1/chat/completions");
    let sent: Value = serde_json::from_slice(&probes[0].body).unwrap();
    assert_eq!(
        sent,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    );

    // One failure (threshold 2): still active; a second one blacklists it.
    let bad = keys(&t, &format!("group_id={gid}&key_value=sk-bad")).await["items"][0].clone();
    assert_eq!(
        (bad["status"].clone(), bad["failure_count"].clone()),
        (json!("active"), json!(1))
    );
    t.post(
        "/api/keys/test-multiple",
        json!({"group_id": gid, "keys_text": "sk-bad"}),
    )
    .await;
    let bad = keys(&t, &format!("group_id={gid}&key_value=sk-bad")).await["items"][0].clone();
    assert_eq!(
        (bad["status"].clone(), bad["failure_count"].clone()),
        (json!("invalid"), json!(2))
    );
    // The pool agrees at once: only sk-good is used.
    t.mock.clear_requests();
    for _ in 0..3 {
        let (status, _) = t.chat("t", false).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(t.keys_seen(), vec!["sk-good"; 3]);
    // A passing test brings a blacklisted key back with zero failures.
    t.mock.add_key("sk-bad");
    let (_, body) = t
        .post(
            "/api/keys/test-multiple",
            json!({"group_id": gid, "keys_text": "sk-bad"}),
        )
        .await;
    assert_eq!(body["data"]["results"][0]["is_valid"], true);
    let bad = keys(&t, &format!("group_id={gid}&key_value=sk-bad")).await["items"][0].clone();
    assert_eq!(
        (bad["status"].clone(), bad["failure_count"].clone()),
        (json!("active"), json!(0))
    );
    t.mock.clear_requests();
    for _ in 0..2 {
        t.chat("t", false).await;
    }
    let mut seen = t.keys_seen();
    seen.sort();
    assert_eq!(seen, vec!["sk-bad", "sk-good"]);
    t.stop().await;
}

#[actix_rt::test]
async fn restore_and_clear_reach_the_pool_at_once() {
    let t = TestServer::start(&["sk-1"]).await;
    let gid = t
        .create_group(
            "r",
            &["sk-1", "sk-2", "sk-3"],
            json!({"blacklist_threshold": 1, "max_retries": 0}),
        )
        .await;
    let (_, body) = t
        .post(
            "/api/keys/test-multiple",
            json!({"group_id": gid, "keys_text": "sk-2 sk-3"}),
        )
        .await;
    assert_eq!(body["data"]["results"][1]["is_valid"], false);
    assert_eq!(
        keys(&t, &format!("group_id={gid}&status=invalid")).await["pagination"]["total_items"],
        2
    );

    t.mock.add_key("sk-2");
    let (status, body) = t
        .post(
            "/api/keys/restore-multiple",
            json!({"group_id": gid, "keys_text": "sk-2 sk-1 sk-9"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!({"restored_count": 1, "ignored_count": 2, "total_in_group": 3})
    );
    t.mock.clear_requests();
    for _ in 0..4 {
        assert_eq!(t.chat("r", false).await.0, StatusCode::OK);
    }
    let mut seen = t.keys_seen();
    seen.sort();
    assert_eq!(seen, vec!["sk-1", "sk-1", "sk-2", "sk-2"]);

    let (status, body) = t
        .post("/api/keys/restore-all-invalid", json!({"group_id": gid}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"code": 0, "message": "1 keys restored"}));
    let (_, body) = t
        .admin_lang(
            "POST",
            "/api/keys/restore-all-invalid",
            Some(json!({"group_id": gid})),
            "zh-CN",
        )
        .await;
    assert_eq!(body["message"], "已恢复 0 个密钥");

    t.post(
        "/api/keys/test-multiple",
        json!({"group_id": gid, "keys_text": "sk-3"}),
    )
    .await;
    let (status, body) = t
        .post("/api/keys/clear-all-invalid", json!({"group_id": gid}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["message"], "1 invalid keys cleared");
    assert_eq!(
        keys(&t, &format!("group_id={gid}")).await["pagination"]["total_items"],
        2
    );

    let (status, body) = t
        .post("/api/keys/clear-all", json!({"group_id": gid}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["message"], "2 keys cleared");
    let (status, body) = t.chat("r", false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    let (status, body) = t
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": "sk-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        t.chat("r", false).await.0,
        StatusCode::OK,
        "added keys are leased at once"
    );
    let (status, body) = t
        .post(
            "/api/keys/delete-multiple",
            json!({"group_id": gid, "keys_text": "sk-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(t.chat("r", false).await.0, StatusCode::SERVICE_UNAVAILABLE);

    for route in ["restore-all-invalid", "clear-all-invalid", "clear-all"] {
        let (status, body) = t
            .post(&format!("/api/keys/{route}"), json!({"group_id": 999}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{route}: {body}");
        let (status, body) = t.post(&format!("/api/keys/{route}"), json!({})).await;
        assert_eq!(
            (status, body["code"].clone()),
            (StatusCode::BAD_REQUEST, json!("INVALID_JSON")),
            "{route}"
        );
        let (status, _) = t
            .post(&format!("/api/keys/{route}"), json!({"group_id": -4}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{route}");
    }
    t.stop().await;
}
