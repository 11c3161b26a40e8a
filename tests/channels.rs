//! One conformance suite, run for every channel: a plain and a streamed request, key rotation,
//! retry on failure, credential handling, and model extraction — each against the mock upstream
//! speaking that provider's wire format.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use gpt_load_mock_upstream::{Behavior, RecordedRequest};
use serde_json::{json, Value};
use support::{TestServer, PROXY_KEY};

const KEYS: [&str; 3] = ["up-key-aaaa-1111", "up-key-bbbb-2222", "up-key-cccc-3333"];

/// How one provider is called and what its replies look like.
struct Provider {
    channel: &'static str,
    /// Appended to the mock's base URL to form the group's upstream.
    base_suffix: &'static str,
    path: &'static str,
    stream_path: &'static str,
    body: fn(bool) -> Value,
    /// How the client presents the proxy key.
    client_auth: (&'static str, &'static str),
    /// Where the upstream key must arrive.
    key_check: fn(&RecordedRequest, &str),
    plain_check: fn(&Value),
    /// Markers that must appear, in this order, in a streamed reply.
    stream_markers: &'static [&'static str],
    model: &'static str,
}

fn bearer(req: &RecordedRequest, key: &str) {
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {key}").as_str())
    );
    assert!(req.header("x-api-key").is_none() && req.header("x-goog-api-key").is_none());
}

fn openai() -> Provider {
    Provider {
        channel: "openai",
        base_suffix: "",
        path: "/v1/chat/completions",
        stream_path: "/v1/chat/completions",
        body: |stream| json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": stream}),
        client_auth: ("authorization", "Bearer sk-proxy-test-key"),
        key_check: bearer,
        plain_check: |v| assert_eq!(v["choices"][0]["message"]["content"], "Hello from mock"),
        stream_markers: &[
            "chunk-0 ",
            "chunk-1 ",
            "chunk-2 ",
            "\"finish_reason\":\"stop\"",
            "data: [DONE]",
        ],
        model: "gpt-4o-mini",
    }
}

fn responses() -> Provider {
    Provider {
        channel: "openai-response",
        base_suffix: "",
        path: "/v1/responses",
        stream_path: "/v1/responses",
        body: |stream| json!({"model": "gpt-4.1-nano", "input": "hi", "stream": stream}),
        client_auth: ("authorization", "Bearer sk-proxy-test-key"),
        key_check: bearer,
        plain_check: |v| assert_eq!(v["output"][0]["content"][0]["text"], "Hello from mock"),
        stream_markers: &[
            "event: response.created",
            "chunk-0 ",
            "chunk-2 ",
            "event: response.completed",
        ],
        model: "gpt-4.1-nano",
    }
}

fn anthropic() -> Provider {
    Provider {
        channel: "anthropic",
        base_suffix: "",
        path: "/v1/messages",
        stream_path: "/v1/messages",
        body: |stream| json!({"model": "claude-3-haiku-20240307", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}], "stream": stream}),
        client_auth: ("x-api-key", PROXY_KEY),
        key_check: |req, key| {
            assert_eq!(req.header("x-api-key"), Some(key));
            assert_eq!(
                req.header("anthropic-version"),
                Some("2023-06-01"),
                "the version is forced"
            );
            assert_eq!(
                req.header("anthropic-beta"),
                Some("tools-2024"),
                "other client headers pass"
            );
            assert!(req.header("authorization").is_none());
        },
        plain_check: |v| assert_eq!(v["content"][0]["text"], "Hello from mock"),
        stream_markers: &[
            "event: message_start",
            "event: content_block_start",
            "chunk-0 ",
            "chunk-2 ",
            "event: content_block_stop",
            "event: message_delta",
            "event: message_stop",
        ],
        model: "claude-3-haiku-20240307",
    }
}

fn gemini() -> Provider {
    Provider {
        channel: "gemini",
        base_suffix: "",
        path: "/v1beta/models/gemini-2.0-flash:generateContent",
        stream_path: "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        body: |_| json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        client_auth: ("x-goog-api-key", PROXY_KEY),
        key_check: |req, key| {
            let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.query.as_bytes())
                .into_owned()
                .collect();
            assert!(
                pairs.contains(&("key".into(), key.into())),
                "key in query: {}",
                req.query
            );
            assert!(
                req.header("x-goog-api-key").is_none() && req.header("authorization").is_none()
            );
        },
        plain_check: |v| {
            assert_eq!(
                v["candidates"][0]["content"]["parts"][0]["text"],
                "Hello from mock"
            )
        },
        stream_markers: &["chunk-0 ", "chunk-1 ", "chunk-2 ", "STOP"],
        model: "gemini-2.0-flash",
    }
}

fn gemini_openai() -> Provider {
    Provider {
        channel: "gemini",
        base_suffix: "/v1beta/openai",
        path: "/chat/completions",
        stream_path: "/chat/completions",
        body: |stream| json!({"model": "gemini-2.0-flash", "messages": [{"role": "user", "content": "hi"}], "stream": stream}),
        client_auth: ("authorization", "Bearer sk-proxy-test-key"),
        key_check: |req, key| {
            bearer(req, key);
            assert!(!req.query.contains("key="));
        },
        plain_check: |v| assert_eq!(v["choices"][0]["message"]["content"], "Hello from mock"),
        stream_markers: &["chunk-0 ", "chunk-2 ", "data: [DONE]"],
        model: "gemini-2.0-flash",
    }
}

async fn setup(p: &Provider) -> TestServer {
    let t = TestServer::start(&KEYS).await;
    t.mock.set_stream(3, std::time::Duration::from_millis(10));
    t.create_group_json(
        json!({
            "name": "g",
            "channel_type": p.channel,
            "test_model": p.model,
            "upstreams": [{"url": format!("{}{}", t.mock.base_url(), p.base_suffix), "weight": 1}],
            "proxy_keys": PROXY_KEY,
        }),
        &KEYS,
    )
    .await;
    t
}

async fn call(t: &TestServer, p: &Provider, stream: bool) -> (StatusCode, String) {
    let path = if stream { p.stream_path } else { p.path };
    let mut res = t
        .client
        .post(t.url(&format!("/proxy/g{path}")))
        .insert_header(p.client_auth)
        .insert_header(("anthropic-version", "1999-01-01"))
        .insert_header(("anthropic-beta", "tools-2024"))
        .send_json(&(p.body)(stream))
        .await
        .unwrap();
    let status = res.status();
    let body = res.body().limit(1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn plain_request(p: Provider) {
    let t = setup(&p).await;
    let (status, body) = call(&t, &p, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (p.plain_check)(&serde_json::from_str::<Value>(&body).unwrap());
    let req = t.mock.requests().pop().unwrap();
    (p.key_check)(&req, KEYS[0]);
    let expected_path = format!("{}{}", p.base_suffix, p.path.split('?').next().unwrap());
    assert_eq!(req.path, expected_path);
    t.stop().await;
}

async fn streamed_request(p: Provider) {
    let t = setup(&p).await;
    let (status, body) = call(&t, &p, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut from = 0;
    for marker in p.stream_markers {
        let at = body[from..]
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} missing or out of order in:\n{body}"));
        from += at + marker.len();
    }
    t.stop().await;
}

async fn key_rotation(p: Provider) {
    let t = setup(&p).await;
    for _ in 0..9 {
        assert_eq!(call(&t, &p, false).await.0, StatusCode::OK);
    }
    for key in KEYS {
        assert_eq!(t.mock.requests_for_key(key), 3, "{key}");
    }
    t.stop().await;
}

async fn retry_on_failure(p: Provider) {
    let t = setup(&p).await;
    t.mock.script_times(KEYS[0], Behavior::ServerError, 1);
    t.mock.script_times(
        KEYS[1],
        Behavior::RateLimited {
            retry_after_secs: 5,
        },
        1,
    );
    let (status, body) = call(&t, &p, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let used: Vec<String> = t
        .mock
        .requests()
        .iter()
        .map(|r| r.key.clone().unwrap())
        .collect();
    assert_eq!(used, KEYS.iter().map(|k| k.to_string()).collect::<Vec<_>>());
    assert!(
        body.contains(p.stream_markers[p.stream_markers.len() - 1]),
        "the retried stream is complete"
    );
    t.stop().await;
}

async fn wrong_credential_is_refused(p: Provider) {
    let t = setup(&p).await;
    let mut res = t
        .client
        .post(t.url(&format!("/proxy/g{}", p.path)))
        .insert_header((p.client_auth.0, "wrong-key"))
        .send_json(&(p.body)(false))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    res.body().await.unwrap();
    assert_eq!(t.mock.total_requests(), 0);
    t.stop().await;
}

fn model_extraction(p: Provider) {
    let channel = gpt_load::channel::for_type(p.channel).unwrap();
    let body = serde_json::to_vec(&(p.body)(false)).unwrap();
    let probe = gpt_load::channel::BodyProbe::parse(&body);
    let headers = actix_web::http::header::HeaderMap::new();
    let path = format!("{}{}", p.base_suffix, p.path);
    let req = gpt_load::channel::InboundRequest {
        method: &actix_web::http::Method::POST,
        path: &path,
        query: "",
        headers: &headers,
        body: &probe,
    };
    assert_eq!(channel.model(&req).as_deref(), Some(p.model));
    let stream_path = format!(
        "{}{}",
        p.base_suffix,
        p.stream_path.split('?').next().unwrap()
    );
    let stream_body = serde_json::to_vec(&(p.body)(true)).unwrap();
    let stream_probe = gpt_load::channel::BodyProbe::parse(&stream_body);
    let req = gpt_load::channel::InboundRequest {
        path: &stream_path,
        body: &stream_probe,
        ..req
    };
    assert!(channel.is_stream(&req));
}

macro_rules! conformance {
    ($($module:ident => $provider:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            #[actix_rt::test]
            async fn plain() { plain_request($provider).await }
            #[actix_rt::test]
            async fn streamed() { streamed_request($provider).await }
            #[actix_rt::test]
            async fn rotation() { key_rotation($provider).await }
            #[actix_rt::test]
            async fn retry() { retry_on_failure($provider).await }
            #[actix_rt::test]
            async fn auth() { wrong_credential_is_refused($provider).await }
            #[test]
            fn model() { model_extraction($provider) }
        }
    )*};
}

conformance! {
    openai_chat => openai(),
    openai_responses => responses(),
    anthropic_messages => anthropic(),
    gemini_native => gemini(),
    gemini_openai_compatible => gemini_openai(),
}
