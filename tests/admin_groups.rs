//! Group routes beyond CRUD: config options, reorder, stats, copy; ids, 404s, 409s, auth,
//! languages, and hot reload of group writes into the proxy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use chrono::Duration;
use serde_json::json;
use support::{hourly, this_hour, TestServer, PROXY_KEY};

#[actix_rt::test]
async fn every_group_route_checks_the_admin_key_in_all_positions() {
    let t = TestServer::start(&[]).await;
    for (method, path) in [
        ("GET", "/api/channel-types"),
        ("GET", "/api/groups"),
        ("POST", "/api/groups"),
        ("GET", "/api/groups/list"),
        ("GET", "/api/groups/config-options"),
        ("PUT", "/api/groups/reorder"),
        ("PUT", "/api/groups/999999"),
        ("DELETE", "/api/groups/999999"),
        ("GET", "/api/groups/999999/stats"),
        ("POST", "/api/groups/999999/copy"),
    ] {
        t.assert_admin_auth(method, path).await;
    }
    t.stop().await;
}

#[actix_rt::test]
async fn config_options_list_the_overridable_settings_with_current_values() {
    let t = TestServer::start(&[]).await;
    let (status, _) = t.put("/api/settings", json!({"max_retries": 7})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = t.get("/api/groups/config-options").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let options = body["data"].as_array().unwrap();
    let overridable = gpt_load_actors::settings::SETTINGS
        .iter()
        .filter(|d| d.group_overridable)
        .count();
    assert_eq!(options.len(), overridable);
    let keys: Vec<&str> = options.iter().map(|o| o["key"].as_str().unwrap()).collect();
    for gpt_load_key in [
        "request_timeout",
        "idle_conn_timeout",
        "connect_timeout",
        "max_idle_conns",
        "max_idle_conns_per_host",
        "response_header_timeout",
        "proxy_url",
        "max_retries",
        "blacklist_threshold",
        "failover_status_codes",
        "key_validation_interval_minutes",
        "key_validation_concurrency",
        "key_validation_timeout_seconds",
        "enable_request_body_logging",
    ] {
        assert!(
            keys.contains(&gpt_load_key),
            "GPT-Load's override {gpt_load_key}"
        );
    }
    assert!(!keys.contains(&"app_url") && !keys.contains(&"proxy_keys"));
    assert!(!keys.contains(&"request_log_retention_days"));
    let retries = options.iter().find(|o| o["key"] == "max_retries").unwrap();
    assert_eq!(retries["default_value"], 7, "the current system value");
    assert_eq!(retries["name"], "Max Retries");
    let logging = options
        .iter()
        .find(|o| o["key"] == "enable_request_body_logging")
        .unwrap();
    assert_eq!(logging["default_value"], false);

    let (_, body) = t
        .admin_lang("GET", "/api/groups/config-options", None, "zh-CN,zh;q=0.9")
        .await;
    let retries = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"] == "max_retries")
        .unwrap()
        .clone();
    assert_eq!(retries["name"], "最大重试次数");
    assert_eq!(body["message"], "操作成功");
    t.stop().await;
}

#[actix_rt::test]
async fn reorder_sets_sort_in_one_transaction() {
    let t = TestServer::start(&[]).await;
    let a = t.create_group("a", &[], json!({})).await;
    let b = t.create_group("b", &[], json!({})).await;
    let c = t.create_group("c", &[], json!({})).await;
    let (status, body) = t
        .put(
            "/api/groups/reorder",
            json!({"items": [{"id": c, "sort": 10}, {"id": a, "sort": 20}, {"id": b, "sort": 30}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "Group order saved");
    let (_, body) = t.get("/api/groups").await;
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["c", "a", "b"]);

    for (items, needle) in [
        (json!([]), "items"),
        (json!([{"id": 0, "sort": 1}]), "items[0].id"),
        (
            json!([{"id": a, "sort": 1}, {"id": b, "sort": -1}]),
            "items[1].sort",
        ),
        (
            json!([{"id": a, "sort": 1}, {"id": a, "sort": 2}]),
            "Duplicate",
        ),
    ] {
        let (status, body) = t.put("/api/groups/reorder", json!({"items": items})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{items} -> {body}");
        assert_eq!(body["code"], "VALIDATION_FAILED");
        assert!(body["message"].as_str().unwrap().contains(needle), "{body}");
    }
    // Issue 18, point 6: an unknown id fails the whole request with GPT-Load's 400
    // VALIDATION_FAILED, and nothing is written.
    let (status, body) = t
        .put(
            "/api/groups/reorder",
            json!({"items": [{"id": a, "sort": 99}, {"id": 424242, "sort": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "VALIDATION_FAILED");
    assert!(body["message"].as_str().unwrap().contains("424242"));
    assert_eq!(body.as_object().unwrap().len(), 2, "code and message only");
    let (_, body) = t.get("/api/groups").await;
    assert_eq!(body["data"][1]["name"], "a");
    assert_eq!(body["data"][1]["sort"], 20);
    // Missing field / wrong type → INVALID_JSON.
    let (status, body) = t.put("/api/groups/reorder", json!({})).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("INVALID_JSON"))
    );
    let (status, body) = t
        .put(
            "/api/groups/reorder",
            json!({"items": [{"id": "x", "sort": 1}]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("INVALID_JSON"))
    );
    t.stop().await;
}

#[actix_rt::test]
async fn stats_sum_hourly_rows_per_period() {
    let t = TestServer::start(&[]).await;
    let id = t
        .create_group("s", &["sk-1", "sk-2"], json!({"blacklist_threshold": 1}))
        .await;
    let other = t.create_group("other", &[], json!({})).await;
    let hour = this_hour();
    t.repo()
        .insert_hourly_stats(vec![
            hourly(id, hour, 8, 2),
            hourly(id, hour - Duration::hours(23), 10, 0),
            hourly(id, hour - Duration::hours(24), 100, 100),
            hourly(id, hour - Duration::days(6), 5, 5),
            hourly(id, hour - Duration::days(29), 1, 0),
            hourly(id, hour - Duration::days(31), 1000, 0),
            hourly(other, hour, 50, 50),
        ])
        .await
        .unwrap();
    let (status, body) = t.get(&format!("/api/groups/{id}/stats")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let d = &body["data"];
    assert_eq!(
        d["key_stats"],
        json!({"total_keys": 2, "active_keys": 2, "invalid_keys": 0, "disabled_keys": 0,
            "cooling_keys": 0})
    );
    assert_eq!(
        d["stats_24_hour"],
        json!({"total_requests": 20, "failed_requests": 2, "failure_rate": 0.1})
    );
    assert_eq!(d["stats_7_day"]["total_requests"], 230);
    assert_eq!(d["stats_7_day"]["failed_requests"], 107);
    assert_eq!(d["stats_7_day"]["failure_rate"], 0.4652);
    assert_eq!(d["stats_30_day"]["total_requests"], 231);

    let (status, body) = t.get(&format!("/api/groups/{other}/stats")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["stats_30_day"]["failure_rate"], 0.5);
    assert_eq!(body["data"]["key_stats"]["total_keys"], 0);

    let (status, body) = t.get("/api/groups/abc/stats").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "BAD_REQUEST", "message": "Invalid group ID format"})
    );
    let (status, body) = t.get("/api/groups/999/stats").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"code": "NOT_FOUND", "message": "Group not found"})
    );
    t.stop().await;
}

async fn key_values(t: &TestServer, id: i64) -> Vec<String> {
    let (_, body) = t
        .get(&format!("/api/keys?group_id={id}&page_size=100"))
        .await;
    let mut keys: Vec<String> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_value"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

/// Issue 18, point 9: like GPT-Load, a copy's keys are imported by a background `KEY_IMPORT`
/// task for the new group; when another task holds the slot GPT-Load drops them, and we copy
/// them at once instead (docs/compatibility.md).
#[actix_rt::test]
async fn copy_imports_keys_with_a_task_or_at_once_when_one_runs() {
    let t = TestServer::start(&["sk-c1", "sk-c2", "sk-hang"]).await;
    let src = t.create_group("src", &["sk-c1", "sk-c2"], json!({})).await;
    let (status, body) = t.post(&format!("/api/groups/{src}/copy"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["code"], 0);
    assert_eq!(body["message"], "Success");
    assert_eq!(body["data"]["group"]["name"], "src_copy");
    let first = body["data"]["group"]["id"].as_i64().unwrap();
    let done = t.wait_for_task(std::time::Duration::from_secs(30)).await;
    assert_eq!(done["task_type"], "KEY_IMPORT");
    assert_eq!(done["group_name"], "src_copy");
    assert_eq!(done["total"], 2);
    assert_eq!(
        done["result"],
        json!({"added_count": 2, "ignored_count": 0}),
        "{done}"
    );
    assert_eq!(key_values(&t, first).await, vec!["sk-c1", "sk-c2"]);

    // Hold the task slot with a validation that waits on a hanging upstream.
    let slow = t
        .create_group(
            "slow",
            &["sk-hang"],
            json!({"key_validation_timeout_seconds": 3}),
        )
        .await;
    t.mock
        .script("sk-hang", gpt_load_mock_upstream::Behavior::Hang);
    let (status, body) = t
        .post("/api/keys/validate-group", json!({"group_id": slow}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t.post(&format!("/api/groups/{src}/copy"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "Success");
    let second = body["data"]["group"]["id"].as_i64().unwrap();
    assert_eq!(
        key_values(&t, second).await,
        vec!["sk-c1", "sk-c2"],
        "copied in the copy's own transaction, not lost"
    );
    let (_, status) = t.get("/api/tasks/status").await;
    assert_eq!(status["data"]["task_type"], "KEY_VALIDATION");
    let done = t.wait_for_task(std::time::Duration::from_secs(30)).await;
    assert_eq!(done["task_type"], "KEY_VALIDATION");
    t.stop().await;
}

/// Issue 18, point 5: `GET /api/groups/list` returns GPT-Load's whole group model with only
/// `id`, `name` and `display_name` set (other fields at their zero values), in id order.
#[actix_rt::test]
async fn groups_list_returns_zeroed_models_in_id_order() {
    let t = TestServer::start(&[]).await;
    let a = t.create_group("a", &[], json!({"max_retries": 1})).await;
    let b = t.create_group("b", &[], json!({})).await;
    let (status, _) = t
        .put(
            "/api/groups/reorder",
            json!({"items": [{"id": b, "sort": 1}, {"id": a, "sort": 5}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = t.get("/api/groups/list").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["code"].clone(), body["message"].clone()),
        (json!(0), json!("Success"))
    );
    let list = body["data"].as_array().unwrap();
    let ids: Vec<i64> = list.iter().map(|g| g["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![a, b], "id order, not sort order");
    let first = &list[0];
    assert_eq!(first["name"], "a");
    assert_eq!(first["display_name"], "");
    for (field, zero) in [
        ("endpoint", json!("")),
        ("description", json!("")),
        ("group_type", json!("")),
        ("upstreams", json!(null)),
        ("channel_type", json!("")),
        ("sort", json!(0)),
        ("test_model", json!("")),
        ("validation_endpoint", json!("")),
        ("param_overrides", json!(null)),
        ("config", json!(null)),
        ("header_rules", json!(null)),
        ("proxy_keys", json!("")),
        ("api_keys", json!(null)),
        ("last_validated_at", json!(null)),
        ("created_at", json!("0001-01-01T00:00:00Z")),
        ("updated_at", json!("0001-01-01T00:00:00Z")),
    ] {
        assert_eq!(first[field], zero, "{field}");
    }
    let config = first["effective_config"].as_object().unwrap();
    assert_eq!(config["max_retries"], 0, "zero values, not the group's");
    assert_eq!(config["app_url"], "");
    assert_eq!(config["enable_request_body_logging"], false);
    t.stop().await;
}

#[actix_rt::test]
async fn copy_duplicates_settings_and_keys_by_mode() {
    let t = TestServer::start(&["sk-good", "sk-other"]).await;
    let (status, body) = t
        .post(
            "/api/groups",
            json!({
                "name": "src",
                "display_name": "Source",
                "channel_type": "openai",
                "test_model": "gpt-4o-mini",
                "upstreams": [{"url": t.mock.base_url(), "weight": 1}],
                "proxy_keys": PROXY_KEY,
                "config": {"max_retries": 0, "blacklist_threshold": 1},
                "param_overrides": {"temperature": 0.5},
                "sort": 4,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let src = body["data"]["id"].as_i64().unwrap();
    let (status, _) = t
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": src, "keys_text": "sk-good sk-other sk-bad"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // sk-bad fails its test and is blacklisted (threshold 1).
    let (status, body) = t
        .post(
            "/api/keys/test-multiple",
            json!({"group_id": src, "keys_text": "sk-bad"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["results"][0]["is_valid"], false);

    let (status, body) = t.post(&format!("/api/groups/{src}/copy"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "Success");
    t.wait_for_task(std::time::Duration::from_secs(30)).await;
    let copy = &body["data"]["group"];
    assert_eq!(copy["name"], "src_copy");
    assert_eq!(copy["display_name"], "Source Copy");
    assert_eq!(
        copy["config"],
        json!({"max_retries": 0, "blacklist_threshold": 1})
    );
    assert_eq!(copy["param_overrides"], json!({"temperature": 0.5}));
    assert_eq!(copy["proxy_keys"], PROXY_KEY);
    assert_eq!(copy["sort"], 4);
    let all = copy["id"].as_i64().unwrap();
    assert_eq!(
        key_values(&t, all).await,
        vec!["sk-bad", "sk-good", "sk-other"]
    );

    let (_, body) = t
        .post(
            &format!("/api/groups/{src}/copy"),
            json!({"copy_keys": "valid_only"}),
        )
        .await;
    assert_eq!(body["data"]["group"]["name"], "src_copy_2");
    t.wait_for_task(std::time::Duration::from_secs(30)).await;
    let valid = body["data"]["group"]["id"].as_i64().unwrap();
    assert_eq!(key_values(&t, valid).await, vec!["sk-good", "sk-other"]);

    let (_, body) = t
        .post(
            &format!("/api/groups/{src}/copy"),
            json!({"copy_keys": "none"}),
        )
        .await;
    assert_eq!(body["data"]["group"]["name"], "src_copy_3");
    let none = body["data"]["group"]["id"].as_i64().unwrap();
    assert!(key_values(&t, none).await.is_empty());

    // The copies proxy at once, with their copied keys (copied keys start active).
    t.mock.clear_requests();
    for _ in 0..2 {
        let (status, body) = t.chat("src_copy_2", false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut seen = t.keys_seen();
    seen.sort();
    assert_eq!(seen, vec!["sk-good", "sk-other"]);
    let (status, _) = t.chat("src_copy_3", false).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "no keys were copied"
    );

    let (status, body) = t
        .post(
            &format!("/api/groups/{src}/copy"),
            json!({"copy_keys": "some"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "VALIDATION_FAILED");
    assert!(body["message"].as_str().unwrap().contains("copy_keys"));
    let (status, _) = t.post("/api/groups/999/copy", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t.post("/api/groups/x/copy", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let res = t
        .send(
            "POST",
            &format!("/api/groups/{src}/copy"),
            Some((support::CredentialPosition::Bearer, support::AUTH)),
            &[],
            Some(("application/json", b"not json".to_vec())),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json()["code"], "INVALID_JSON");
    t.stop().await;
}

#[actix_rt::test]
async fn group_writes_reach_the_proxy_without_a_restart() {
    let t = TestServer::start(&["sk-1"]).await;
    let id = t.create_group("live", &["sk-1"], json!({})).await;
    let (status, _) = t.chat_with_key("live", "sk-new-group-key").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = t
        .put(
            &format!("/api/groups/{id}"),
            json!({"proxy_keys": "sk-new-group-key"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t.chat_with_key("live", "sk-new-group-key").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Pointing the group at a dead upstream takes effect on the next request.
    let (status, _) = t
        .put(
            &format!("/api/groups/{id}"),
            json!({"upstreams": [{"url": "http://127.0.0.1:9", "weight": 1}], "config": {"max_retries": 0}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t.chat_with_key("live", "sk-new-group-key").await;
    assert!(status.is_server_error(), "{status}");

    let (status, _) = t.delete(&format!("/api/groups/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t.chat_with_key("live", "sk-new-group-key").await;
    assert_ne!(status, StatusCode::OK);
    t.stop().await;
}

#[actix_rt::test]
async fn messages_follow_accept_language_and_codes_do_not() {
    let t = TestServer::start(&[]).await;
    let id = t.create_group("lang", &[], json!({})).await;
    let cases = [
        (None, "Group not found", "Success"),
        (Some("zh-CN,zh;q=0.9,en;q=0.8"), "分组不存在", "操作成功"),
        (Some("zh-TW"), "分组不存在", "操作成功"),
        (Some("ja"), "グループが見つかりません", "成功"),
        (Some("fr-FR,ja;q=0.9"), "Group not found", "Success"),
        (Some("en-US"), "Group not found", "Success"),
    ];
    for (lang, not_found, success) in cases {
        let headers: Vec<(&str, &str)> = lang
            .map(|l| vec![("Accept-Language", l)])
            .unwrap_or_default();
        let bearer = Some((support::CredentialPosition::Bearer, support::AUTH));
        let res = t
            .send("GET", "/api/groups/999/stats", bearer, &headers, None)
            .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        assert_eq!(
            res.json(),
            json!({"code": "NOT_FOUND", "message": not_found}),
            "{lang:?}"
        );
        let res = t.send("GET", "/api/groups", bearer, &headers, None).await;
        assert_eq!(res.json()["message"], success, "{lang:?}");
        assert_eq!(res.json()["code"], 0);
    }
    let (status, body) = t
        .admin_lang(
            "PUT",
            &format!("/api/groups/{id}"),
            Some(json!({"name": "Bad Name"})),
            "ja-JP",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "VALIDATION_FAILED");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("無効なグループ名"),
        "{body}"
    );
    let (_, body) = t
        .admin_lang("DELETE", &format!("/api/groups/{id}"), None, "zh-CN")
        .await;
    assert_eq!(body["message"], "分组及相关密钥删除成功");
    t.stop().await;
}

#[actix_rt::test]
async fn unknown_methods_and_ids_never_500() {
    let t = TestServer::start(&[]).await;
    let id = t.create_group("m", &[], json!({})).await;
    for (method, path) in [
        ("GET", format!("/api/groups/{id}")),
        ("PATCH", "/api/groups".to_string()),
        ("GET", "/api/groups/reorder".to_string()),
    ] {
        let res = t
            .send(
                method,
                &path,
                Some((support::CredentialPosition::Bearer, support::AUTH)),
                &[],
                None,
            )
            .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(res.json(), json!({"error": "Not Found"}));
    }
    for path in [
        "/api/groups/-1",
        "/api/groups/1.5",
        "/api/groups/99999999999999999999999",
    ] {
        let (status, body) = t.put(path, json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    }
    // Oversized bodies are refused with 413 before any parsing.
    let huge = "x".repeat(33 << 20);
    let res = t
        .send(
            "POST",
            "/api/groups",
            Some((support::CredentialPosition::Bearer, support::AUTH)),
            &[],
            Some((
                "application/json",
                format!("{{\"name\":\"{huge}\"}}").into_bytes(),
            )),
        )
        .await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.json()["code"], "PAYLOAD_TOO_LARGE");
    let (status, body) = t.get("/api/groups").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
    t.stop().await;
}
