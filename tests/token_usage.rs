//! Token usage end to end, for every channel, streamed and not: the log row, the hourly sums, the
//! usage endpoint, group stats, per-key totals and `/metrics`; absent usage stays unknown, the
//! proxy-key identity never holds the key, and a retried request counts only the answered attempt.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use gpt_load::db::schema::{request_logs, usage_hourly_stats};
use gpt_load::with_conn;
use gpt_load_mock_upstream::Behavior;
use serde_json::{json, Value};
use support::{TestServer, AUTH, PROXY_KEY};

const K1: &str = "sk-usage-key-000001";
const K2: &str = "sk-usage-key-000002";

/// One channel as a client calls it. The mock reports 1 input and 3 output tokens on every
/// channel (3 content chunks per stream).
struct Case {
    group: &'static str,
    channel: &'static str,
    base_suffix: &'static str,
    path: &'static str,
    stream_path: &'static str,
    body: fn(bool) -> Value,
    auth: (&'static str, &'static str),
    model: &'static str,
}

const BEARER: (&str, &str) = ("authorization", "Bearer sk-proxy-test-key");

fn cases() -> Vec<Case> {
    vec![
        Case {
            group: "oa",
            channel: "openai",
            base_suffix: "",
            path: "/v1/chat/completions",
            stream_path: "/v1/chat/completions",
            body: |stream| json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": stream, "stream_options": {"include_usage": true}}),
            auth: BEARER,
            model: "gpt-4o-mini",
        },
        Case {
            group: "resp",
            channel: "openai-response",
            base_suffix: "",
            path: "/v1/responses",
            stream_path: "/v1/responses",
            body: |stream| json!({"model": "gpt-4.1-nano", "input": "hi", "stream": stream}),
            auth: BEARER,
            model: "gpt-4.1-nano",
        },
        Case {
            group: "claude",
            channel: "anthropic",
            base_suffix: "",
            path: "/v1/messages",
            stream_path: "/v1/messages",
            body: |stream| json!({"model": "claude-3-5-haiku-latest", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}], "stream": stream}),
            auth: ("x-api-key", PROXY_KEY),
            model: "claude-3-5-haiku-latest",
        },
        Case {
            group: "gem",
            channel: "gemini",
            base_suffix: "",
            path: "/v1beta/models/gemini-2.0-flash:generateContent",
            stream_path: "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
            body: |_| json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
            auth: ("x-goog-api-key", PROXY_KEY),
            model: "gemini-2.0-flash",
        },
        Case {
            group: "gemoa",
            channel: "gemini",
            base_suffix: "/v1beta/openai",
            path: "/chat/completions",
            stream_path: "/chat/completions",
            body: |stream| json!({"model": "gemini-1.5-pro", "messages": [{"role": "user", "content": "hi"}], "stream": stream, "stream_options": {"include_usage": true}}),
            auth: BEARER,
            model: "gemini-1.5-pro",
        },
    ]
}

async fn create(t: &TestServer, c: &Case, keys: &[&str], config: Value) -> i64 {
    t.create_group_json(
        json!({
            "name": c.group,
            "channel_type": c.channel,
            "test_model": c.model,
            "upstreams": [{"url": format!("{}{}", t.mock.base_url(), c.base_suffix), "weight": 1}],
            "proxy_keys": PROXY_KEY,
            "config": config,
        }),
        keys,
    )
    .await
}

async fn call(t: &TestServer, c: &Case, stream: bool) -> String {
    let path = if stream { c.stream_path } else { c.path };
    let mut res = t
        .client
        .post(t.url(&format!("/proxy/{}{path}", c.group)))
        .insert_header(c.auth)
        .send_json(&(c.body)(stream))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{} stream={stream}", c.group);
    let body = res.body().limit(1 << 20).await.unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

type TokenRow = (
    String,
    String,
    bool,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    String,
);

/// `(group, request_type, is_stream, input, output, total, proxy_key)` of every row, oldest first.
async fn token_rows(t: &TestServer) -> Vec<TokenRow> {
    assert!(t.app().state.flush_logs().await);
    let db = &t.app().state.repo.db;
    let result: Result<Vec<TokenRow>, gpt_load::db::DbError> = async {
        Ok(with_conn!(db, conn => {
            request_logs::table
                .select((
                    request_logs::group_name,
                    request_logs::request_type,
                    request_logs::is_stream,
                    request_logs::input_tokens,
                    request_logs::output_tokens,
                    request_logs::total_tokens,
                    request_logs::proxy_key,
                ))
                .order(request_logs::timestamp.asc())
                .load(conn)
                .await?
        }))
    }
    .await;
    result.unwrap()
}

/// `(group_id, model, requests, known, input, output, total)` of every hourly bucket.
async fn hourly(t: &TestServer) -> Vec<(i64, String, i64, i64, i64, i64, i64)> {
    let db = &t.app().state.repo.db;
    let result: Result<Vec<_>, gpt_load::db::DbError> = async {
        Ok(with_conn!(db, conn => {
            usage_hourly_stats::table
                .select((
                    usage_hourly_stats::group_id,
                    usage_hourly_stats::model,
                    usage_hourly_stats::requests,
                    usage_hourly_stats::known_requests,
                    usage_hourly_stats::input_tokens,
                    usage_hourly_stats::output_tokens,
                    usage_hourly_stats::total_tokens,
                ))
                .order(usage_hourly_stats::group_id.asc())
                .load(conn)
                .await?
        }))
    }
    .await;
    result.unwrap()
}

async fn metrics(t: &TestServer) -> String {
    let mut res = t
        .client
        .get(t.url(&format!("/metrics?key={AUTH}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    String::from_utf8(res.body().await.unwrap().to_vec()).unwrap()
}

/// The value of one sample line of the Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[actix_rt::test]
async fn every_channel_streamed_and_not_reports_its_tokens_everywhere() {
    let t = TestServer::start_with(&[K1], &[("ENABLE_METRICS", "true")]).await;
    t.mock.set_stream(3, std::time::Duration::from_millis(2));
    let cases = cases();
    let mut ids = Vec::new();
    for c in &cases {
        ids.push(create(&t, c, &[K1], json!({})).await);
    }
    for c in &cases {
        let plain = call(&t, c, false).await;
        assert!(plain.contains("mock"), "{plain}");
        let streamed = call(&t, c, true).await;
        assert!(streamed.contains("chunk-2 "), "{streamed}");
    }

    let rows = token_rows(&t).await;
    assert_eq!(rows.len(), cases.len() * 2, "{rows:?}");
    for (group, kind, _stream, input, output, total, proxy_key) in &rows {
        assert_eq!(kind, "final");
        assert_eq!(
            (*input, *output, *total),
            (Some(1), Some(3), Some(4)),
            "{group}: {rows:?}"
        );
        assert!(proxy_key.starts_with("group #1 · "), "{proxy_key}");
        assert!(!proxy_key.contains(PROXY_KEY));
    }
    for c in &cases {
        let streamed = rows.iter().filter(|r| r.0 == c.group && r.2).count();
        assert_eq!(streamed, 1, "{} has one streamed row", c.group);
    }

    let buckets = hourly(&t).await;
    assert_eq!(buckets.len(), cases.len(), "{buckets:?}");
    for (c, id) in cases.iter().zip(&ids) {
        let b = buckets.iter().find(|b| b.0 == *id).unwrap();
        assert_eq!(
            (b.1.as_str(), b.2, b.3, b.4, b.5, b.6),
            (c.model, 2, 2, 2, 6, 8),
            "{}",
            c.group
        );
    }

    for group_by in ["model", "group", "proxy_key", "key"] {
        let (status, body) = t.get(&format!("/api/usage?group_by={group_by}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let data = &body["data"];
        assert_eq!(data["totals"]["requests"], 10, "{group_by}: {data}");
        assert_eq!(data["totals"]["input_tokens"], 10, "{group_by}");
        assert_eq!(data["totals"]["output_tokens"], 30, "{group_by}");
        assert_eq!(data["totals"]["total_tokens"], 40, "{group_by}");
        assert!(!data.to_string().contains(K1), "no key in the report");
        assert!(!data.to_string().contains(PROXY_KEY));
        let series_total: i64 = data["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["total_tokens"].as_i64().unwrap())
            .sum();
        assert_eq!(series_total, 40, "{group_by}: the hourly series adds up");
    }
    let (_, body) = t.get("/api/usage?group_by=model").await;
    let items = body["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), cases.len());
    for c in &cases {
        let item = items.iter().find(|i| i["name"] == c.model).unwrap();
        assert_eq!(item["total_tokens"], 8, "{}", c.model);
    }
    let (_, body) = t.get("/api/usage?group_by=key").await;
    let item = &body["data"]["items"][0];
    assert_eq!(item["name"], "sk-u****0001");
    assert!(item["key_id"].as_i64().is_some());

    let (status, body) = t.get(&format!("/api/groups/{}/stats", ids[0])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for period in ["tokens_24_hour", "tokens_7_day", "tokens_30_day"] {
        assert_eq!(body["data"][period]["total_tokens"], 8, "{period}: {body}");
    }
    assert_eq!(body["data"]["stats_24_hour"]["total_requests"], 2);

    let (_, body) = t.get("/api/logs?page_size=50").await;
    let items = body["data"]["items"].as_array().unwrap();
    assert!(items
        .iter()
        .all(|i| i["input_tokens"] == 1 && i["output_tokens"] == 3 && i["total_tokens"] == 4));

    let mut key_totals = 0;
    for id in &ids {
        let (_, body) = t.get(&format!("/api/keys?group_id={id}")).await;
        for key in body["data"]["items"].as_array().unwrap() {
            key_totals += key["total_tokens"].as_i64().unwrap();
        }
    }
    assert_eq!(key_totals, 40, "per-key totals");

    let text = metrics(&t).await;
    for c in &cases {
        for (kind, want) in [("input", 2.0), ("output", 6.0), ("total", 8.0)] {
            let series = format!(
                "gptload_tokens_total{{group=\"{}\",model=\"{}\",kind=\"{kind}\"}}",
                c.group, c.model
            );
            assert_eq!(sample(&text, &series), Some(want), "{series}\n{text}");
        }
    }
    assert!(!text.contains(K1) && !text.contains(PROXY_KEY));
    t.stop().await;
}

#[actix_rt::test]
async fn absent_usage_stays_unknown() {
    let t = TestServer::start_with(&[K1], &[("ENABLE_METRICS", "true")]).await;
    t.mock.set_stream(3, std::time::Duration::from_millis(2));
    let c = &cases()[0];
    create(&t, c, &[K1], json!({})).await;
    // A streamed chat request without stream_options: OpenAI sends no usage.
    let mut res = t
        .client
        .post(t.url("/proxy/oa/v1/chat/completions"))
        .insert_header(BEARER)
        .send_json(&json!({"model": "gpt-4o-mini", "messages": [], "stream": true}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.body().await.unwrap();
    assert!(!String::from_utf8_lossy(&body).contains("\"usage\""));

    let rows = token_rows(&t).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].3, rows[0].4, rows[0].5), (None, None, None));
    let buckets = hourly(&t).await;
    assert_eq!(
        (buckets[0].2, buckets[0].3, buckets[0].6),
        (1, 0, 0),
        "counted as a request, not as tokens"
    );
    let (_, body) = t.get("/api/logs").await;
    assert!(body["data"]["items"][0]["total_tokens"].is_null());
    let text = metrics(&t).await;
    assert_eq!(
        sample(
            &text,
            "gptload_usage_requests_total{group=\"oa\",usage=\"unknown\"}"
        ),
        Some(1.0)
    );
    assert!(!text.contains("gptload_tokens_total{"));
    t.stop().await;
}

#[actix_rt::test]
async fn a_retried_request_counts_only_the_answered_attempt() {
    let t = TestServer::start_with(&[K1, K2], &[("ENABLE_METRICS", "true")]).await;
    let c = &cases()[0];
    let gid = create(
        &t,
        c,
        &[K1, K2],
        json!({"max_retries": 3, "blacklist_threshold": 0, "upstream_error_cooldown_seconds": 0}),
    )
    .await;
    // Round robin: one of the two requests starts on K1, fails, and is answered by K2.
    t.mock.script_times(K1, Behavior::ServerError, 1);
    call(&t, c, false).await;
    call(&t, c, false).await;
    let rows = token_rows(&t).await;
    let retries: Vec<_> = rows.iter().filter(|r| r.1 == "retry").collect();
    let finals: Vec<_> = rows.iter().filter(|r| r.1 == "final").collect();
    assert_eq!(retries.len(), 1, "{rows:?}");
    assert_eq!((retries[0].3, retries[0].5), (None, None));
    assert_eq!(finals.len(), 2);
    assert!(finals.iter().all(|r| (r.3, r.5) == (Some(1), Some(4))));
    let buckets = hourly(&t).await;
    assert_eq!((buckets[0].2, buckets[0].3, buckets[0].6), (2, 2, 8));
    let (_, body) = t.get(&format!("/api/keys?group_id={gid}")).await;
    let items = body["data"]["items"].as_array().unwrap();
    let of = |key: &str| {
        items.iter().find(|k| k["key_value"] == key).unwrap()["total_tokens"]
            .as_i64()
            .unwrap()
    };
    // Four tokens per answered attempt; the failed attempt adds none to its key.
    assert_eq!(of(K1) + of(K2), 8, "only answered attempts count tokens");
    let (_, body) = t.get("/api/usage?group_by=key").await;
    assert_eq!(body["data"]["totals"]["requests"], 2);
    assert_eq!(body["data"]["totals"]["total_tokens"], 8);
    t.stop().await;
}

#[actix_rt::test]
async fn a_global_proxy_key_is_named_by_place_and_fingerprint() {
    let t = TestServer::start(&[K1]).await;
    let (status, body) = t
        .put(
            "/api/settings",
            json!({"proxy_keys": "sk-global-one-aaaa,sk-global-two-bbbb"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let c = &cases()[0];
    create(&t, c, &[K1], json!({})).await;
    let mut res = t
        .client
        .post(t.url("/proxy/oa/v1/chat/completions"))
        .insert_header(("authorization", "Bearer sk-global-two-bbbb"))
        .send_json(&json!({"model": "gpt-4o-mini", "messages": []}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.body().await.unwrap();
    let rows = token_rows(&t).await;
    let id = &rows[0].6;
    assert!(id.starts_with("global #2 · "), "{id}");
    assert_eq!(id.chars().count(), "global #2 · ".chars().count() + 8);
    assert!(!id.contains("sk-global") && !id.contains("bbbb"));
    let (_, body) = t.get("/api/usage?group_by=proxy_key").await;
    assert_eq!(body["data"]["items"][0]["name"], id.as_str());
    t.stop().await;
}

/// Token sums are kept per serving group, so an aggregate's stats add up its members' sums.
#[actix_rt::test]
async fn an_aggregate_group_shows_its_members_tokens() {
    let t = TestServer::start(&[K1]).await;
    let c = &cases()[0];
    let member = create(&t, c, &[K1], json!({})).await;
    let aggregate = t
        .create_group_json(
            json!({"name": "agg", "group_type": "aggregate", "channel_type": "openai", "proxy_keys": PROXY_KEY}),
            &[],
        )
        .await;
    support::add_sub_groups(&t, aggregate, &[(member, 1)]).await;
    let mut res = t
        .client
        .post(t.url("/proxy/agg/v1/chat/completions"))
        .insert_header(BEARER)
        .send_json(&(c.body)(false))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.body().await.unwrap();
    call(&t, c, false).await;
    assert_eq!(token_rows(&t).await.len(), 2);

    let (status, body) = t.get(&format!("/api/groups/{aggregate}/stats")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["stats_24_hour"]["total_requests"], 1,
        "requests: only those through the aggregate"
    );
    for period in ["tokens_24_hour", "tokens_7_day", "tokens_30_day"] {
        assert_eq!(
            body["data"][period]["total_tokens"], 8,
            "{period}: the member's sums, direct requests included: {body}"
        );
    }
    let (_, body) = t.get(&format!("/api/groups/{member}/stats")).await;
    assert_eq!(body["data"]["tokens_24_hour"]["total_tokens"], 8);
    for group_by in ["model", "group", "proxy_key", "key"] {
        let (status, body) = t
            .get(&format!(
                "/api/usage?group_by={group_by}&group_id={aggregate}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["data"]["totals"]["total_tokens"], 8,
            "{group_by}: an aggregate's usage is its members'"
        );
    }
    t.stop().await;
}
