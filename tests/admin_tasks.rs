//! Background key tasks: async import (JSON and .txt upload), async delete, group validation,
//! one task at a time, progress, and a 100,000-key import measured against proxy latency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use awc::http::StatusCode;
use gpt_load_mock_upstream::Behavior;
use serde_json::{json, Value};
use support::{CredentialPosition, TestServer, AUTH};

#[actix_rt::test]
async fn every_task_route_checks_the_admin_key_in_all_positions() {
    let t = TestServer::start(&[]).await;
    for (method, path) in [
        ("POST", "/api/keys/add-async"),
        ("POST", "/api/keys/delete-async"),
        ("POST", "/api/keys/validate-group"),
        ("GET", "/api/tasks/status"),
    ] {
        t.assert_admin_auth(method, path).await;
    }
    t.stop().await;
}

async fn total_keys(t: &TestServer, gid: i64, status: &str) -> i64 {
    let (_, body) = t
        .get(&format!("/api/keys?group_id={gid}&status={status}"))
        .await;
    body["data"]["pagination"]["total_items"].as_i64().unwrap()
}

#[actix_rt::test]
async fn status_is_idle_before_any_task() {
    let t = TestServer::start(&[]).await;
    let (status, body) = t.get("/api/tasks/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"],
        json!({"task_type": "", "is_running": false, "processed": 0, "total": 0,
               "started_at": "0001-01-01T00:00:00Z"})
    );
    t.stop().await;
}

#[actix_rt::test]
async fn json_import_then_delete_runs_as_tasks() {
    let t = TestServer::start(&["sk-a-1"]).await;
    let gid = t.create_group("imp", &["sk-a-1"], json!({})).await;
    let text = (1..=2500)
        .map(|i| format!("sk-a-{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let (status, body) = t
        .post(
            "/api/keys/add-async",
            json!({"group_id": gid, "keys_text": format!("{text};sk-a-2")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["task_type"], "KEY_IMPORT");
    assert_eq!(body["data"]["group_name"], "imp");
    assert_eq!(body["data"]["total"], 2501);
    let done = t.wait_for_task(Duration::from_secs(60)).await;
    assert_eq!(
        done["result"],
        json!({"added_count": 2499, "ignored_count": 2}),
        "{done}"
    );
    assert_eq!(done["processed"], 2501);
    assert!(done["finished_at"].is_string() && done["duration_seconds"].is_number());
    assert_eq!(total_keys(&t, gid, "").await, 2500);

    let (status, body) = t
        .post(
            "/api/keys/delete-async",
            json!({"group_id": gid, "keys_text": "sk-a-1 sk-a-2 sk-zz"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["task_type"], "KEY_DELETE");
    let done = t.wait_for_task(Duration::from_secs(30)).await;
    assert_eq!(
        done["result"],
        json!({"deleted_count": 2, "ignored_count": 1}),
        "{done}"
    );
    assert_eq!(total_keys(&t, gid, "").await, 2498);
    // The deleted key left the pool: sk-a-1 (the only key the mock accepts) is gone.
    t.mock.clear_requests();
    let (status, _) = t.chat("imp", false).await;
    assert!(!t.keys_seen().contains(&"sk-a-1".to_string()));
    assert_ne!(status, StatusCode::OK);

    for (route, body, status, code) in [
        (
            "add-async",
            json!({"group_id": gid, "keys_text": "  "}),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            "add-async",
            json!({"group_id": gid, "keys_text": ",,;"}),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            "add-async",
            json!({"group_id": 999, "keys_text": "sk"}),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            "add-async",
            json!({"group_id": gid}),
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
        ),
        (
            "delete-async",
            json!({"group_id": gid, "keys_text": ""}),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            "delete-async",
            json!({"group_id": 999, "keys_text": "sk"}),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            "delete-async",
            json!({"keys_text": "sk"}),
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
        ),
    ] {
        let (got, res) = t.post(&format!("/api/keys/{route}"), body.clone()).await;
        assert_eq!(got, status, "{route} {body}: {res}");
        assert_eq!(res["code"], code, "{route} {body}");
    }
    let res = t
        .send(
            "POST",
            "/api/keys/add-async",
            Some((CredentialPosition::Bearer, AUTH)),
            &[],
            Some(("application/json", b"{\"group_id\": 1, ".to_vec())),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json()["code"], "INVALID_JSON");
    t.stop().await;
}

fn multipart(parts: &[(&str, Option<&str>, &str)]) -> (String, Vec<u8>) {
    let boundary = "----gptloadtestboundary";
    let mut body = String::new();
    for (name, filename, content) in parts {
        body.push_str(&format!("--{boundary}\r\n"));
        match filename {
            Some(f) => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: text/plain\r\n\r\n"
            )),
            None => body.push_str(&format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n")),
        }
        body.push_str(content);
        body.push_str("\r\n");
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[actix_rt::test]
async fn txt_upload_imports_keys() {
    let t = TestServer::start(&[]).await;
    let gid = t.create_group("up", &[], json!({})).await;
    let upload = |parts: Vec<(&'static str, Option<&'static str>, String)>| {
        let parts: Vec<(&str, Option<&str>, &str)> =
            parts.iter().map(|(n, f, c)| (*n, *f, c.as_str())).collect();
        multipart(&parts)
    };
    let (ct, body) = upload(vec![
        ("group_id", None, gid.to_string()),
        (
            "file",
            Some("Keys.TXT"),
            "sk-u-1\nsk-u-2\r\nsk-u-3, sk-u-1\n".to_string(),
        ),
    ]);
    let res = t
        .send(
            "POST",
            "/api/keys/add-async",
            Some((CredentialPosition::Bearer, AUTH)),
            &[],
            Some((&ct, body)),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["data"]["total"], 4);
    let done = t.wait_for_task(Duration::from_secs(30)).await;
    assert_eq!(
        done["result"],
        json!({"added_count": 3, "ignored_count": 1}),
        "{done}"
    );

    for (parts, status, needle) in [
        (
            vec![
                ("group_id", None, gid.to_string()),
                ("file", Some("keys.csv"), "sk".to_string()),
            ],
            StatusCode::BAD_REQUEST,
            ".txt",
        ),
        (
            vec![("group_id", None, gid.to_string())],
            StatusCode::BAD_REQUEST,
            "file",
        ),
        (
            vec![("file", Some("k.txt"), "sk".to_string())],
            StatusCode::BAD_REQUEST,
            "group_id",
        ),
        (
            vec![
                ("group_id", None, "abc".to_string()),
                ("file", Some("k.txt"), "sk".to_string()),
            ],
            StatusCode::BAD_REQUEST,
            "group_id",
        ),
        (
            vec![
                ("group_id", None, "999".to_string()),
                ("file", Some("k.txt"), "sk".to_string()),
            ],
            StatusCode::NOT_FOUND,
            "Group not found",
        ),
        (
            vec![
                ("group_id", None, gid.to_string()),
                ("file", Some("k.txt"), " \n".to_string()),
            ],
            StatusCode::BAD_REQUEST,
            "empty",
        ),
    ] {
        let (ct, body) = upload(parts);
        let res = t
            .send(
                "POST",
                "/api/keys/add-async",
                Some((CredentialPosition::Bearer, AUTH)),
                &[],
                Some((&ct, body)),
            )
            .await;
        assert_eq!(res.status, status, "{}", res.text());
        assert!(
            res.json()["message"].as_str().unwrap().contains(needle),
            "{}",
            res.text()
        );
    }
    // A truncated multipart body is a 400, not a 500.
    let res = t
        .send(
            "POST",
            "/api/keys/add-async",
            Some((CredentialPosition::Bearer, AUTH)),
            &[],
            Some((
                "multipart/form-data; boundary=xyz",
                b"--xyz\r\nContent-Disposition: form-data; name=\"file\"".to_vec(),
            )),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
    t.stop().await;
}

/// Issue 18, point 7: GPT-Load answers task starts and group copies with its plain "Success",
/// and a sub-group removal with "Sub group deleted successfully".
#[actix_rt::test]
async fn success_messages_match_gpt_load() {
    let t = TestServer::start(&["sk-m1"]).await;
    let gid = t.create_group("msgs", &["sk-m1"], json!({})).await;
    let wait = || t.wait_for_task(Duration::from_secs(30));
    for (route, body) in [
        (
            "add-async",
            json!({"group_id": gid, "keys_text": "sk-m2 sk-m3"}),
        ),
        (
            "delete-async",
            json!({"group_id": gid, "keys_text": "sk-m3"}),
        ),
        ("validate-group", json!({"group_id": gid})),
    ] {
        let (status, res) = t.post(&format!("/api/keys/{route}"), body).await;
        assert_eq!(status, StatusCode::OK, "{route}: {res}");
        assert_eq!(res["code"], 0, "{route}");
        assert_eq!(res["message"], "Success", "{route}");
        assert_eq!(res["data"]["is_running"], true, "{route}: the task status");
        wait().await;
    }
    let (status, res) = t.post(&format!("/api/groups/{gid}/copy"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["message"], "Success");
    assert!(res["data"]["group"].is_object());
    wait().await;
    let (status, res) = t
        .post(
            "/api/groups",
            json!({"name": "agg", "group_type": "aggregate", "channel_type": "openai"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let agg = res["data"]["id"].as_i64().unwrap();
    support::add_sub_groups(&t, agg, &[(gid, 1)]).await;
    let (status, res) = t
        .delete(&format!("/api/groups/{agg}/sub-groups/{gid}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(
        res,
        json!({"code": 0, "message": "Sub group deleted successfully"})
    );
    t.stop().await;
}

#[actix_rt::test]
async fn only_one_task_runs_at_a_time() {
    let t = TestServer::start(&["sk-hang"]).await;
    let gid = t
        .create_group(
            "slow",
            &["sk-hang"],
            json!({"key_validation_timeout_seconds": 2}),
        )
        .await;
    t.mock.script("sk-hang", Behavior::Hang);
    let started = Instant::now();
    let (status, body) = t
        .post("/api/keys/validate-group", json!({"group_id": gid}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["task_type"], "KEY_VALIDATION");
    assert_eq!(body["data"]["is_running"], true);

    // Concurrent starts of every kind are refused while it runs.
    let attempts = (0..6).map(|i| {
        let (route, body) = match i % 3 {
            0 => ("add-async", json!({"group_id": gid, "keys_text": "sk-new"})),
            1 => (
                "delete-async",
                json!({"group_id": gid, "keys_text": "sk-hang"}),
            ),
            _ => ("validate-group", json!({"group_id": gid})),
        };
        let t = &t;
        async move { t.post(&format!("/api/keys/{route}"), body).await }
    });
    for (status, body) in futures_util::future::join_all(attempts).await {
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "TASK_IN_PROGRESS");
        assert_eq!(body["message"], "A task is already running, please wait");
    }
    let (_, zh) = t
        .admin_lang(
            "POST",
            "/api/keys/validate-group",
            Some(json!({"group_id": gid})),
            "zh-CN",
        )
        .await;
    assert_eq!(zh["code"], "TASK_IN_PROGRESS");
    assert_eq!(zh["message"], "已有任务正在运行，请稍候");

    let done = t.wait_for_task(Duration::from_secs(30)).await;
    let took = started.elapsed();
    assert_eq!(
        done["result"],
        json!({"total_keys": 1, "valid_keys": 0, "invalid_keys": 1}),
        "{done}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "the group's timeout applies: {took:?}"
    );
    assert_eq!(total_keys(&t, gid, "").await, 1, "nothing else ran");
    t.stop().await;
}

#[actix_rt::test]
async fn validate_group_updates_keys_and_the_pool() {
    let t = TestServer::start(&["sk-v-1", "sk-v-2"]).await;
    let keys = ["sk-v-1", "sk-v-2", "sk-v-3", "sk-v-4", "sk-v-5"];
    let gid = t
        .create_group(
            "val",
            &keys,
            json!({"blacklist_threshold": 1, "key_validation_concurrency": 2, "max_retries": 0}),
        )
        .await;
    t.mock.clear_requests();
    let (status, body) = t
        .post("/api/keys/validate-group", json!({"group_id": gid}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["total"], 5);
    let done = t.wait_for_task(Duration::from_secs(30)).await;
    assert_eq!(
        done["result"],
        json!({"total_keys": 5, "valid_keys": 2, "invalid_keys": 3}),
        "{done}"
    );
    assert_eq!(done["processed"], 5);
    assert_eq!(t.mock.total_requests(), 5);
    assert_eq!(total_keys(&t, gid, "invalid").await, 3);
    t.mock.clear_requests();
    for _ in 0..4 {
        assert_eq!(t.chat("val", false).await.0, StatusCode::OK);
    }
    let mut seen = t.keys_seen();
    seen.sort();
    assert_eq!(
        seen,
        vec!["sk-v-1", "sk-v-1", "sk-v-2", "sk-v-2"],
        "blacklisted keys left the pool"
    );

    // Only the invalid keys, after one of them was fixed upstream.
    t.mock.add_key("sk-v-3");
    t.post(
        "/api/keys/validate-group",
        json!({"group_id": gid, "status": "invalid"}),
    )
    .await;
    let done = t.wait_for_task(Duration::from_secs(30)).await;
    assert_eq!(
        done["result"],
        json!({"total_keys": 3, "valid_keys": 1, "invalid_keys": 2}),
        "{done}"
    );
    assert_eq!(total_keys(&t, gid, "active").await, 3);
    t.mock.clear_requests();
    for _ in 0..3 {
        t.chat("val", false).await;
    }
    assert!(
        t.keys_seen().contains(&"sk-v-3".to_string()),
        "revived key rejoined the pool"
    );

    for (body, status, needle) in [
        (
            json!({"group_id": gid, "status": "weird"}),
            StatusCode::BAD_REQUEST,
            "status",
        ),
        (
            json!({"group_id": 999}),
            StatusCode::NOT_FOUND,
            "Group not found",
        ),
        (json!({"group_id": 0}), StatusCode::BAD_REQUEST, "group_id"),
        (
            json!({"status": "active"}),
            StatusCode::BAD_REQUEST,
            "group_id",
        ),
    ] {
        let (got, res) = t.post("/api/keys/validate-group", body.clone()).await;
        assert_eq!(got, status, "{body}: {res}");
        assert!(res["message"].as_str().unwrap().contains(needle), "{res}");
    }
    // Issue 18, point 3: nothing to validate is a refused task start in GPT-Load (409
    // TASK_IN_PROGRESS with the reason), which its UI shows as is.
    let empty = t.create_group("empty", &[], json!({})).await;
    let (status, res) = t
        .post("/api/keys/validate-group", json!({"group_id": empty}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        res,
        json!({"code": "TASK_IN_PROGRESS", "message": "No keys to validate in group empty"})
    );
    t.stop().await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// Proxied requests at a steady ~100 per second (one every 10 ms), the latency of each.
async fn timed_chats(t: &TestServer, group: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(timed_chat(t, group).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    out.sort();
    out
}

async fn timed_chat(t: &TestServer, group: &str) -> Duration {
    let start = Instant::now();
    let (status, body) = t.chat(group, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    start.elapsed()
}

fn describe(label: &str, samples: &[Duration]) -> String {
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    format!(
        "{label}: n={} mean={:.2}ms p50={:.2}ms p95={:.2}ms max={:.2}ms",
        samples.len(),
        mean.as_secs_f64() * 1000.0,
        percentile(samples, 0.5).as_secs_f64() * 1000.0,
        percentile(samples, 0.95).as_secs_f64() * 1000.0,
        samples.last().unwrap().as_secs_f64() * 1000.0,
    )
}

/// Imports 100,000 keys and measures how long it takes and what it does to the latency of
/// proxied requests to another group, sent at a steady ~100 requests per second throughout.
/// Prints the figures (run with `--nocapture`); asserts only a generous deadline.
#[actix_rt::test]
async fn import_of_100k_keys_is_fast_and_leaves_other_groups_alone() {
    let t = TestServer::start(&["sk-other", "sk-bulk-000000"]).await;
    t.mock.set_recording(false);
    let other = t.create_group("other", &["sk-other"], json!({})).await;
    let _ = other;
    let bulk = t.create_group("bulk", &[], json!({"max_retries": 0})).await;
    timed_chats(&t, "other", 20).await;
    let baseline = timed_chats(&t, "other", 200).await;

    let keys: Vec<String> = (0..100_000).map(|i| format!("sk-bulk-{i:06}")).collect();
    let body = json!({"group_id": bulk, "keys_text": keys.join("\n")});
    let started = Instant::now();
    let (status, res) = t.post("/api/keys/add-async", body).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let accepted = started.elapsed();

    let mut during = Vec::new();
    let mut progress_seen = Vec::new();
    let deadline = started + Duration::from_secs(120);
    let done: Value = loop {
        let (_, status) = t.get("/api/tasks/status").await;
        let data = status["data"].clone();
        progress_seen.push(data["processed"].as_i64().unwrap());
        if data["is_running"] == false {
            break data;
        }
        assert!(
            Instant::now() < deadline,
            "import still running after 120 s: {data}"
        );
        during.push(timed_chat(&t, "other").await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let wall = started.elapsed();
    assert_eq!(
        done["result"],
        json!({"added_count": 100_000, "ignored_count": 0}),
        "{done}"
    );
    assert!(
        progress_seen.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows"
    );
    assert_eq!(total_keys(&t, bulk, "").await, 100_000);
    // The imported keys are in the pool: the first one serves the next request.
    let (status, body) = t.chat("bulk", false).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    during.sort();
    eprintln!("100k import: request accepted in {:.0}ms, finished after {:.2}s wall (task duration {}s); {} progress polls",
        accepted.as_secs_f64() * 1000.0, wall.as_secs_f64(), done["duration_seconds"], progress_seen.len());
    eprintln!(
        "{}",
        describe("proxy latency to another group, idle", &baseline)
    );
    if !during.is_empty() {
        eprintln!(
            "{}",
            describe("proxy latency to another group, during import", &during)
        );
    }
    t.stop().await;
}
