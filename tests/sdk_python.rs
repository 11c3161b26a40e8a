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
