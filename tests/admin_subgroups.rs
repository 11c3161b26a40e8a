//! Aggregate membership routes: add, list, reweight, remove, parents, and their constraints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use serde_json::json;
use support::TestServer;

async fn aggregate(t: &TestServer, name: &str) -> i64 {
    let (status, body) = t
        .post(
            "/api/groups",
            json!({"name": name, "group_type": "aggregate", "channel_type": "openai"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["id"].as_i64().unwrap()
}

#[actix_rt::test]
async fn every_sub_group_route_checks_the_admin_key_in_all_positions() {
    let t = TestServer::start(&[]).await;
    for (method, path) in [
        ("GET", "/api/groups/999999/sub-groups"),
        ("POST", "/api/groups/999999/sub-groups"),
        ("PUT", "/api/groups/999999/sub-groups/5/weight"),
        ("DELETE", "/api/groups/999999/sub-groups/5"),
        ("GET", "/api/groups/999999/parent-aggregate-groups"),
    ] {
        t.assert_admin_auth(method, path).await;
    }
    t.stop().await;
}

#[actix_rt::test]
async fn members_are_added_listed_reweighted_and_removed() {
    let t = TestServer::start(&[]).await;
    let agg = aggregate(&t, "agg").await;
    let a = t.create_group("a", &["sk-1", "sk-2"], json!({})).await;
    let b = t.create_group("b", &[], json!({})).await;

    let (status, body) = t
        .post(
            &format!("/api/groups/{agg}/sub-groups"),
            json!({"sub_groups": [{"group_id": a, "weight": 10}, {"group_id": b, "weight": 0}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "Sub groups added successfully");

    let (status, body) = t.get(&format!("/api/groups/{agg}/sub-groups")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let members = body["data"].as_array().unwrap();
    assert_eq!(members.len(), 2, "weight-0 members are listed too");
    let first = members.iter().find(|m| m["group"]["id"] == a).unwrap();
    assert_eq!(first["weight"], 10);
    assert_eq!(first["total_keys"], 2);
    assert_eq!(first["active_keys"], 2);
    assert_eq!(first["invalid_keys"], 0);
    assert_eq!(first["group"]["name"], "a");

    let (status, body) = t
        .put(
            &format!("/api/groups/{agg}/sub-groups/{b}/weight"),
            json!({"weight": 1000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t
        .get(&format!("/api/groups/{b}/parent-aggregate-groups"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"],
        json!([{"group_id": agg, "name": "agg", "display_name": "", "weight": 1000}])
    );

    let (status, body) = t.delete(&format!("/api/groups/{agg}/sub-groups/{b}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = t
        .get(&format!("/api/groups/{b}/parent-aggregate-groups"))
        .await;
    assert_eq!(body["data"], json!([]));
    let (status, body) = t.delete(&format!("/api/groups/{agg}/sub-groups/{b}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Sub group not found");
    let (status, _) = t
        .put(
            &format!("/api/groups/{agg}/sub-groups/{b}/weight"),
            json!({"weight": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleting a member group drops its memberships.
    let (status, _) = t.delete(&format!("/api/groups/{a}")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = t.get(&format!("/api/groups/{agg}/sub-groups")).await;
    assert_eq!(body["data"], json!([]));
    t.stop().await;
}

#[actix_rt::test]
async fn membership_rules_are_enforced() {
    let t = TestServer::start(&[]).await;
    let agg = aggregate(&t, "agg").await;
    let other_agg = aggregate(&t, "agg2").await;
    let a = t.create_group("a", &[], json!({})).await;
    let b = t.create_group("b", &[], json!({})).await;
    let (status, body) = t
        .put(
            &format!("/api/groups/{b}"),
            json!({"validation_endpoint": "/v1/custom"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t
        .post(
            "/api/groups",
            json!({"name": "gem", "channel_type": "gemini", "test_model": "gemini-2.0-flash-lite",
                   "upstreams": [{"url": "https://generativelanguage.googleapis.com", "weight": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let gem = body["data"]["id"].as_i64().unwrap();
    let url = format!("/api/groups/{agg}/sub-groups");

    for (body, code, needle) in [
        (json!({"sub_groups": []}), "VALIDATION_FAILED", "sub_groups"),
        (
            json!({"sub_groups": [{"group_id": 0, "weight": 1}]}),
            "VALIDATION_FAILED",
            "sub_groups[0].group_id",
        ),
        (
            json!({"sub_groups": [{"group_id": a, "weight": -1}]}),
            "VALIDATION_FAILED",
            "weight",
        ),
        (
            json!({"sub_groups": [{"group_id": a, "weight": 1001}]}),
            "VALIDATION_FAILED",
            "weight",
        ),
        (
            json!({"sub_groups": [{"group_id": gem, "weight": 1}]}),
            "VALIDATION_FAILED",
            "'gemini'",
        ),
        (
            json!({"sub_groups": [{"group_id": 424242, "weight": 1}]}),
            "VALIDATION_FAILED",
            "424242",
        ),
        (
            json!({"sub_groups": [{"group_id": other_agg, "weight": 1}]}),
            "VALIDATION_FAILED",
            "aggregate",
        ),
        (
            json!({"sub_groups": [{"group_id": a, "weight": 1}, {"group_id": b, "weight": 1}]}),
            "VALIDATION_FAILED",
            "/v1/custom",
        ),
        (
            json!({"sub_groups": [{"group_id": a, "weight": 1}, {"group_id": a, "weight": 2}]}),
            "VALIDATION_FAILED",
            "twice",
        ),
        (
            json!({"sub_groups": [{"group_id": "a", "weight": 1}]}),
            "INVALID_JSON",
            "",
        ),
        (json!({}), "INVALID_JSON", ""),
    ] {
        let (status, res) = t.post(&url, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {res}");
        assert_eq!(res["code"], code, "{body} -> {res}");
        assert!(
            res["message"].as_str().unwrap().contains(needle),
            "{body} -> {res}"
        );
    }
    // Nothing above was written.
    let (_, res) = t.get(&url).await;
    assert_eq!(res["data"], json!([]));

    let (status, _) = t
        .post(&url, json!({"sub_groups": [{"group_id": a, "weight": 5}]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, res) = t
        .post(&url, json!({"sub_groups": [{"group_id": a, "weight": 5}]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        res,
        json!({"code": "BAD_REQUEST", "message": format!("Sub group {a} already exists")})
    );
    // A later member must validate like the existing one.
    let (status, res) = t
        .post(&url, json!({"sub_groups": [{"group_id": b, "weight": 5}]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{res}");

    // A referenced group cannot change its validation endpoint.
    let (status, res) = t
        .put(
            &format!("/api/groups/{a}"),
            json!({"validation_endpoint": "/v1/other"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        res["message"]
            .as_str()
            .unwrap()
            .contains("1 aggregate group"),
        "{res}"
    );

    // Weight updates are range-checked; a standard group is not an aggregate.
    let (status, res) = t
        .put(
            &format!("/api/groups/{agg}/sub-groups/{a}/weight"),
            json!({"weight": 5000}),
        )
        .await;
    assert_eq!(
        (status, res["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("VALIDATION_FAILED"))
    );
    let (status, res) = t.get(&format!("/api/groups/{a}/sub-groups")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        res,
        json!({"code": "BAD_REQUEST", "message": "Group is not an aggregate group"})
    );
    let (status, _) = t.get("/api/groups/999/sub-groups").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t.get("/api/groups/999/parent-aggregate-groups").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, res) = t.delete(&format!("/api/groups/{agg}/sub-groups/zz")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(res["message"], "Invalid sub-group ID");
    let (status, _) = t.get("/api/groups/zz/sub-groups").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    t.stop().await;
}

#[actix_rt::test]
async fn membership_writes_reach_the_aggregate_proxy_at_once() {
    let t = TestServer::start(&["sk-a", "sk-b"]).await;
    let (status, body) = t
        .post(
            "/api/groups",
            json!({"name": "agg", "group_type": "aggregate", "channel_type": "openai",
                   "proxy_keys": support::PROXY_KEY}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let agg = body["data"]["id"].as_i64().unwrap();
    let a = t.create_group("a", &["sk-a"], json!({})).await;
    let b = t.create_group("b", &["sk-b"], json!({})).await;
    let (status, _) = t.chat("agg", false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "no members yet");

    let url = format!("/api/groups/{agg}/sub-groups");
    t.post(&url, json!({"sub_groups": [{"group_id": a, "weight": 1}]}))
        .await;
    t.mock.clear_requests();
    assert_eq!(t.chat("agg", false).await.0, StatusCode::OK);
    assert_eq!(t.keys_seen(), vec!["sk-a"]);

    t.post(&url, json!({"sub_groups": [{"group_id": b, "weight": 1}]}))
        .await;
    t.put(&format!("{url}/{a}/weight"), json!({"weight": 0}))
        .await;
    t.mock.clear_requests();
    for _ in 0..3 {
        assert_eq!(t.chat("agg", false).await.0, StatusCode::OK);
    }
    assert_eq!(
        t.keys_seen(),
        vec!["sk-b"; 3],
        "a weight-0 member gets nothing"
    );

    t.delete(&format!("{url}/{b}")).await;
    let (status, _) = t.chat("agg", false).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "only a disabled member is left"
    );
    t.stop().await;
}
