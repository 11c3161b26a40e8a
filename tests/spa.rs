//! The admin UI fallback: UI routes get an HTML page that is never cached (the built app, or the
//! page that says how to build it), while unknown API and proxy paths keep the JSON 404.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use serde_json::{json, Value};
use support::TestServer;

#[actix_rt::test]
async fn ui_routes_get_an_uncached_html_page() {
    let t = TestServer::start(&[]).await;
    for path in ["/", "/keys", "/logs?x=1", "/settings/deep/link"] {
        let mut res = t.client.get(t.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(
            res.headers().get("content-type").unwrap(),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            res.headers().get("cache-control").unwrap(),
            "no-cache, no-store, must-revalidate"
        );
        let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
        // Either the built app's shell or the page explaining how to build it.
        assert!(
            body.contains("<div id=\"app\">") || body.contains("npm run build"),
            "{path}: {body}"
        );
    }
    t.stop().await;
}

#[actix_rt::test]
async fn backend_paths_and_writes_never_fall_back_to_the_ui() {
    let t = TestServer::start(&[]).await;
    for path in ["/api/nope", "/api", "/proxy"] {
        let mut res = t.client.get(t.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"error": "Not Found"})
        );
    }
    let res = t.client.post(t.url("/keys")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    t.stop().await;
}
