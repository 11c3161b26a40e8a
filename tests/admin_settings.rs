//! Settings routes: the categorised listing (localised), every validation rule of an update,
//! no partial writes, and changes that reach the proxy without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use serde_json::{json, Value};
use support::{CredentialPosition, TestServer, AUTH};

#[actix_rt::test]
async fn settings_routes_check_the_admin_key_in_all_positions() {
    let t = TestServer::start(&[]).await;
    t.assert_admin_auth("GET", "/api/settings").await;
    t.assert_admin_auth("PUT", "/api/settings").await;
    t.stop().await;
}

fn flatten(body: &Value) -> Vec<Value> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["settings"].as_array().unwrap().clone())
        .collect()
}

#[actix_rt::test]
async fn listing_is_grouped_ordered_and_localised() {
    let t = TestServer::start(&[]).await;
    let (status, body) = t.get("/api/settings").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["Basic", "Request Settings", "Key Configuration"]
    );
    let all = flatten(&body);
    let keys: Vec<&str> = all.iter().map(|s| s["key"].as_str().unwrap()).collect();
    // Every setting, in table order within its category, categories in order of appearance.
    let mut expected: Vec<&str> = Vec::new();
    for category in ["Basic", "Request Settings", "Key Configuration"] {
        expected.extend(
            gpt_load_actors::settings::SETTINGS
                .iter()
                .filter(|d| d.category == category)
                .map(|d| d.key),
        );
    }
    assert_eq!(keys, expected);
    assert_eq!(keys[0], "app_url");
    let retention = all
        .iter()
        .find(|s| s["key"] == "request_log_retention_days")
        .unwrap();
    assert_eq!(
        *retention,
        json!({
            "key": "request_log_retention_days",
            "name": "Log Retention Days",
            "value": 7,
            "type": "int",
            "default_value": "7",
            "description": "Days to keep request logs; 0 keeps them forever.",
            "category": "Basic",
            "min_value": 0,
            "required": false,
        })
    );
    assert!(all
        .iter()
        .find(|s| s["key"] == "proxy_url")
        .unwrap()
        .get("min_value")
        .is_none());

    let (_, zh) = t.admin_lang("GET", "/api/settings", None, "zh-CN").await;
    assert_eq!(zh["data"][0]["category_name"], "基础参数");
    assert_eq!(flatten(&zh)[0]["name"], "项目地址");
    let (_, ja) = t
        .admin_lang("GET", "/api/settings", None, "ja-JP;q=1")
        .await;
    assert_eq!(ja["data"][2]["category_name"], "キー設定");
    let ja_retries = flatten(&ja)
        .into_iter()
        .find(|s| s["key"] == "max_retries")
        .unwrap();
    assert_eq!(ja_retries["name"], "最大リトライ回数");
    t.stop().await;
}

#[actix_rt::test]
async fn every_rule_is_a_400_naming_the_setting_and_nothing_is_written() {
    let t = TestServer::start(&[]).await;
    for (bad, needle) in [
        (json!({"max_retries": -1}), "max_retries"),
        (json!({"max_retries": "3"}), "max_retries"),
        (json!({"max_retries": 1.5}), "max_retries"),
        (json!({"max_retries": null}), "max_retries"),
        (
            json!({"request_log_retention_days": -1}),
            "request_log_retention_days",
        ),
        (json!({"request_timeout": 0}), "request_timeout"),
        (json!({"connect_timeout": 0}), "connect_timeout"),
        (
            json!({"key_validation_concurrency": 0}),
            "key_validation_concurrency",
        ),
        (
            json!({"failover_status_codes": "abc"}),
            "failover_status_codes",
        ),
        (
            json!({"failover_status_codes": "99"}),
            "failover_status_codes",
        ),
        (
            json!({"failover_status_codes": "4 00"}),
            "failover_status_codes",
        ),
        (
            json!({"min_usable_keys_percent": 101}),
            "min_usable_keys_percent",
        ),
        (json!({"request_timeout": 31_536_001}), "request_timeout"),
        (
            json!({"enable_request_body_logging": "yes"}),
            "enable_request_body_logging",
        ),
        (
            json!({"enable_request_body_logging": 1}),
            "enable_request_body_logging",
        ),
        (json!({"proxy_url": 5}), "proxy_url"),
        (json!({"app_url": ""}), "app_url"),
        (json!({"proxy_keys": " , "}), "proxy_keys"),
        (json!({"no_such_setting": 1}), "no_such_setting"),
        (
            json!({"max_retries": 1, "request_timeout": 0}),
            "request_timeout",
        ),
    ] {
        let (status, body) = t.put("/api/settings", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
        assert_eq!(body["code"], "VALIDATION_FAILED");
        assert!(
            body["message"].as_str().unwrap().contains(needle),
            "{bad} -> {body}"
        );
    }
    let (_, body) = t.get("/api/settings").await;
    let retries = flatten(&body)
        .into_iter()
        .find(|s| s["key"] == "max_retries")
        .unwrap();
    assert_eq!(retries["value"], 3, "no invalid update wrote anything");

    let (status, body) = t
        .admin_lang(
            "PUT",
            "/api/settings",
            Some(json!({"max_retries": -1})),
            "zh",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "VALIDATION_FAILED", "message": "设置项 'max_retries' 不能小于 0"})
    );

    for raw in [&b"[1,2]"[..], b"\"x\"", b"{", b""] {
        let res = t
            .send(
                "PUT",
                "/api/settings",
                Some((CredentialPosition::Bearer, AUTH)),
                &[],
                Some(("application/json", raw.to_vec())),
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
        assert_eq!(res.json()["code"], "INVALID_JSON");
    }
    let (status, body) = t.put("/api/settings", json!({})).await;
    assert_eq!(status, StatusCode::OK, "an empty object is a no-op: {body}");
    assert_eq!(
        body["message"],
        "Settings updated successfully. Configuration will be reloaded in the background across all instances."
    );
    t.stop().await;
}

#[actix_rt::test]
async fn setting_changes_reach_the_proxy_at_once() {
    let t = TestServer::start(&["sk-1"]).await;
    t.create_group("g", &["sk-1"], json!({})).await;
    let (status, _) = t.chat_with_key("g", "sk-global-new").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = t
        .put(
            "/api/settings",
            json!({"proxy_keys": " sk-global-new , sk-other ,"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t.chat_with_key("g", "sk-global-new").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = t.get("/api/settings").await;
    let keys = flatten(&body)
        .into_iter()
        .find(|s| s["key"] == "proxy_keys")
        .unwrap();
    assert_eq!(keys["value"], "sk-global-new,sk-other");

    // app_url changes every group's endpoint.
    t.put(
        "/api/settings",
        json!({"app_url": "https://gw.example.com/"}),
    )
    .await;
    let (_, body) = t.get("/api/groups").await;
    assert_eq!(
        body["data"][0]["endpoint"],
        "https://gw.example.com/proxy/g"
    );
    t.stop().await;
}
