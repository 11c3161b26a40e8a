//! Login throttling end to end: wrong admin keys from one address (on `/api/auth/login` and on
//! protected `/api` routes) are answered more and more slowly, then refused with 429 and
//! `Retry-After`; the right key and other addresses are unaffected; forwarded-for headers move a
//! client to another address only behind a trusted proxy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use gpt_load::http::throttle::ThrottleLimits;
use serde_json::json;
use support::{wait_until, TestServer, AUTH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn limits() -> ThrottleLimits {
    ThrottleLimits {
        free_failures: 2,
        delay_step: Duration::from_millis(300),
        max_delay: Duration::from_millis(600),
        lock_after: 6,
        window: Duration::from_secs(600),
        lockout: Duration::from_secs(4),
        max_tracked: 1000,
    }
}

async fn start(extra: &[(&str, &str)]) -> TestServer {
    TestServer::start_tuned(&[], extra, |c| c.login_throttle = limits()).await
}

/// A login attempt with extra headers; returns status, `Retry-After` and the time it took.
async fn login(
    t: &TestServer,
    key: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>, Duration) {
    let started = Instant::now();
    let mut req = t.client.post(t.url("/api/auth/login"));
    for h in headers {
        req = req.insert_header(*h);
    }
    let res = req.send_json(&json!({"auth_key": key})).await.unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (res.status(), retry, started.elapsed())
}

/// A protected admin call with `key` as Bearer.
async fn groups(t: &TestServer, key: &str, headers: &[(&str, &str)]) -> StatusCode {
    let mut req = t
        .client
        .get(t.url("/api/groups"))
        .insert_header(("Authorization", format!("Bearer {key}")));
    for h in headers {
        req = req.insert_header(*h);
    }
    req.send().await.unwrap().status()
}

/// A login sent over a connection from another loopback address (127.0.0.2), with raw HTTP:
/// a real second client address, without trusting any header.
async fn login_from(source: &str, server: SocketAddr, key: &str) -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let body = json!({"auth_key": key}).to_string();
    let request = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer}"))
}

#[actix_rt::test]
async fn failed_admin_keys_are_slowed_then_refused_per_address() {
    let t = start(&[]).await;
    let server = t.app().addr;

    // Two failures, then the right key: answered, and the count starts over.
    for i in 0..2 {
        assert_eq!(
            login(&t, &format!("guess-{i}"), &[]).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(login(&t, AUTH, &[]).await.0, StatusCode::OK);

    // Failures on the login route and on protected routes count together. A forwarded-for header
    // a client writes itself does not make it another address: no proxy is trusted.
    let mut timings = Vec::new();
    for i in 0..5 {
        let spoof = format!("198.51.100.{i}");
        let spoofed: [(&str, &str); 2] = [("X-Forwarded-For", &spoof), ("X-Real-IP", &spoof)];
        let started = Instant::now();
        if i % 2 == 0 {
            let (status, _, _) = login(&t, &format!("wrong-{i}"), &spoofed).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "failure {}", i + 1);
        } else {
            let status = groups(&t, &format!("wrong-{i}"), &spoofed).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "failure {}", i + 1);
        }
        timings.push(started.elapsed());
    }
    // Failures 3, 4 and 5 wait 300, 600 and 600 ms (the cap) before their 401.
    for (i, floor) in [(2, 300), (3, 600), (4, 600)] {
        assert!(
            timings[i] >= Duration::from_millis(floor),
            "failure {} took {:?}",
            i + 1,
            timings[i]
        );
    }
    // The same wrong key again adds nothing (a stale admin page repeating it is not a guess).
    assert_eq!(login(&t, "wrong-4", &[]).await.0, StatusCode::UNAUTHORIZED);
    // The sixth distinct failure locks the address.
    let (status, retry, _) = login(&t, "wrong-5", &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry.as_deref(), Some("4"));
    // Locked: every attempt from here is refused, the right key too (it is not even compared,
    // so a lucky guess learns nothing), on every route that takes the admin key.
    let (status, retry, _) = login(&t, AUTH, &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = retry.unwrap().parse().unwrap();
    assert!((1..=4).contains(&secs), "{secs}");
    assert_eq!(groups(&t, AUTH, &[]).await, StatusCode::TOO_MANY_REQUESTS);
    let res = t
        .send(
            "GET",
            "/api/groups",
            Some((support::CredentialPosition::Bearer, "x")),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.json()["code"], "TOO_MANY_REQUESTS");
    assert!(res.header("retry-after").is_some());
    // Without a key there is nothing to guess: the plain 401.
    let res = t.send("GET", "/api/groups", None, &[], None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);

    // Another address: the right key works and a wrong one is a plain 401.
    assert_eq!(login_from("127.0.0.2", server, AUTH).await, 200);
    assert_eq!(login_from("127.0.0.2", server, "nope").await, 401);

    // The lockout ends on its own.
    let unlocked = wait_until(Duration::from_secs(15), || async {
        login(&t, AUTH, &[]).await.0 == StatusCode::OK
    })
    .await;
    assert!(unlocked, "the lockout never ended");
    t.stop().await;
}

#[actix_rt::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_throttled() {
    let t = start(&[("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")]).await;
    let attacker: [(&str, &str); 1] = [("X-Forwarded-For", "203.0.113.7")];
    let mut locked_at = None;
    for i in 0..10 {
        let (status, retry, _) = login(&t, &format!("g{i}"), &attacker).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry.is_some());
            locked_at = Some(i + 1);
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(locked_at, Some(6), "locked at the sixth failure");
    // A hop the client prepended itself does not help: the proxy appends the real address.
    let prepended = [("X-Forwarded-For", "192.0.2.1, 203.0.113.7")];
    assert_eq!(
        login(&t, AUTH, &prepended).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy, and the proxy itself, are not affected.
    let other = [("X-Forwarded-For", "203.0.113.8")];
    assert_eq!(login(&t, AUTH, &other).await.0, StatusCode::OK);
    assert_eq!(login(&t, "wrong", &other).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(groups(&t, AUTH, &[]).await, StatusCode::OK);
    t.stop().await;
}
