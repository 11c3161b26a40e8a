//! `/metrics` in the Prometheus text format (checked with the official Python parser) and the
//! per-response overhead header.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use serde_json::json;
use support::{TestServer, AUTH};

const KEY: &str = "sk-metrics-key-0001";

#[actix_rt::test]
async fn metrics_parse_and_count_requests() {
    let t = TestServer::start_with(&[KEY], &[("ENABLE_METRICS", "true")]).await;
    t.create_group("m", &[KEY], json!({})).await;
    let mut overheads = Vec::new();
    for _ in 0..5 {
        let mut res = t
            .client
            .post(t.url("/proxy/m/v1/chat/completions"))
            .insert_header(("Authorization", format!("Bearer {}", support::PROXY_KEY)))
            .send_json(&json!({"model": "m", "messages": []}))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let ms: f64 = res
            .headers()
            .get("x-gptload-overhead-ms")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        overheads.push(ms);
        res.body().await.unwrap();
    }
    assert!(
        overheads.iter().all(|ms| *ms >= 0.0 && *ms < 1000.0),
        "{overheads:?}"
    );
    let mut res = t.client.get(t.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    res.body().await.unwrap();
    let mut res = t
        .client
        .get(t.url(&format!("/metrics?key={AUTH}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(!text.contains(KEY), "no key material in metrics");

    let python = std::env::var("GPT_LOAD_TEST_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/gpt-load-venv-sdk/bin/python".into());
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
found = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        found[(s.name, tuple(sorted(s.labels.items())))] = s.value
req = found[("gptload_requests_total", (("channel", "openai"), ("group", "m"), ("status_class", "2xx")))]
usable = found[("gptload_keys", (("group", "m"), ("state", "usable")))]
assert req == 5, req
assert usable == 1, usable
assert any(n == "gptload_proxy_overhead_seconds_count" for (n, _) in found), "overhead histogram"
print("parsed", len(found), "samples")
"#;
    let mut child = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e} (run `bash .ci/test`, which installs it)"));
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t.stop().await;
}

#[actix_rt::test]
async fn metrics_are_off_by_default() {
    let t = TestServer::start(&[KEY]).await;
    let mut res = t
        .client
        .get(t.url(&format!("/metrics?key={AUTH}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    res.body().await.unwrap();
    t.stop().await;
}
