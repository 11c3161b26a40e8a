//! The admin API subset of GPT-Load: auth, groups, keys, settings, health, error envelopes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use serde_json::{json, Value};
use support::{TestServer, AUTH};

#[actix_rt::test]
async fn login_answers_gpt_load_shapes() {
    let t = TestServer::start(&[]).await;
    let post = |body: &'static str| {
        t.client
            .post(t.url("/api/auth/login"))
            .insert_header(("content-type", "application/json"))
            .send_body(body)
    };
    let mut res = post(r#"{"auth_key":"test-admin-Kx93-long-key"}"#)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["success"], true);
    let mut res = post(r#"{"auth_key":"nope"}"#).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["success"], false);
    let mut res = post("{not json").await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.unwrap()["message"],
        "Invalid request format"
    );
    t.stop().await;
}

#[actix_rt::test]
async fn admin_key_is_accepted_in_all_four_positions_and_nothing_else() {
    let t = TestServer::start(&[]).await;
    let ok = [
        t.client.get(t.url(&format!("/api/groups?key={AUTH}"))),
        t.client
            .get(t.url("/api/groups"))
            .insert_header(("Authorization", format!("Bearer {AUTH}"))),
        t.client
            .get(t.url("/api/groups"))
            .insert_header(("X-Api-Key", AUTH)),
        t.client
            .get(t.url("/api/groups"))
            .insert_header(("X-Goog-Api-Key", AUTH)),
    ];
    for req in ok {
        let mut res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.json::<Value>().await.unwrap()["code"], 0);
    }
    let bad = [
        t.client.get(t.url("/api/groups")),
        t.client.get(t.url("/api/groups?key=wrong")),
        t.client
            .get(t.url("/api/groups"))
            .insert_header(("Authorization", "Bearer wrong")),
        t.client
            .get(t.url("/api/groups"))
            .insert_header(("Authorization", AUTH)),
        t.client
            .get(t.url("/api/groups"))
            .insert_header(("X-Api-Key", "wrong")),
        t.client
            .get(t.url("/api/groups"))
            .insert_header(("X-Goog-Api-Key", "wrong")),
    ];
    for req in bad {
        let mut res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"code": "UNAUTHORIZED", "message": "Authentication failed"})
        );
    }
    t.stop().await;
}

fn group_body(name: &str) -> Value {
    json!({
        "name": name,
        "display_name": "Display",
        "channel_type": "openai",
        "test_model": "gpt-4o-mini",
        "upstreams": [{"url": "https://api.openai.com", "weight": 1}],
        "proxy_keys": " sk-a,sk-b ",
        "config": {"max_retries": 1},
        "header_rules": [{"key": "x-extra", "value": "v", "action": "set"}],
    })
}

#[actix_rt::test]
async fn groups_crud_round_trip() {
    let t = TestServer::start(&[]).await;
    let (status, body) = t.post("/api/groups", group_body("alpha")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let g = &body["data"];
    let id = g["id"].as_i64().unwrap();
    assert_eq!(g["endpoint"], "http://127.0.0.1:0/proxy/alpha");
    assert_eq!(g["group_type"], "standard");
    assert_eq!(g["proxy_keys"], "sk-a,sk-b");
    assert_eq!(g["config"], json!({"max_retries": 1}));
    assert_eq!(g["header_rules"][0]["key"], "X-Extra");
    assert!(g["created_at"].as_str().unwrap().ends_with('Z'));

    let (status, body) = t.post("/api/groups", group_body("alpha")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "DUPLICATE_RESOURCE");

    let (status, body) = t
        .put(
            &format!("/api/groups/{id}"),
            json!({"display_name": "Renamed", "sort": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["display_name"], "Renamed");
    assert_eq!(
        body["data"]["test_model"], "gpt-4o-mini",
        "absent fields are kept"
    );

    let (status, body) = t.get("/api/groups/list").await;
    assert_eq!(status, StatusCode::OK);
    let brief = &body["data"][0];
    assert_eq!(
        (&brief["id"], &brief["name"], &brief["display_name"]),
        (&json!(id), &json!("alpha"), &json!("Renamed"))
    );

    let (status, _) = t.delete(&format!("/api/groups/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = t.delete(&format!("/api/groups/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NOT_FOUND");
    let (status, body) = t.get("/api/groups").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], json!([]));
    t.stop().await;
}

#[actix_rt::test]
async fn group_validation_rules() {
    let t = TestServer::start(&[]).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": "Bad Name"}), "name"),
        (json!({"channel_type": "nope"}), "channel type"),
        (json!({"group_type": "weird"}), "group_type"),
        (json!({"test_model": " "}), "test_model"),
        (json!({"upstreams": []}), "upstream"),
        (
            json!({"upstreams": [{"url": "ftp://x", "weight": 1}]}),
            "http",
        ),
        (
            json!({"upstreams": [{"url": "https://x", "weight": 0}]}),
            "weight",
        ),
        (
            json!({"validation_endpoint": "http://x/v1"}),
            "validation_endpoint",
        ),
        (json!({"config": {"unknown_key": 1}}), "unknown_key"),
        (json!({"config": {"max_retries": -1}}), "max_retries"),
        (json!({"config": {"app_url": "x"}}), "app_url"),
        (json!({"model_redirect_rules": {"a": ""}}), "redirect"),
        (
            json!({"header_rules": [{"key": "x-a", "value": "1", "action": "set"}, {"key": "X-A", "value": "2", "action": "set"}]}),
            "Duplicate header",
        ),
    ];
    for (patch, needle) in cases {
        let mut body = group_body("valid");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, res) = t.post("/api/groups", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {res}");
        assert_eq!(res["code"], "VALIDATION_FAILED", "{res}");
        let message = res["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{message} should mention {needle}"
        );
    }
    // Wrong JSON types are a 400 with the binder's text, never a 500.
    let (status, res) = t
        .post("/api/groups", json!({"name": "x", "sort": "high"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(res["code"], "INVALID_JSON");
    let mut res = t
        .client
        .post(t.url("/api/groups"))
        .insert_header(("Authorization", format!("Bearer {AUTH}")))
        .insert_header(("content-type", "application/json"))
        .send_body("{broken")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "INVALID_JSON");
    // Ids must be integers; unknown ids are 404.
    let (status, res) = t.put("/api/groups/abc", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{res}");
    let (status, _) = t.put("/api/groups/999", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Aggregate groups carry no upstreams and no test model.
    let (status, res) = t
        .post(
            "/api/groups",
            json!({"name": "agg", "group_type": "aggregate", "channel_type": "openai"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["data"]["upstreams"], json!([]));
    assert_eq!(res["data"]["test_model"], "-");
    t.stop().await;
}

#[actix_rt::test]
async fn keys_add_list_and_delete() {
    let t = TestServer::start(&[]).await;
    let (_, body) = t.post("/api/groups", group_body("k")).await;
    let gid = body["data"]["id"].as_i64().unwrap();
    let (status, body) = t
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": "sk-1, sk-2;sk-2\nsk-3  sk-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!({"added_count": 3, "ignored_count": 2, "total_in_group": 3})
    );
    let (_, body) = t
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": r#"["sk-3","sk-4"]"#}),
        )
        .await;
    assert_eq!(
        body["data"],
        json!({"added_count": 1, "ignored_count": 1, "total_in_group": 4})
    );

    let (status, body) = t
        .get(&format!("/api/keys?group_id={gid}&page=1&page_size=3"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"]["pagination"],
        json!({"page": 1, "page_size": 3, "total_items": 4, "total_pages": 2, "total_exact": true})
    );
    let first = &body["data"]["items"][0];
    assert_eq!(first["status"], "active");
    assert_eq!(first["key_hash"].as_str().unwrap().len(), 64);
    let (_, body) = t
        .get(&format!("/api/keys?group_id={gid}&key_value=sk-2"))
        .await;
    assert_eq!(body["data"]["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"]["items"][0]["key_value"], "sk-2");

    let (status, body) = t
        .post(
            "/api/keys/delete-multiple",
            json!({"group_id": gid, "keys_text": "sk-1 sk-9"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"],
        json!({"deleted_count": 1, "ignored_count": 1, "total_in_group": 3})
    );

    // Validation and lookups.
    for (path, expected) in [
        ("/api/keys".to_string(), StatusCode::BAD_REQUEST),
        (
            "/api/keys?group_id=abc".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        ("/api/keys?group_id=9999".to_string(), StatusCode::NOT_FOUND),
        (
            format!("/api/keys?group_id={gid}&status=weird"),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        assert_eq!(t.get(&path).await.0, expected, "{path}");
    }
    let (status, body) = t
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": "  "}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "VALIDATION_FAILED");
    let (status, body) = t
        .post("/api/keys/add-multiple", json!({"group_id": gid}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "INVALID_JSON");
    let too_many: Vec<String> = (0..5001).map(|i| format!("sk-{i}")).collect();
    let (status, _) = t
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": too_many.join(",")}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": 424242, "keys_text": "sk-x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.stop().await;
}

#[actix_rt::test]
async fn settings_list_and_validated_update() {
    let t = TestServer::start(&[]).await;
    let (status, body) = t.get("/api/settings").await;
    assert_eq!(status, StatusCode::OK);
    let categories = body["data"].as_array().unwrap();
    assert_eq!(categories.len(), 3);
    let all: Vec<&Value> = categories
        .iter()
        .flat_map(|c| c["settings"].as_array().unwrap())
        .collect();
    assert_eq!(all.len(), 28);
    let find = |key: &str| {
        all.iter()
            .find(|s| s["key"] == key)
            .copied()
            .unwrap()
            .clone()
    };
    assert_eq!(
        find("proxy_keys")["value"],
        AUTH,
        "proxy_keys is seeded from AUTH_KEY"
    );
    assert_eq!(find("app_url")["value"], "http://127.0.0.1:0");
    assert_eq!(find("max_retries")["value"], 3);
    assert_eq!(find("max_retries")["default_value"], "3");
    assert_eq!(find("enable_request_body_logging")["type"], "bool");

    let (status, body) = t
        .put(
            "/api/settings",
            json!({"max_retries": 5, "proxy_keys": " a , b,,"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = t.get("/api/settings").await;
    let values: Vec<Value> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["settings"].as_array().unwrap().clone())
        .collect();
    let value = |k: &str| values.iter().find(|s| s["key"] == k).unwrap()["value"].clone();
    assert_eq!(value("max_retries"), 5);
    assert_eq!(value("proxy_keys"), "a,b");

    for (bad, needle) in [
        (json!({"max_retries": -1}), "max_retries"),
        (json!({"max_retries": "3"}), "max_retries"),
        (json!({"request_timeout": 0}), "request_timeout"),
        (
            json!({"failover_status_codes": "abc"}),
            "failover_status_codes",
        ),
        (
            json!({"enable_request_body_logging": "yes"}),
            "enable_request_body_logging",
        ),
        (json!({"app_url": ""}), "app_url"),
        (json!({"no_such_setting": 1}), "no_such_setting"),
    ] {
        let (status, body) = t.put("/api/settings", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
        assert_eq!(body["code"], "VALIDATION_FAILED");
        assert!(body["message"].as_str().unwrap().contains(needle), "{body}");
    }
    // A failed update writes nothing, not even its valid part.
    let (status, _) = t
        .put(
            "/api/settings",
            json!({"max_retries": 1, "request_timeout": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body) = t.get("/api/settings").await;
    let values: Vec<Value> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["settings"].as_array().unwrap().clone())
        .collect();
    assert_eq!(
        values.iter().find(|s| s["key"] == "max_retries").unwrap()["value"],
        5
    );
    t.stop().await;
}

#[actix_rt::test]
async fn health_unknown_paths_and_security_headers() {
    let t = TestServer::start(&[]).await;
    let mut res = t.client.get(t.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    assert_eq!(res.headers().get("x-frame-options").unwrap(), "SAMEORIGIN");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["status"], "healthy");
    assert!(v["uptime"].as_str().unwrap().ends_with('s'));
    for path in ["/api/nope", "/proxy", "/api"] {
        let mut res = t.client.get(t.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"error": "Not Found"})
        );
    }
    let (status, body) = t.get("/api/channel-types").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["data"].as_array().unwrap().contains(&json!("openai")));
    t.stop().await;
}

#[actix_rt::test]
async fn over_the_concurrency_limit_is_a_503_with_retry_after() {
    let t = TestServer::start_with(&["sk-slow"], &[("MAX_CONCURRENT_REQUESTS", "1")]).await;
    let gid = t.create_group_for_limit().await;
    let _ = gid;
    t.mock
        .script("sk-slow", gpt_load_mock_upstream::Behavior::Hang);
    let slow = t
        .client
        .post(t.url("/proxy/lim/v1/chat/completions"))
        .insert_header(("Authorization", format!("Bearer {}", support::PROXY_KEY)))
        .send_json(&json!({"model": "m", "messages": []}));
    let slow = actix_rt::spawn(slow);
    let busy = support::wait_until(std::time::Duration::from_secs(5), || async {
        t.mock.total_requests() == 1
    })
    .await;
    assert!(busy);
    let mut res = t.client.get(t.url("/health")).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "health probes bypass the limit"
    );
    res.body().await.unwrap();
    // Unauthenticated work never reaches the limit: it is refused for what it is.
    let res = t.client.get(t.url("/api/groups")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let mut res = t
        .client
        .get(t.url("/api/groups"))
        .insert_header(("Authorization", format!("Bearer {AUTH}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers().get("retry-after").unwrap(), "1");
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "TOO_MANY_REQUESTS"
    );
    slow.abort();
    t.stop().await;
}

impl support::TestServer {
    async fn create_group_for_limit(&self) -> i64 {
        // Created before the slow request takes the only slot.
        self.create_group("lim", &["sk-slow"], json!({"response_header_timeout": 30}))
            .await
    }
}

/// Issue 18, point 4: gin's default `RedirectTrailingSlash` in GPT-Load sends a path with a
/// trailing slash to the route without it: 301 for GET, 307 for other methods (so the body is
/// sent again), the query kept, before any authentication. GPT-Load registers no HEAD route, so
/// gin has nothing to redirect a HEAD to.
#[actix_rt::test]
async fn trailing_slashes_redirect_like_gin() {
    let t = TestServer::start(&[]).await;
    let id = t.create_group("slashy", &[], json!({})).await;
    let client = awc::Client::builder().disable_redirects().finish();
    for (method, path, status, location) in [
        ("GET", "/api/groups/", 301, "/api/groups".to_string()),
        (
            "GET",
            "/api/keys/?group_id=1&page=2",
            301,
            "/api/keys?group_id=1&page=2".to_string(),
        ),
        ("POST", "/api/groups/", 307, "/api/groups".to_string()),
        (
            "DELETE",
            &format!("/api/groups/{id}/"),
            307,
            format!("/api/groups/{id}"),
        ),
        ("PUT", "/api/settings/", 307, "/api/settings".to_string()),
    ] {
        let mut res = client
            .request(method.parse().unwrap(), t.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            res.headers().get("location").unwrap().to_str().unwrap(),
            location,
            "{method} {path}"
        );
        assert!(res.body().await.unwrap().is_empty(), "{method} {path}");
    }
    // No route of that method without the slash: the usual JSON 404.
    for (method, path) in [
        ("PUT", "/api/groups/"),
        ("GET", "/api/nope/"),
        ("GET", "/api/"),
    ] {
        let mut res = client
            .request(method.parse().unwrap(), t.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
        if method != "HEAD" {
            assert_eq!(
                res.json::<Value>().await.unwrap(),
                json!({"error": "Not Found"})
            );
        }
    }
    // The group still exists: the redirected DELETE was not followed.
    let (status, body) = t.get("/api/groups").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    t.stop().await;
}

/// Issue 18, point 8: the smaller shapes GPT-Load's UI and scripts read. Aggregate members carry
/// the model's `effective_config` and `api_keys`; a valid `test-multiple` result has no `error`;
/// dashboard numbers print whole values as integers and leave out a zero `sub_value`; download
/// names are not quoted.
#[actix_rt::test]
async fn smaller_shapes_match_gpt_load() {
    let t = TestServer::start(&["sk-shape"]).await;
    let member = t
        .create_group("member", &["sk-shape"], json!({"max_retries": 7}))
        .await;
    let (status, body) = t
        .post(
            "/api/groups",
            json!({"name": "agg", "group_type": "aggregate", "channel_type": "openai"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let agg = body["data"]["id"].as_i64().unwrap();
    support::add_sub_groups(&t, agg, &[(member, 3)]).await;
    let (status, body) = t.get(&format!("/api/groups/{agg}/sub-groups")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let group = &body["data"][0]["group"];
    assert_eq!(group["name"], "member");
    assert_eq!(group["api_keys"], Value::Null);
    assert!(group.as_object().unwrap().contains_key("api_keys"));
    assert_eq!(group["effective_config"]["max_retries"], 7, "the override");
    assert_eq!(
        group["effective_config"]["blacklist_threshold"], 3,
        "the system value"
    );
    assert_eq!(body["data"][0]["weight"], 3);

    let (status, body) = t
        .post(
            "/api/keys/test-multiple",
            json!({"group_id": member, "keys_text": "sk-shape sk-stranger"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["data"]["results"].as_array().unwrap();
    assert_eq!(
        results[0],
        json!({"key_value": "sk-shape", "is_valid": true}),
        "no empty error field"
    );
    assert_eq!(results[1]["is_valid"], false);
    assert!(results[1]["error"].as_str().unwrap().contains("group"));

    let (status, body) = t.get("/api/dashboard/stats").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys = &body["data"]["key_count"];
    assert!(keys["value"].is_u64(), "1, not 1.0: {keys}");
    assert_eq!(keys["value"], 1);
    assert!(keys.get("sub_value").is_none(), "no invalid keys: {keys}");
    assert_eq!(keys["sub_value_tip"], "Invalid Keys");
    for card in ["rpm", "request_count", "error_rate"] {
        let card = &body["data"][card];
        assert!(card["value"].is_u64() && card["trend"].is_i64(), "{card}");
        assert!(card.get("sub_value").is_none(), "{card}");
    }

    let res = t
        .send(
            "GET",
            &format!("/api/keys/export?group_id={member}&key={AUTH}"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.header("content-disposition").unwrap(),
        "attachment; filename=keys-member-all.txt"
    );
    t.stop().await;
}
