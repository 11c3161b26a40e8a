//! Request log routes: filters, pagination, ordering, parameter validation and the CSV export of
//! distinct keys. Rows are inserted directly through the repository.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use awc::http::StatusCode;
use chrono::{Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use gpt_load::db::schema::request_logs;
use gpt_load::with_conn;
use serde_json::{json, Value};
use support::{log_row, urlencode, CredentialPosition, TestServer, AUTH};

#[actix_rt::test]
async fn log_routes_check_the_admin_key_in_all_positions() {
    let t = TestServer::start(&[]).await;
    t.assert_admin_auth("GET", "/api/logs").await;
    t.assert_admin_auth("GET", "/api/logs/export").await;
    t.stop().await;
}

fn rfc3339(t: NaiveDateTime) -> String {
    urlencode(&t.and_utc().to_rfc3339())
}

async fn seed(t: &TestServer) -> NaiveDateTime {
    let now = Utc::now().naive_utc();
    let mut rows = vec![
        log_row(1, "alpha", "sk-one", now - Duration::minutes(1), 200),
        log_row(1, "alpha", "sk-two", now - Duration::minutes(2), 429),
        log_row(2, "beta_100%", "sk-one", now - Duration::minutes(3), 500),
        log_row(2, "beta_100%", "sk-three", now - Duration::hours(5), 200),
    ];
    rows[1].request_type = "retry".into();
    rows[1].model = "claude-3".into();
    rows[2].parent_group_id = 9;
    rows[2].parent_group_name = "agg-main".into();
    rows[2].error_message = "Rate limit exceeded, slow down".into();
    rows[3].source_ip = "192.168.1.7".into();
    t.repo().insert_request_logs(rows).await.unwrap();
    now
}

async fn ids(t: &TestServer, query: &str) -> Vec<(String, String)> {
    let (status, body) = t.get(&format!("/api/logs?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group_name"].as_str().unwrap().to_string(),
                r["key_value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[actix_rt::test]
async fn filters_pagination_and_shape() {
    let t = TestServer::start(&[]).await;
    let now = seed(&t).await;
    let (status, body) = t.get("/api/logs?page_size=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"]["pagination"],
        json!({"page": 1, "page_size": 2, "total_items": 4, "total_pages": 2, "total_exact": true})
    );
    let first: &Value = &body["data"]["items"][0];
    assert_eq!(first["key_value"], "sk-one", "newest first, key decrypted");
    assert_eq!(first["duration_ms"], 12);
    for field in [
        "id",
        "timestamp",
        "group_id",
        "group_name",
        "parent_group_id",
        "parent_group_name",
        "key_hash",
        "model",
        "is_success",
        "source_ip",
        "status_code",
        "request_path",
        "error_message",
        "user_agent",
        "request_type",
        "upstream_addr",
        "is_stream",
        "request_body",
    ] {
        assert!(first.get(field).is_some(), "{field}");
    }

    let alpha = |k: &str| ("alpha".to_string(), k.to_string());
    let beta = |k: &str| ("beta_100%".to_string(), k.to_string());
    assert_eq!(
        ids(&t, "group_name=alph").await,
        vec![alpha("sk-one"), alpha("sk-two")]
    );
    assert_eq!(
        ids(&t, "group_name=_100%25").await,
        vec![beta("sk-one"), beta("sk-three")]
    );
    assert!(
        ids(&t, "group_name=a_p").await.is_empty(),
        "_ is literal, not a wildcard"
    );
    assert_eq!(
        ids(&t, "parent_group_name=main").await,
        vec![beta("sk-one")]
    );
    assert_eq!(
        ids(&t, "key_value=sk-one").await,
        vec![alpha("sk-one"), beta("sk-one")]
    );
    assert_eq!(ids(&t, "model=claude").await, vec![alpha("sk-two")]);
    assert_eq!(
        ids(&t, "is_success=false").await,
        vec![alpha("sk-two"), beta("sk-one")]
    );
    assert_eq!(
        ids(&t, "is_success=1").await,
        vec![alpha("sk-one"), beta("sk-three")]
    );
    assert_eq!(ids(&t, "request_type=retry").await, vec![alpha("sk-two")]);
    assert_eq!(ids(&t, "status_code=500").await, vec![beta("sk-one")]);
    assert_eq!(
        ids(&t, "source_ip=192.168.1.7").await,
        vec![beta("sk-three")]
    );
    assert_eq!(
        ids(&t, "error_contains=limit%20exceeded").await,
        vec![beta("sk-one")]
    );
    let since = rfc3339(now - Duration::minutes(2) - Duration::seconds(30));
    assert_eq!(
        ids(&t, &format!("start_time={since}")).await,
        vec![alpha("sk-one"), alpha("sk-two")]
    );
    let until = rfc3339(now - Duration::hours(1));
    assert_eq!(
        ids(&t, &format!("end_time={until}")).await,
        vec![beta("sk-three")]
    );
    assert_eq!(
        ids(&t, "group_name=alpha&is_success=true&page=1&page_size=50").await,
        vec![alpha("sk-one")]
    );
    assert!(ids(&t, "page=9").await.is_empty());

    t.stop().await;
}

/// Issue 18, point 1: GPT-Load ignores filter values it cannot parse (its UI sends
/// `status_code=NaN` for letters typed in the box) and compares `request_type` as given.
#[actix_rt::test]
async fn unparseable_filters_are_ignored_like_gpt_load() {
    let t = TestServer::start(&[]).await;
    seed(&t).await;
    let everything = ids(&t, "").await;
    assert_eq!(everything.len(), 4);
    for query in [
        "status_code=NaN",
        "status_code=abc",
        "is_success=maybe",
        "start_time=2026-01-01",
        "end_time=2026-13-01",
        "start_time=yesterday&end_time=NaN",
    ] {
        let (status, body) = t.get(&format!("/api/logs?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(body["code"], 0);
        assert_eq!(body["message"], "Success");
        assert_eq!(body["data"]["pagination"]["total_items"], 4, "{query}");
        assert_eq!(ids(&t, query).await, everything, "{query}");
        let res = t
            .send(
                "GET",
                &format!("/api/logs/export?{query}"),
                Some((CredentialPosition::Query, AUTH)),
                &[],
                None,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "export {query}");
        assert_eq!(res.text().lines().count(), 4, "header + 3 keys: {query}");
    }
    // A valid value next to an invalid one still filters.
    assert_eq!(ids(&t, "status_code=NaN&is_success=false").await.len(), 2);
    let (status, body) = t.get("/api/logs?request_type=bogus").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["items"], json!([]));
    assert_eq!(
        body["data"]["pagination"],
        json!({"page": 1, "page_size": 15, "total_items": 0, "total_pages": 0, "total_exact": true})
    );
    t.stop().await;
}

/// Issue 18, point 2: GPT-Load's UI shows "Total N records" from `total_items` and knows nothing
/// of `total_exact`, so with more than 10,000 rows the total must still be exact for the
/// unfiltered listing and for the filters an index serves.
#[actix_rt::test]
async fn totals_above_ten_thousand_rows_are_exact() {
    let t = TestServer::start(&[]).await;
    let now = Utc::now().naive_utc();
    let rows: Vec<_> = (0..10_409)
        .map(|i| {
            let status = if i % 10 == 0 { 500 } else { 200 };
            log_row(1, "bulk", "sk-bulk", now - Duration::seconds(i), status)
        })
        .collect();
    t.repo().insert_request_logs(rows).await.unwrap();
    let (status, body) = t.get("/api/logs").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["code"], 0);
    assert_eq!(
        body["data"]["pagination"],
        json!({"page": 1, "page_size": 15, "total_items": 10_409, "total_pages": 694, "total_exact": true})
    );
    assert_eq!(body["data"]["items"].as_array().unwrap().len(), 15);
    let exact = |body: &Value| {
        (
            body["data"]["pagination"]["total_items"].as_i64().unwrap(),
            body["data"]["pagination"]["total_exact"].as_bool().unwrap(),
        )
    };
    let (_, body) = t.get("/api/logs?status_code=200&page=3").await;
    assert_eq!(exact(&body), (9_368, true));
    let (_, body) = t.get("/api/logs?is_success=false").await;
    assert_eq!(exact(&body), (1_041, true));
    let (_, body) = t.get("/api/logs?key_value=sk-bulk").await;
    assert_eq!(exact(&body), (10_409, true));
    // A time range that cuts hours in two: whole hours from the counts, the edges counted.
    let from = now - Duration::seconds(9_000) - Duration::milliseconds(500);
    let to = now - Duration::seconds(100) - Duration::milliseconds(500);
    let (_, body) = t
        .get(&format!(
            "/api/logs?start_time={}&end_time={}&request_type=final",
            rfc3339(from),
            rfc3339(to)
        ))
        .await;
    assert_eq!(exact(&body), (8_900, true));
    // A substring filter no index serves stops counting 10,000 rows past the page.
    let (_, body) = t.get("/api/logs?group_name=bul").await;
    assert_eq!(exact(&body), (10_016, false));
    t.stop().await;
}

const EXPORT_HEADER: &str = "key_value,group_name,status_code,input_tokens,output_tokens,\
total_tokens,cached_tokens,cache_write_tokens,reasoning_tokens";

async fn export_text(t: &TestServer, query: &str) -> String {
    let res = t
        .send(
            "GET",
            &format!("/api/logs/export{query}"),
            Some((CredentialPosition::Query, AUTH)),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "export {query}");
    res.text()
}

#[actix_rt::test]
async fn export_lists_each_key_once_with_its_latest_row() {
    let t = TestServer::start(&[]).await;
    let now = seed(&t).await;
    // Token counts: sk-one's newest row and an older one add up; sk-three reported reasoning;
    // sk-two (a retry) and the failed rows reported nothing.
    let mut older = log_row(1, "alpha", "sk-one", now - Duration::minutes(10), 200);
    (older.input_tokens, older.output_tokens, older.total_tokens) = (Some(1), Some(3), Some(4));
    older.cached_tokens = Some(0);
    t.repo().insert_request_logs(vec![older]).await.unwrap();
    let db = &t.app().state.repo.db;
    let set = |key: &'static str, tokens: [Option<i64>; 6]| async move {
        let hash = gpt_load::crypto::KeyCodec::plaintext().hash(key);
        let result: Result<usize, gpt_load::db::DbError> = async {
            Ok(with_conn!(db, conn => {
                diesel::update(
                    request_logs::table
                        .filter(request_logs::key_hash.eq(hash))
                        .filter(request_logs::status_code.eq(200))
                        .filter(request_logs::total_tokens.is_null()),
                )
                .set((
                    request_logs::input_tokens.eq(tokens[0]),
                    request_logs::output_tokens.eq(tokens[1]),
                    request_logs::total_tokens.eq(tokens[2]),
                    request_logs::cached_tokens.eq(tokens[3]),
                    request_logs::cache_write_tokens.eq(tokens[4]),
                    request_logs::reasoning_tokens.eq(tokens[5]),
                ))
                .execute(conn)
                .await?
            }))
        }
        .await;
        assert_eq!(result.unwrap(), 1, "{key}");
    };
    set("sk-one", [Some(10), Some(5), Some(15), Some(2), None, None]).await;
    set(
        "sk-three",
        [Some(7), Some(3), Some(10), None, Some(6), Some(1)],
    )
    .await;

    let res = t
        .send(
            "GET",
            "/api/logs/export",
            Some((CredentialPosition::Query, AUTH)),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.header("content-type").unwrap(),
        "text/csv; charset=utf-8"
    );
    let disposition = res.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=log_keys_export_"),
        "unquoted, as GPT-Load sends it: {disposition}"
    );
    assert!(disposition.ends_with(".csv"));
    let text = res.text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(EXPORT_HEADER));
    let mut rows: Vec<&str> = lines.collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            "sk-one,alpha,200,11,8,19,2,,",
            "sk-three,beta_100%,200,7,3,10,,6,1",
            "sk-two,alpha,429,,,,,,"
        ],
        "GPT-Load's three columns from the newest row, then each token column summed over \
         the rows that reported it (empty when none did)"
    );

    assert_eq!(
        export_text(&t, "?status_code=500").await,
        format!("{EXPORT_HEADER}\nsk-one,beta_100%,500,,,,,,\n")
    );
    assert_eq!(
        export_text(&t, "?group_name=alpha&is_success=true").await,
        format!("{EXPORT_HEADER}\nsk-one,alpha,200,11,8,19,2,,\n")
    );
    t.stop().await;
}

/// A key whose rows span several export batches still gets one line with all its tokens.
#[actix_rt::test]
async fn export_sums_a_keys_tokens_across_batches() {
    let t = TestServer::start(&[]).await;
    let now = Utc::now().naive_utc();
    let rows: Vec<_> = (0..2_345)
        .map(|i| {
            let key = if i % 1_000 == 999 { "sk-b" } else { "sk-a" };
            let mut row = log_row(1, "bulk", key, now - Duration::seconds(i), 200);
            (row.input_tokens, row.output_tokens, row.total_tokens) = (Some(2), Some(1), Some(3));
            row
        })
        .collect();
    t.repo().insert_request_logs(rows).await.unwrap();
    let text = export_text(&t, "").await;
    let mut lines: Vec<&str> = text.lines().skip(1).collect();
    lines.sort();
    assert_eq!(
        lines,
        vec!["sk-a,bulk,200,4686,2343,7029,,,", "sk-b,bulk,200,4,2,6,,,"]
    );
    t.stop().await;
}
