//! Credentials never leave the request they came in: every spelling the server accepts (query
//! `key` in any case or percent-encoding, Bearer, `X-Api-Key`, `X-Goog-Api-Key`) and every
//! rejected one stay out of the upstream request (the mock's journal), the access log (written
//! by the server's own logging setup to a file), request log rows, error bodies and `/metrics`;
//! the access log redacts credential-like values on admin routes too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use awc::http::StatusCode;
use serde_json::json;
use support::{test_config, wait_until, TestServer, AUTH, PROXY_KEY};

const UPSTREAM: &str = "sk-upstream-hygiene-000001";

/// The file the server's access log goes to. The subscriber is global, so it is set up once per
/// test binary through the server's own `logging::init`, exactly as `main` does.
fn access_log() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        let path = dir.path().join("access.log");
        let config = test_config(
            dir.path(),
            &[
                ("LOG_ENABLE_FILE", "true"),
                ("LOG_FILE_PATH", path.to_str().unwrap()),
                ("LOG_LEVEL", "info"),
            ],
        );
        Box::leak(Box::new(gpt_load::logging::init(&config).unwrap()));
        path
    })
    .clone()
}

/// The access log once every line up to now is written: a request with a unique marker is sent
/// last, and lines are written in order, so its line arriving means the earlier ones have.
async fn access_log_lines(t: &TestServer) -> Vec<String> {
    let path = access_log();
    let marker = uuid::Uuid::new_v4().simple().to_string();
    // An unauthenticated admin call is always logged (as a 401).
    let res = t
        .send(
            "GET",
            &format!("/api/channel-types?marker={marker}"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let seen = wait_until(Duration::from_secs(10), || {
        let path = path.clone();
        let marker = marker.clone();
        async move {
            std::fs::read_to_string(&path)
                .map(|text| text.contains(&marker))
                .unwrap_or(false)
        }
    })
    .await;
    assert!(seen, "the access log never showed the marker request");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The query spellings a client may put its key under.
const QUERY_SPELLINGS: [&str; 5] = ["key", "KEY", "Key", "k%65y", "%6Bey"];

async fn proxied(
    t: &TestServer,
    query: &str,
    header: Option<(&str, String)>,
) -> (StatusCode, String) {
    let mut req = t
        .client
        .post(t.url(&format!("/proxy/hyg/v1/chat/completions?{query}")));
    if let Some((name, value)) = header {
        req = req.insert_header((name, value));
    }
    let mut res = req
        .send_json(
            &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .unwrap();
    let body = res.body().await.unwrap();
    (res.status(), String::from_utf8_lossy(&body).into_owned())
}

#[actix_rt::test]
async fn no_credential_spelling_leaks_upstream_into_logs_or_rows() {
    access_log();
    let t = TestServer::start_with(&[UPSTREAM], &[("ENABLE_METRICS", "true")]).await;
    t.create_group("hyg", &[UPSTREAM], json!({})).await;
    t.mock.clear_requests();

    let mut served = 0;
    for spelling in QUERY_SPELLINGS {
        let (status, body) = proxied(&t, &format!("{spelling}={PROXY_KEY}&trace=1"), None).await;
        assert_eq!(status, StatusCode::OK, "?{spelling}=: {body}");
        served += 1;
    }
    for (name, value) in [
        ("Authorization", format!("Bearer {PROXY_KEY}")),
        ("X-Api-Key", PROXY_KEY.to_string()),
        ("X-Goog-Api-Key", PROXY_KEY.to_string()),
    ] {
        let (status, body) = proxied(&t, "trace=1", Some((name, value))).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        served += 1;
    }
    // Rejected credentials: refused, and not written anywhere either.
    let rejected = ["sk-rejected-Key-0001", "sk-rejected-k65y-0002"];
    let (status, body) = proxied(&t, &format!("Key={}", rejected[0]), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!body.contains(rejected[0]), "{body}");
    let (status, body) = proxied(&t, &format!("k%65y={}", rejected[1]), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!body.contains(rejected[1]), "{body}");
    // The admin key in a decoded spelling on an admin route.
    for spelling in ["k%65y", "KEY"] {
        let res = t
            .send(
                "GET",
                &format!("/api/groups?{spelling}={AUTH}"),
                None,
                &[],
                None,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{spelling}: {}", res.text());
    }

    let secrets = [PROXY_KEY, AUTH, rejected[0], rejected[1]];
    let leaks = |text: &str| secrets.iter().any(|s| text.contains(s));

    let journal = t.mock.requests();
    assert_eq!(
        journal.len(),
        served,
        "one upstream request per served call"
    );
    let journal_leaks = journal
        .iter()
        .filter(|r| {
            leaks(&r.query)
                || leaks(&r.path)
                || leaks(&String::from_utf8_lossy(&r.body))
                || r.headers.iter().any(|(_, v)| leaks(v))
        })
        .count();
    for r in &journal {
        assert_eq!(r.query, "trace=1", "forwarded query");
        assert_eq!(
            r.key.as_deref(),
            Some(UPSTREAM),
            "the upstream key replaced the client's"
        );
    }

    assert!(t.app().state.flush_logs().await);
    let (status, logs) = t.get("/api/logs?page_size=100").await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    let rows = logs["data"]["items"].as_array().unwrap();
    assert_eq!(rows.len(), served, "{logs}");
    let row_leaks = rows.iter().filter(|r| leaks(&r.to_string())).count();
    for r in rows {
        assert_eq!(r["request_path"], "/proxy/hyg/v1/chat/completions?trace=1");
        assert!(r["upstream_addr"]
            .as_str()
            .unwrap()
            .ends_with("/v1/chat/completions?trace=1"));
    }

    let metrics = t
        .send(
            "GET",
            "/metrics",
            Some((support::CredentialPosition::Bearer, AUTH)),
            &[],
            None,
        )
        .await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(!leaks(&metrics.text()), "/metrics carries a credential");

    let lines = access_log_lines(&t).await;
    let line_leaks = lines.iter().filter(|l| leaks(l)).count();
    eprintln!(
        "credential leaks: upstream journal {journal_leaks} of {} requests, access log {line_leaks} of {} lines, request_logs {row_leaks} of {} rows",
        journal.len(),
        lines.len(),
        rows.len()
    );
    assert_eq!(journal_leaks, 0, "{journal:?}");
    assert_eq!(
        line_leaks,
        0,
        "{:#?}",
        lines.iter().filter(|l| leaks(l)).collect::<Vec<_>>()
    );
    assert_eq!(row_leaks, 0, "{rows:#?}");
    // The log still says a key was sent, under the name the client used.
    for spelling in QUERY_SPELLINGS {
        let redacted = format!("?{spelling}=[redacted]&trace=1");
        assert!(
            lines.iter().any(|l| l.contains(&redacted)),
            "no line with {redacted}"
        );
    }
    t.stop().await;
}

#[actix_rt::test]
async fn admin_routes_log_credential_like_values_redacted() {
    access_log();
    let t = TestServer::start(&[UPSTREAM]).await;
    let upstream_key = "sk-live-typed-into-the-filter-9931";
    let (status, body) = t
        .get(&format!(
            "/api/logs?key_value={upstream_key}&Auth_Key=a-secret-1&api%5Fkey=a-secret-2&page=1"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let long = "x".repeat(8000);
    let res = t
        .send(
            "GET",
            &format!("/api/groups?filler={long}"),
            Some((support::CredentialPosition::Bearer, AUTH)),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);

    let lines = access_log_lines(&t).await;
    let leaked: Vec<_> = lines
        .iter()
        .filter(|l| l.contains(upstream_key) || l.contains("a-secret-"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:#?}");
    assert!(
        lines.iter().any(|l| l.contains(
            "/api/logs?key_value=[redacted]&Auth_Key=[redacted]&api%5Fkey=[redacted]&page=1"
        )),
        "{lines:#?}"
    );
    let capped = lines
        .iter()
        .find(|l| l.contains("/api/groups?filler="))
        .expect("the long URL's line");
    let full = "/api/groups?filler=".len() + long.len();
    assert!(
        capped.contains(&format!("[truncated, {full} bytes]")),
        "{capped}"
    );
    assert!(capped.len() < 2048 + 300, "{} bytes", capped.len());
    t.stop().await;
}
