//! Routing features of the proxy: weighted upstreams, aggregate groups, model redirects, parameter
//! overrides, header rules and upstream redirects — each asserted on what the mock received.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use actix_web::{web, App, HttpResponse, HttpServer};
use awc::http::StatusCode;
use gpt_load_mock_upstream::MockUpstream;
use serde_json::{json, Value};
use support::{TestServer, PROXY_KEY};

const KEY: &str = "sk-routing-key-0001";

fn group(name: &str, upstreams: Value) -> Value {
    json!({"name": name, "channel_type": "openai", "test_model": "gpt-4o-mini", "upstreams": upstreams, "proxy_keys": PROXY_KEY})
}

async fn post_chat(t: &TestServer, group: &str, body: Value) -> (StatusCode, Value) {
    let mut res = t
        .client
        .post(t.url(&format!("/proxy/{group}/v1/chat/completions")))
        .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
        .send_json(&body)
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.body().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn within(count: usize, expected: f64, tolerance: f64) -> bool {
    (count as f64 - expected).abs() <= expected * tolerance
}

#[actix_rt::test]
async fn weighted_upstreams_share_traffic_by_weight() {
    let t = TestServer::start(&[KEY]).await;
    let second = MockUpstream::start(&[KEY]).await.unwrap();
    let off = MockUpstream::start(&[KEY]).await.unwrap();
    t.create_group_json(
        group(
            "w",
            json!([
                {"url": t.mock.base_url(), "weight": 3},
                {"url": second.base_url(), "weight": 1},
                {"url": off.base_url(), "weight": 0},
            ]),
        ),
        &[KEY],
    )
    .await;
    for _ in 0..1000 {
        assert_eq!(
            post_chat(&t, "w", json!({"model": "m", "messages": []}))
                .await
                .0,
            StatusCode::OK
        );
    }
    let (a, b) = (t.mock.total_requests(), second.total_requests());
    assert!(
        within(a, 750.0, 0.05) && within(b, 250.0, 0.05),
        "3:1 split expected, got {a}:{b}"
    );
    assert_eq!(off.total_requests(), 0, "weight 0 disables an upstream");
    t.stop().await;
}

#[actix_rt::test]
async fn retries_may_land_on_another_upstream() {
    let t = TestServer::start(&[KEY, "sk-routing-key-0002"]).await;
    let second = MockUpstream::start(&[KEY, "sk-routing-key-0002"])
        .await
        .unwrap();
    t.create_group_json(
        group("w", json!([{"url": t.mock.base_url(), "weight": 1}, {"url": second.base_url(), "weight": 1}])),
        &[KEY, "sk-routing-key-0002"],
    )
    .await;
    t.mock
        .script(KEY, gpt_load_mock_upstream::Behavior::ServerError);
    let (status, _) = post_chat(&t, "w", json!({"model": "m", "messages": []})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (t.mock.total_requests(), second.total_requests()),
        (1, 1),
        "attempt 1 on the first upstream, the retry on the second"
    );
    t.stop().await;
}

#[actix_rt::test]
async fn aggregate_spreads_requests_over_members_by_weight() {
    let t = TestServer::start(&["sk-a-0000000001", "sk-b-0000000001"]).await;
    let a = t
        .create_group_json(
            group("member-a", json!([{"url": t.mock.base_url(), "weight": 1}])),
            &["sk-a-0000000001"],
        )
        .await;
    let b = t
        .create_group_json(
            group("member-b", json!([{"url": t.mock.base_url(), "weight": 1}])),
            &["sk-b-0000000001"],
        )
        .await;
    let empty = t
        .create_group_json(
            group(
                "member-empty",
                json!([{"url": t.mock.base_url(), "weight": 1}]),
            ),
            &[],
        )
        .await;
    let (status, body) = t
        .post("/api/groups", json!({"name": "agg", "group_type": "aggregate", "channel_type": "openai", "proxy_keys": "sk-agg-only"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let agg = body["data"]["id"].as_i64().unwrap();
    support::add_sub_groups(&t, agg, &[(a, 1), (b, 3), (empty, 5)]).await;

    let mut statuses = Vec::new();
    for _ in 0..400 {
        let mut res = t
            .client
            .post(t.url("/proxy/agg/v1/chat/completions"))
            .insert_header(("Authorization", "Bearer sk-agg-only"))
            .send_json(&json!({"model": "m", "messages": []}))
            .await
            .unwrap();
        statuses.push(res.status());
        res.body().await.unwrap();
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "a member without keys is skipped"
    );
    let (na, nb) = (
        t.mock.requests_for_key("sk-a-0000000001"),
        t.mock.requests_for_key("sk-b-0000000001"),
    );
    assert_eq!(na + nb, 400);
    assert!(
        within(na, 100.0, 0.05) && within(nb, 300.0, 0.05),
        "1:3 split expected, got {na}:{nb}"
    );
    // The aggregate's own proxy key does not open its members.
    let mut res = t
        .client
        .post(t.url("/proxy/member-a/v1/chat/completions"))
        .insert_header(("Authorization", "Bearer sk-agg-only"))
        .send_json(&json!({}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    res.body().await.unwrap();
    t.stop().await;
}

#[actix_rt::test]
async fn model_redirects_rewrite_reject_and_list() {
    let t = TestServer::start(&[KEY]).await;
    let mut strict = group("strict", json!([{"url": t.mock.base_url(), "weight": 1}]));
    strict["model_redirect_rules"] = json!({"fast": "gpt-4o-mini"});
    strict["model_redirect_strict"] = json!(true);
    t.create_group_json(strict, &[KEY]).await;
    let mut loose = group("loose", json!([{"url": t.mock.base_url(), "weight": 1}]));
    loose["model_redirect_rules"] = json!({"fast": "gpt-4o-mini"});
    t.create_group_json(loose, &[KEY]).await;

    let (status, _) = post_chat(&t, "strict", json!({"model": "fast", "messages": []})).await;
    assert_eq!(status, StatusCode::OK);
    let sent: Value = serde_json::from_slice(&t.mock.requests().last().unwrap().body).unwrap();
    assert_eq!(sent["model"], "gpt-4o-mini");

    let (status, body) = post_chat(&t, "strict", json!({"model": "gpt-5", "messages": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BAD_REQUEST");
    assert!(body["message"].as_str().unwrap().contains("gpt-5"));
    assert_eq!(
        t.mock.total_requests(),
        1,
        "a rejected model never reaches the upstream"
    );

    let (status, _) = post_chat(&t, "loose", json!({"model": "gpt-5", "messages": []})).await;
    assert_eq!(status, StatusCode::OK);
    let sent: Value = serde_json::from_slice(&t.mock.requests().last().unwrap().body).unwrap();
    assert_eq!(sent["model"], "gpt-5", "loose mode passes unknown models");

    for (g, expected) in [
        ("strict", vec!["fast"]),
        ("loose", vec!["gpt-4o-mini", "gpt-4.1-nano", "fast"]),
    ] {
        let mut res = t
            .client
            .get(t.url(&format!("/proxy/{g}/v1/models")))
            .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let list: Value = res.json().await.unwrap();
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        for id in &expected {
            assert!(ids.contains(id), "{g}: {ids:?} lacks {id}");
        }
        assert_eq!(ids.len(), expected.len(), "{g}: {ids:?}");
    }
    t.stop().await;
}

#[actix_rt::test]
async fn param_overrides_and_header_rules_change_exactly_what_they_say() {
    let t = TestServer::start(&[KEY]).await;
    let mut g = group("rw", json!([{"url": t.mock.base_url(), "weight": 1}]));
    g["param_overrides"] = json!({"temperature": 0.1, "max_tokens": 64});
    g["header_rules"] = json!([
        {"key": "X-Group", "value": "${GROUP_NAME}", "action": "set"},
        {"key": "X-Upstream-Key", "value": "${API_KEY}", "action": "set"},
        {"key": "X-Drop-Me", "value": "", "action": "remove"},
    ]);
    t.create_group_json(g, &[KEY]).await;
    let mut res = t
        .client
        .post(t.url("/proxy/rw/v1/chat/completions"))
        .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
        .insert_header(("X-Drop-Me", "secret"))
        .insert_header(("X-Keep-Me", "yes"))
        .send_json(&json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0.9}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.body().await.unwrap();
    let req = t.mock.requests().pop().unwrap();
    let sent: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        sent,
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0.1, "max_tokens": 64})
    );
    assert_eq!(req.header("x-group"), Some("rw"));
    assert_eq!(req.header("x-upstream-key"), Some(KEY));
    assert!(req.header("x-drop-me").is_none());
    assert_eq!(req.header("x-keep-me"), Some("yes"));
    t.stop().await;
}

#[actix_rt::test]
async fn upstream_redirects_are_followed_without_leaking_credentials_across_hosts() {
    let t = TestServer::start(&[KEY]).await;
    let target = format!("http://localhost:{}", t.mock.addr().port());
    let redirector = HttpServer::new(move || {
        let target = target.clone();
        App::new().default_service(web::to(move |req: actix_web::HttpRequest| {
            let location = format!("{target}{}", req.uri());
            async move {
                HttpResponse::TemporaryRedirect()
                    .insert_header(("Location", location))
                    .finish()
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = redirector.addrs()[0];
    let server = redirector.run();
    let handle = server.handle();
    actix_rt::spawn(server);

    t.create_group_json(
        group(
            "redir",
            json!([{"url": format!("http://{addr}"), "weight": 1}]),
        ),
        &[KEY],
    )
    .await;
    let (status, body) = post_chat(&t, "redir", json!({"model": "m", "messages": []})).await;
    // The upstream key was stripped on the cross-host hop, so the mock refuses the request.
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let req = t.mock.requests().pop().unwrap();
    assert_eq!(req.path, "/v1/chat/completions");
    assert!(
        req.key.is_none(),
        "no credential may follow a redirect to another host"
    );
    handle.stop(false).await;
    t.stop().await;
}
