//! Upstream calls through outbound proxies: a group's `proxy_url` (HTTP CONNECT or SOCKS5, with
//! credentials) and the environment's `HTTP_PROXY` / `NO_PROXY`, against real proxies on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use serde_json::json;
use support::proxies::{http_connect_proxy, socks5_proxy};
use support::TestServer;

const KEY: &str = "sk-outbound-key-0001";

async fn group_with_proxy(t: &TestServer, name: &str, proxy_url: &str) {
    t.create_group_json(
        json!({
            "name": name,
            "channel_type": "openai",
            "test_model": "m",
            "upstreams": [{"url": t.mock.base_url(), "weight": 1}],
            "proxy_keys": support::PROXY_KEY,
            "config": {"proxy_url": proxy_url},
        }),
        &[KEY],
    )
    .await;
}

#[actix_rt::test]
async fn http_connect_proxy_with_credentials_carries_the_request() {
    let proxy = http_connect_proxy(Some(("alice", "s3cret"))).await;
    let t = TestServer::start(&[KEY]).await;
    group_with_proxy(
        &t,
        "via-http",
        &format!("http://alice:s3cret@{}", proxy.addr),
    )
    .await;
    group_with_proxy(
        &t,
        "bad-auth",
        &format!("http://alice:wrong@{}", proxy.addr),
    )
    .await;
    let (status, body) = t.chat("via-http", false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(proxy.tunnels(), 1);
    assert_eq!(t.mock.requests_for_key(KEY), 1);
    let (status, _) = t.chat("bad-auth", false).await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "a refused tunnel is an upstream failure"
    );
    assert_eq!(proxy.tunnels(), 1);
    t.stop().await;
}

#[actix_rt::test]
async fn socks5_proxy_with_credentials_carries_the_request() {
    let proxy = socks5_proxy(Some(("bob", "pw"))).await;
    let t = TestServer::start(&[KEY]).await;
    group_with_proxy(&t, "via-socks", &format!("socks5://bob:pw@{}", proxy.addr)).await;
    let (status, body) = t.chat("via-socks", true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("[DONE]"),
        "a stream crosses the tunnel complete"
    );
    assert_eq!(proxy.tunnels(), 1);
    t.stop().await;
}

#[actix_rt::test]
async fn environment_proxy_applies_unless_no_proxy_matches() {
    let proxy = http_connect_proxy(None).await;
    let url = format!("http://{}", proxy.addr);
    let t = TestServer::start_with(&[KEY], &[("HTTP_PROXY", url.as_str())]).await;
    group_with_proxy(&t, "env", "").await;
    assert_eq!(t.chat("env", false).await.0, StatusCode::OK);
    assert_eq!(proxy.tunnels(), 1);
    t.stop().await;

    let bypass = TestServer::start_with(
        &[KEY],
        &[
            ("HTTP_PROXY", url.as_str()),
            ("NO_PROXY", "localhost,127.0.0.1"),
        ],
    )
    .await;
    group_with_proxy(&bypass, "env", "").await;
    assert_eq!(bypass.chat("env", false).await.0, StatusCode::OK);
    assert_eq!(proxy.tunnels(), 1, "NO_PROXY hosts are reached directly");
    bypass.stop().await;
}
