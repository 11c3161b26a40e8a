//! Keys that could never be sent (a CR, LF, NUL or space inside, other control characters,
//! non-ASCII letters) are refused with 400 naming their line or entry on every route that stores
//! keys: `add-multiple`, and `add-async` with JSON and with a `.txt` upload. Nothing of a refused
//! input is stored, and the error never repeats the key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use serde_json::{json, Value};
use support::{CredentialPosition, TestServer, AUTH};

fn multipart(group_id: i64, file: &str) -> (String, Vec<u8>) {
    let boundary = "----gptloadhygieneboundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"group_id\"\r\n\r\n{group_id}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"keys.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n{file}\r\n--{boundary}--\r\n"
    );
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

/// Sends `keys_text` to one import route; returns status and JSON body.
async fn import(
    t: &TestServer,
    route: &str,
    group_id: i64,
    keys_text: &str,
) -> (StatusCode, Value) {
    let (content_type, body) = match route {
        "multipart" => multipart(group_id, keys_text),
        _ => (
            "application/json".to_string(),
            serde_json::to_vec(&json!({"group_id": group_id, "keys_text": keys_text})).unwrap(),
        ),
    };
    let path = match route {
        "add-multiple" => "/api/keys/add-multiple",
        _ => "/api/keys/add-async",
    };
    let res = t
        .send(
            "POST",
            path,
            Some((CredentialPosition::Bearer, AUTH)),
            &[],
            Some((&content_type, body)),
        )
        .await;
    (res.status, res.json())
}

async fn stored_keys(t: &TestServer, group_id: i64) -> i64 {
    let (status, body) = t
        .get(&format!("/api/keys?group_id={group_id}&page_size=100"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["pagination"]["total_items"].as_i64().unwrap()
}

#[actix_rt::test]
async fn unusable_keys_are_refused_on_every_import_route() {
    let t = TestServer::start(&[]).await;
    let gid = t.create_group("hyg", &[], json!({})).await;
    // (keys text, where the error must point, the character); the secret part never echoes.
    let json_cases = [
        (
            r#"["sk-ok-1", "sk-crlf-SECRET\r\nX-Injected: 1"]"#,
            "Entry 2",
            "U+000D",
        ),
        (r#"["sk-lf-SECRET\nmore"]"#, "Entry 1", "U+000A"),
        (
            r#"["sk-ok-1", "sk-ok-2", "sk-space SECRET"]"#,
            "Entry 3",
            "U+0020",
        ),
        (r#"["sk-nul-SECRET\u0000x"]"#, "Entry 1", "U+0000"),
    ];
    let text_cases = [
        (
            "sk-ok-1\nsk-ok-2\nsk-nul-SECRET\u{0}x\n",
            "Line 3",
            "U+0000",
        ),
        ("sk-ok-1\r\nsk-esc-SECRET\u{1b}x", "Line 2", "U+001B"),
        ("sk-del-SECRET\u{7f}", "Line 1", "U+007F"),
        ("sk-ok-1, sk-accent-SECRET\u{e9}", "Line 1", "U+00E9"),
    ];
    let mut refused = 0;
    for route in ["add-multiple", "add-async"] {
        for (text, place, code) in json_cases.iter().chain(text_cases.iter()) {
            let (status, body) = import(&t, route, gid, text).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{route} {text:?}: {body}");
            let message = body["message"].as_str().unwrap();
            assert!(message.starts_with(place), "{route} {text:?}: {message}");
            assert!(message.contains(code), "{route} {text:?}: {message}");
            assert!(!message.contains("SECRET"), "{message}");
            refused += 1;
        }
    }
    for (text, place, code) in text_cases {
        let (status, body) = import(&t, "multipart", gid, text).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, ".txt {text:?}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(place) && message.contains(code),
            "{message}"
        );
        refused += 1;
    }
    assert_eq!(refused, 20);
    assert_eq!(
        stored_keys(&t, gid).await,
        0,
        "nothing of a refused input is stored"
    );
    assert_eq!(
        t.wait_for_task(std::time::Duration::from_secs(5)).await["is_running"],
        false
    );

    // Clean input (CRLF line ends, commas, a JSON array) is still imported.
    let (status, body) = import(&t, "add-multiple", gid, "sk-good-1\r\nsk-good-2, sk-good-3").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["added_count"], 3);
    let (status, body) = import(&t, "add-async", gid, r#"["sk-good-4", " sk-good-5 "]"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.wait_for_task(std::time::Duration::from_secs(30)).await;
    let (status, body) = import(&t, "multipart", gid, "sk-good-6\r\nsk-good-7\r\n").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.wait_for_task(std::time::Duration::from_secs(30)).await;
    assert_eq!(stored_keys(&t, gid).await, 7);
    t.stop().await;
}
