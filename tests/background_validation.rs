//! The leader's background validation round: a blacklisted key that the upstream revives comes
//! back by itself in groups whose `key_validation_interval_minutes` is set, never in groups where
//! it is 0, and never while this node does not lead. The round's clock is shortened through the
//! config's test knobs (a "minute" of 50 ms, a check every 50 ms).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use awc::http::StatusCode;
use gpt_load_actors::cluster::Role;
use gpt_load_mock_upstream::Behavior;
use serde_json::{json, Value};
use support::{urlencode, wait_until, TestServer};

const DEAD: &str = "sk-bg-revived-000001";
const GOOD: &str = "sk-bg-good-000000001";
const OFF_DEAD: &str = "sk-bg-off-dead-00001";
const OFF_GOOD: &str = "sk-bg-off-good-00001";

async fn fast_server(keys: &[&str]) -> TestServer {
    TestServer::start_tuned(keys, &[], |config| {
        config.validation_check_every = Duration::from_millis(50);
        config.validation_minute = Duration::from_millis(50);
    })
    .await
}

async fn key(t: &TestServer, gid: i64, value: &str) -> Value {
    let (status, body) = t
        .get(&format!(
            "/api/keys?group_id={gid}&key_value={}",
            urlencode(value)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["items"][0].clone()
}

/// Sends requests until the key is blacklisted (threshold 1: its first 401 does it).
async fn blacklist(t: &TestServer, group: &str, gid: i64, value: &str) {
    let done = wait_until(Duration::from_secs(10), || async {
        let (status, body) = t.chat(group, false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        key(t, gid, value).await["status"] == "invalid"
    })
    .await;
    assert!(done, "{value} ends blacklisted");
}

fn config(interval_minutes: i64) -> Value {
    json!({"blacklist_threshold": 1, "key_validation_interval_minutes": interval_minutes})
}

#[actix_rt::test]
async fn a_revived_key_is_restored_by_the_round_and_leased_again() {
    let t = fast_server(&[DEAD, GOOD]).await;
    let gid = t.create_group("bg", &[DEAD, GOOD], config(1)).await;
    t.mock.script(DEAD, Behavior::Unauthorized);
    blacklist(&t, "bg", gid, DEAD).await;
    let dead = key(&t, gid, DEAD).await;
    assert_eq!(dead["state"], "invalid");
    assert_eq!(dead["last_failure"], "key_dead");

    t.mock.clear_script(DEAD);
    let revived = Instant::now();
    let restored = wait_until(Duration::from_secs(10), || async {
        key(&t, gid, DEAD).await["status"] == "active"
    })
    .await;
    let took = revived.elapsed();
    assert!(restored, "the background round restores the revived key");
    let back = key(&t, gid, DEAD).await;
    assert_eq!(
        (back["state"].as_str(), back["failure_count"].as_i64()),
        (Some("active"), Some(0))
    );
    println!("figures: revived key restored {took:?} after the upstream accepted it again (check every 50 ms, interval 1 x 50 ms)");

    let before = t.mock.requests_for_key(DEAD);
    for _ in 0..4 {
        let (status, _) = t.chat("bg", false).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(
        t.mock.requests_for_key(DEAD) >= before + 2,
        "the restored key is leased again"
    );
    let (_, groups) = t.get("/api/groups").await;
    let group = groups["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == gid)
        .unwrap()
        .clone();
    assert!(
        group["last_validated_at"].is_string(),
        "the round stamps the group: {group}"
    );
    t.stop().await;
}

#[actix_rt::test]
async fn interval_zero_turns_background_validation_off_for_that_group() {
    let t = fast_server(&[DEAD, GOOD, OFF_DEAD, OFF_GOOD]).await;
    let on = t.create_group("bg-on", &[DEAD, GOOD], config(1)).await;
    let off = t
        .create_group("bg-off", &[OFF_DEAD, OFF_GOOD], config(0))
        .await;
    t.mock.script(DEAD, Behavior::Unauthorized);
    t.mock.script(OFF_DEAD, Behavior::Unauthorized);
    blacklist(&t, "bg-off", off, OFF_DEAD).await;
    blacklist(&t, "bg-on", on, DEAD).await;
    t.mock.clear_script(OFF_DEAD);
    let probes_before = t.mock.requests_for_key(OFF_DEAD);
    t.mock.clear_script(DEAD);

    // The other group's restore proves rounds ran meanwhile.
    let restored = wait_until(Duration::from_secs(10), || async {
        key(&t, on, DEAD).await["status"] == "active"
    })
    .await;
    assert!(restored);
    assert_eq!(key(&t, off, OFF_DEAD).await["status"], "invalid");
    assert_eq!(
        t.mock.requests_for_key(OFF_DEAD),
        probes_before,
        "a group with interval 0 is never probed in the background"
    );
    t.stop().await;
}

#[actix_rt::test]
async fn rounds_run_only_while_this_node_leads() {
    let t = fast_server(&[DEAD, GOOD]).await;
    let gid = t.create_group("bg-lead", &[DEAD, GOOD], config(1)).await;
    t.mock.script(DEAD, Behavior::Unauthorized);
    blacklist(&t, "bg-lead", gid, DEAD).await;

    let leadership = t.app().state.leadership.clone();
    leadership.set(Role::Candidate);
    t.mock.clear_script(DEAD);
    let probes = t.mock.requests_for_key(DEAD);
    // 40 check periods without leadership: nothing may be probed or restored.
    let restored = wait_until(Duration::from_secs(2), || async {
        key(&t, gid, DEAD).await["status"] == "active"
    })
    .await;
    assert!(!restored, "a node that does not lead runs no round");
    assert_eq!(t.mock.requests_for_key(DEAD), probes);

    leadership.set(Role::Leader { epoch: 2 });
    let restored = wait_until(Duration::from_secs(10), || async {
        key(&t, gid, DEAD).await["status"] == "active"
    })
    .await;
    assert!(restored, "the next term runs rounds again");
    t.stop().await;
}
