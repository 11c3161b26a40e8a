//! The official Python SDKs (`openai`, `anthropic`, `google-genai`) work unchanged against the
//! proxy: each makes a plain and a streamed call to the mock upstream through gpt-load.
//! `.ci/test` installs the SDKs into a virtual environment and points `GPT_LOAD_TEST_PYTHON` at it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::json;
use support::{TestServer, PROXY_KEY};

const KEY: &str = "sdk-upstream-key-0001";

fn python() -> String {
    std::env::var("GPT_LOAD_TEST_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/gpt-load-venv-sdk/bin/python".to_string())
}

#[actix_rt::test]
async fn official_sdks_work_unchanged() {
    let python = python();
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: run `bash .ci/test`, which installs the SDKs into a virtual environment"
    );
    let t = TestServer::start(&[KEY]).await;
    t.mock.set_stream(3, std::time::Duration::from_millis(5));
    for (name, channel, model) in [
        ("oa", "openai", "gpt-4o-mini"),
        ("claude", "anthropic", "claude-3-haiku-20240307"),
        ("gem", "gemini", "gemini-2.0-flash"),
    ] {
        t.create_group_json(
            json!({
                "name": name,
                "channel_type": channel,
                "test_model": model,
                "upstreams": [{"url": t.mock.base_url(), "weight": 1}],
                "proxy_keys": PROXY_KEY,
            }),
            &[KEY],
        )
        .await;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/clients.py");
    let base = t.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .env("GPT_LOAD_URL", base)
            .env("GPT_LOAD_PROXY_KEY", PROXY_KEY)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ALL SDK CHECKS PASSED"), "{stdout}");
    assert_eq!(stdout.matches("PASS ").count(), 7, "{stdout}");
    // Every SDK call reached the upstream with the pooled key, never the proxy key.
    let requests = t.mock.requests();
    assert!(requests.len() >= 6);
    assert!(requests.iter().all(|r| r.key.as_deref() == Some(KEY)));
    t.stop().await;
}

/// With `stream_include_usage` on, a streamed chat request without `stream_options` reaches the
/// upstream with `include_usage: true`, the real OpenAI SDK still parses the stream (its last chunk
/// carries the usage and no choices), and the log row has the tokens. A client's explicit `false`
/// is left alone.
#[actix_rt::test]
async fn include_usage_setting_keeps_the_openai_sdk_working() {
    let python = python();
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: run `bash .ci/test`, which installs the SDKs into a virtual environment"
    );
    let t = TestServer::start(&[KEY]).await;
    t.mock.set_stream(3, std::time::Duration::from_millis(2));
    t.create_group_json(
        json!({
            "name": "oa",
            "channel_type": "openai",
            "test_model": "gpt-4o-mini",
            "upstreams": [{"url": t.mock.base_url(), "weight": 1}],
            "proxy_keys": PROXY_KEY,
            "config": {"stream_include_usage": true},
        }),
        &[KEY],
    )
    .await;
    let script = r#"
import os, sys
from openai import OpenAI
client = OpenAI(base_url=os.environ["GPT_LOAD_URL"] + "/proxy/oa/v1", api_key=os.environ["GPT_LOAD_PROXY_KEY"])
text, usage, chunks = "", None, 0
for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True):
    chunks += 1
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage is not None:
        usage = chunk.usage
assert text == "chunk-0 chunk-1 chunk-2 ", text
assert usage is not None and usage.total_tokens == 4, usage
off = client.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True, stream_options={"include_usage": False})
assert all(c.usage is None for c in off)
print("ok", chunks)
"#;
    let base = t.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg("-c")
            .arg(script)
            .env("GPT_LOAD_URL", base)
            .env("GPT_LOAD_PROXY_KEY", PROXY_KEY)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.starts_with("ok"),
        "{stdout}\n{stderr}"
    );
    let bodies: Vec<serde_json::Value> = t
        .mock
        .requests()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["stream_options"]["include_usage"], true);
    assert_eq!(bodies[1]["stream_options"]["include_usage"], false);
    assert!(t.app().state.flush_logs().await);
    let (_, logs) = t.get("/api/logs").await;
    let items = logs["data"]["items"].as_array().unwrap();
    let mut totals: Vec<serde_json::Value> =
        items.iter().map(|i| i["total_tokens"].clone()).collect();
    totals.sort_by_key(|v| v.is_null());
    assert_eq!(totals, vec![json!(4), serde_json::Value::Null]);
    t.stop().await;
}
