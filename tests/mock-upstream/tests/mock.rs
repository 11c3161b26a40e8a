//! End-to-end tests of the mock upstream over real HTTP with `awc`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use gpt_load_mock_upstream::{Behavior, MockOptions, MockUpstream};
use serde_json::{json, Value};

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
}

async fn post_bearer(
    mock: &MockUpstream,
    path: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Bytes) {
    let mut res = client()
        .post(format!("{}{path}", mock.base_url()))
        .bearer_auth(key)
        .send_json(&body)
        .await
        .unwrap();
    let status = res.status();
    (status, res.body().await.unwrap())
}

fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

/// Splits an SSE body into (event name, data JSON or raw data) pairs.
fn sse_events(body: &[u8]) -> Vec<(Option<String>, String)> {
    let text = std::str::from_utf8(body).unwrap();
    assert!(
        text.ends_with("\n\n"),
        "SSE body must end with a blank line: {text:?}"
    );
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut event = None;
            let mut data = String::new();
            for line in e.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = v.to_owned();
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            (event, data)
        })
        .collect()
}

/// Reads a whole streamed body; returns bytes received and whether the read ended in an error.
async fn drain<S>(res: &mut S) -> (BytesMut, bool)
where
    S: futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut buf = BytesMut::new();
    while let Some(item) = res.next().await {
        match item {
            Ok(b) => buf.extend_from_slice(&b),
            Err(_) => return (buf, true),
        }
    }
    (buf, false)
}

#[actix_rt::test]
async fn accepted_key_gets_openai_json() {
    let mock = MockUpstream::start(&["sk-good"]).await.unwrap();
    let (status, body) = post_bearer(
        &mock,
        "/v1/chat/completions",
        "sk-good",
        json!({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v = parse(&body);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from mock");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["total_tokens"], 4);
    mock.stop().await;
}

#[actix_rt::test]
async fn unknown_key_is_rejected_in_each_dialect() {
    let mock = MockUpstream::start(&["sk-good"]).await.unwrap();
    let (status, body) = post_bearer(
        &mock,
        "/v1/chat/completions",
        "sk-bad",
        json!({"model":"m"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(parse(&body)["error"]["code"], "invalid_api_key");

    let mut res = client()
        .post(format!("{}/v1/messages", mock.base_url()))
        .insert_header(("x-api-key", "sk-bad"))
        .insert_header(("anthropic-version", "2023-06-01"))
        .send_json(&json!({"model":"claude","max_tokens":5,"messages":[]}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let v = parse(&res.body().await.unwrap());
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");

    let mut res = client()
        .post(format!(
            "{}/v1beta/models/gemini-2.0-flash:generateContent?key=bad",
            mock.base_url()
        ))
        .send_json(&json!({"contents":[]}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let v = parse(&res.body().await.unwrap());
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(v["error"]["details"][0]["reason"], "API_KEY_INVALID");

    // No key at all.
    let mut res = client()
        .get(format!("{}/v1/models", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    res.body().await.unwrap();

    // add_key makes it valid.
    mock.add_key("sk-bad");
    let (status, _) = post_bearer(
        &mock,
        "/v1/chat/completions",
        "sk-bad",
        json!({"model":"m"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mock.requests_for_key("sk-bad"), 3);
    mock.stop().await;
}

#[actix_rt::test]
async fn script_times_rate_limited_then_back_to_ok() {
    let mock = MockUpstream::start(&["k1", "k2"]).await.unwrap();
    mock.script_times(
        "k1",
        Behavior::RateLimited {
            retry_after_secs: 7,
        },
        2,
    );
    for _ in 0..2 {
        let mut res = client()
            .post(format!("{}/v1/chat/completions", mock.base_url()))
            .bearer_auth("k1")
            .send_json(&json!({"model":"m","messages":[]}))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers().get("retry-after").unwrap(), "7");
        let v = parse(&res.body().await.unwrap());
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    }
    // Other keys are unaffected, and k1 is back to normal.
    let (status, _) = post_bearer(&mock, "/v1/chat/completions", "k2", json!({"model":"m"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post_bearer(&mock, "/v1/chat/completions", "k1", json!({"model":"m"})).await;
    assert_eq!(status, StatusCode::OK);

    // Persistent script, overlaid by a one-shot one, then cleared.
    mock.script("k1", Behavior::ServerError);
    mock.script_times(
        "k1",
        Behavior::Status {
            code: 418,
            body: r#"{"teapot":true}"#.into(),
        },
        1,
    );
    let (status, body) =
        post_bearer(&mock, "/v1/chat/completions", "k1", json!({"model":"m"})).await;
    assert_eq!(status.as_u16(), 418);
    assert_eq!(&body[..], br#"{"teapot":true}"#);
    let (status, body) =
        post_bearer(&mock, "/v1/chat/completions", "k1", json!({"model":"m"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(parse(&body)["error"]["type"], "server_error");
    mock.script("k1", Behavior::Unauthorized);
    let (status, _) = post_bearer(&mock, "/v1/chat/completions", "k1", json!({"model":"m"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    mock.clear_script("k1");
    let (status, _) = post_bearer(&mock, "/v1/chat/completions", "k1", json!({"model":"m"})).await;
    assert_eq!(status, StatusCode::OK);
    mock.stop().await;
}

#[actix_rt::test]
async fn openai_stream_is_paced_and_ends_with_done() {
    let mock = MockUpstream::start(&["k"]).await.unwrap();
    mock.set_stream(3, Duration::from_millis(100));
    let t0 = Instant::now();
    let mut res = client()
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .bearer_auth("k")
        .send_json(&json!({"model":"gpt-4o-mini","messages":[],"stream":true}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "text/event-stream"
    );

    let first = res.next().await.unwrap().unwrap();
    assert!(std::str::from_utf8(&first).unwrap().contains("chunk-0 "));
    // The client holds chunk 0 while the last chunk has not been produced yet.
    assert!(
        mock.chunks_sent() < 3,
        "chunks_sent = {}",
        mock.chunks_sent()
    );

    let (rest, failed) = drain(&mut res).await;
    assert!(!failed);
    let elapsed = t0.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "elapsed {elapsed:?}");
    assert_eq!(mock.chunks_sent(), 3);

    let mut body = BytesMut::from(&first[..]);
    body.extend_from_slice(&rest);
    let events = sse_events(&body);
    assert_eq!(events.len(), 5, "{events:?}");
    for (i, (name, data)) in events.iter().take(3).enumerate() {
        assert!(name.is_none());
        let v = parse(data.as_bytes());
        assert_eq!(v["object"], "chat.completion.chunk");
        assert_eq!(v["model"], "gpt-4o-mini");
        assert_eq!(v["choices"][0]["delta"]["content"], format!("chunk-{i} "));
        assert!(v["choices"][0]["finish_reason"].is_null());
    }
    assert_eq!(
        parse(events[3].1.as_bytes())["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(events[4].1, "[DONE]");
    mock.stop().await;
}

#[actix_rt::test]
async fn responses_api_json_and_stream() {
    let mock = MockUpstream::start(&["k"]).await.unwrap();
    let (status, body) = post_bearer(
        &mock,
        "/v1/responses",
        "k",
        json!({"model":"gpt-4.1-nano","input":"hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v = parse(&body);
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["text"], "Hello from mock");

    mock.set_stream(2, Duration::ZERO);
    let (status, body) = post_bearer(
        &mock,
        "/v1/responses",
        "k",
        json!({"model":"m","input":"hi","stream":true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<String> = sse_events(&body)
        .into_iter()
        .map(|(n, _)| n.unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.completed"
        ]
    );
    mock.stop().await;
}

#[actix_rt::test]
async fn anthropic_json_and_stream_event_order() {
    let mock = MockUpstream::start(&["ak"]).await.unwrap();
    let mut res = client()
        .post(format!("{}/v1/messages", mock.base_url()))
        .insert_header(("x-api-key", "ak"))
        .insert_header(("anthropic-version", "2023-06-01"))
        .send_json(&json!({"model":"claude-3-5-haiku","max_tokens":5,"messages":[]}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v = parse(&res.body().await.unwrap());
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-3-5-haiku");
    assert_eq!(v["content"][0]["text"], "Hello from mock");
    assert_eq!(v["stop_reason"], "end_turn");

    mock.set_stream(2, Duration::ZERO);
    let mut res = client()
        .post(format!("{}/v1/messages", mock.base_url()))
        .insert_header(("x-api-key", "ak"))
        .insert_header(("anthropic-version", "2023-06-01"))
        .send_json(&json!({"model":"claude-3-5-haiku","max_tokens":5,"messages":[],"stream":true}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.body().await.unwrap();
    let events = sse_events(&body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for (name, data) in &events {
        assert_eq!(parse(data.as_bytes())["type"], name.as_deref().unwrap());
    }
    assert_eq!(parse(events[4].1.as_bytes())["delta"]["text"], "chunk-1 ");
    assert_eq!(
        parse(events[6].1.as_bytes())["delta"]["stop_reason"],
        "end_turn"
    );

    let recorded = mock.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1].key.as_deref(), Some("ak"));
    assert_eq!(recorded[1].header("anthropic-version"), Some("2023-06-01"));
    mock.stop().await;
}

#[actix_rt::test]
async fn gemini_native_with_query_key() {
    let mock = MockUpstream::start(&["gk"]).await.unwrap();
    let base = mock.base_url();
    let mut res = client()
        .post(format!(
            "{base}/v1beta/models/gemini-2.0-flash:generateContent?key=gk"
        ))
        .send_json(&json!({"contents":[{"parts":[{"text":"hi"}]}]}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v = parse(&res.body().await.unwrap());
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "Hello from mock"
    );
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert_eq!(v["modelVersion"], "gemini-2.0-flash");

    mock.set_stream(3, Duration::ZERO);
    let mut res = client()
        .post(format!(
            "{base}/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key=gk"
        ))
        .send_json(&json!({"contents":[]}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let events = sse_events(&res.body().await.unwrap());
    assert_eq!(events.len(), 3);
    for (i, (name, data)) in events.iter().enumerate() {
        assert!(name.is_none());
        let v = parse(data.as_bytes());
        assert_eq!(
            v["candidates"][0]["content"]["parts"][0]["text"],
            format!("chunk-{i} ")
        );
        assert_eq!(v["candidates"][0].get("finishReason").is_some(), i == 2);
    }

    // Without alt=sse: a JSON array; key in x-goog-api-key.
    let mut res = client()
        .post(format!(
            "{base}/v1beta/models/gemini-2.0-flash:streamGenerateContent"
        ))
        .insert_header(("x-goog-api-key", "gk"))
        .send_json(&json!({"contents":[]}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v = parse(&res.body().await.unwrap());
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[2]["candidates"][0]["finishReason"], "STOP");

    let mut res = client()
        .get(format!("{base}/v1beta/models?key=gk"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v = parse(&res.body().await.unwrap());
    assert_eq!(v["models"][0]["name"], "models/gemini-2.0-flash");

    mock.script_times(
        "gk",
        Behavior::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    let mut res = client()
        .post(format!(
            "{base}/v1beta/models/gemini-2.0-flash:generateContent?key=gk"
        ))
        .send_json(&json!({"contents":[]}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        parse(&res.body().await.unwrap())["error"]["status"],
        "RESOURCE_EXHAUSTED"
    );
    mock.stop().await;
}

#[actix_rt::test]
async fn gemini_openai_compat_and_models() {
    let mock = MockUpstream::start(&["gk"]).await.unwrap();
    let (status, body) = post_bearer(
        &mock,
        "/v1beta/openai/chat/completions",
        "gk",
        json!({"model":"gemini-2.0-flash","messages":[]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(parse(&body)["model"], "gemini-2.0-flash");
    for path in ["/v1beta/openai/models", "/v1/models"] {
        let mut res = client()
            .get(format!("{}{path}", mock.base_url()))
            .bearer_auth("gk")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let v = parse(&res.body().await.unwrap());
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"][0]["id"], "gpt-4o-mini");
    }
    mock.stop().await;
}

#[actix_rt::test]
async fn reset_mid_stream_fails_the_client_read() {
    let mock = MockUpstream::start(&["k"]).await.unwrap();
    mock.set_stream(5, Duration::ZERO);
    mock.script("k", Behavior::ResetMidStream { after_chunks: 2 });

    let mut res = client()
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .bearer_auth("k")
        .send_json(&json!({"model":"m","messages":[],"stream":true}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (got, failed) = drain(&mut res).await;
    assert!(
        failed,
        "body read must fail; got {:?}",
        String::from_utf8_lossy(&got)
    );
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("chunk-1 "), "{text}");
    assert!(!text.contains("chunk-2 "), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");

    // Non-streamed: headers and part of the body, then the connection dies.
    let mut res = client()
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .bearer_auth("k")
        .send_json(&json!({"model":"m","messages":[]}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (got, failed) = drain(&mut res).await;
    assert!(failed);
    assert!(!got.is_empty());
    assert!(serde_json::from_slice::<Value>(&got).is_err());
    mock.stop().await;
}

#[actix_rt::test]
async fn hang_makes_the_client_time_out_and_stop_still_works() {
    let mock = MockUpstream::start(&["k"]).await.unwrap();
    mock.script("k", Behavior::Hang);
    let res = awc::Client::builder()
        .timeout(Duration::from_millis(300))
        .finish()
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .bearer_auth("k")
        .send_json(&json!({"model":"m"}))
        .await;
    assert!(
        matches!(res, Err(awc::error::SendRequestError::Timeout)),
        "{res:?}"
    );
    let t0 = Instant::now();
    mock.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[actix_rt::test]
async fn requests_are_recorded() {
    let mock = MockUpstream::start(&["k"]).await.unwrap();
    let body = json!({"model":"m","messages":[{"role":"user","content":"hello"}]});
    post_bearer(&mock, "/v1/chat/completions", "k", body.clone()).await;
    let mut res = client()
        .post(format!("{}/nope?x=1", mock.base_url()))
        .bearer_auth("k")
        .send_body("raw")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        parse(&res.body().await.unwrap())["error"]["message"],
        "not found"
    );
    post_bearer(&mock, "/v1/chat/completions", "unknown", json!({})).await;

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].key.as_deref(), Some("k"));
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(parse(&reqs[0].body), body);
    assert_eq!(reqs[0].header("authorization"), Some("Bearer k"));
    assert!(reqs[0].headers.iter().all(|(n, _)| n == &n.to_lowercase()));
    assert_eq!(reqs[1].path, "/nope");
    assert_eq!(reqs[1].query, "x=1");
    assert_eq!(&reqs[1].body[..], b"raw");
    assert_eq!(reqs[2].key.as_deref(), Some("unknown"));
    assert_eq!(mock.requests_for_key("k"), 2);
    assert_eq!(mock.requests_for_key("unknown"), 1);
    assert_eq!(mock.total_requests(), 3);

    mock.clear_requests();
    assert!(mock.requests().is_empty());
    assert_eq!(mock.requests_for_key("k"), 0);

    mock.set_recording(false);
    post_bearer(&mock, "/v1/chat/completions", "k", body).await;
    assert!(mock.requests().is_empty());
    assert_eq!(mock.requests_for_key("k"), 1);
    mock.stop().await;
}

#[actix_rt::test]
async fn key_extraction_order_and_invalid_json() {
    let mock = MockUpstream::start(&["q", "b"]).await.unwrap();
    // ?key= wins over the bearer token.
    let mut res = client()
        .post(format!("{}/v1/chat/completions?key=q", mock.base_url()))
        .bearer_auth("nope")
        .send_json(&json!({"model":"m"}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.body().await.unwrap();
    let (status, _) = post_bearer(
        &mock,
        "/v1/chat/completions",
        "b",
        json!(["not", "an", "object"]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let keys: Vec<_> = mock.requests().into_iter().map(|r| r.key).collect();
    assert_eq!(keys, [Some("q".to_owned()), Some("b".to_owned())]);
    mock.stop().await;
}

#[actix_rt::test]
async fn options_any_key_and_latency() {
    let mock = MockUpstream::start_with(MockOptions {
        accept_any_key: true,
        latency: Duration::from_millis(100),
        workers: 2,
        ..MockOptions::default()
    })
    .await
    .unwrap();
    let t0 = Instant::now();
    let (status, _) = post_bearer(
        &mock,
        "/v1/chat/completions",
        "whatever",
        json!({"model":"m"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(t0.elapsed() >= Duration::from_millis(100));
    mock.script("whatever", Behavior::ServerError);
    let (status, _) = post_bearer(
        &mock,
        "/v1/chat/completions",
        "whatever",
        json!({"model":"m"}),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    mock.stop().await;
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_rt::test]
async fn binary_prints_listening_line_and_serves() {
    let child = Command::new(env!("CARGO_BIN_EXE_gpt-load-mock-upstream"))
        .args([
            "--port",
            "0",
            "--keys",
            "k1,k2",
            "--no-record",
            "--stream-chunks",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let base = line
        .trim_end()
        .strip_prefix("LISTENING ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let mut res = client()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("k2")
        .send_json(&json!({"model":"m","messages":[],"stream":true}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let events = sse_events(&res.body().await.unwrap());
    assert_eq!(events.len(), 4);
    let res = client()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("k3")
        .send_json(&json!({"model":"m"}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn handle_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MockUpstream>();
    assert_send_sync::<gpt_load_mock_upstream::RecordedRequest>();
}
