//! The admin API's queries (key import/restore/clear/probe results, group copy and reorder,
//! aggregate membership, request logs, hourly stats) on PostgreSQL, MySQL and SQLite, so the
//! diesel code written once really runs on all three. Each test creates and drops its own
//! database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use chrono::Duration;
use diesel_async::{
    AsyncConnection, AsyncMysqlConnection, AsyncPgConnection, SimpleAsyncConnection,
};
use gpt_load::crypto::KeyCodec;
use gpt_load::db::models::GroupValues;
use gpt_load::db::repo::{now, Repo};
use gpt_load::db::repo_groups::CopyKeys;
use gpt_load::db::repo_logs::{LogFilter, LogTotal};
use gpt_load::db::{Database, DatabaseUrl};
use gpt_load_actors::domain::KeyStatus;
use gpt_load_actors::ports::KeyRepo;
use support::{hourly, log_row, this_hour};

fn server_url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("gptload_a_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

fn group(name: &str, group_type: &str) -> GroupValues {
    GroupValues {
        name: name.into(),
        display_name: String::new(),
        proxy_keys: String::new(),
        description: String::new(),
        group_type: group_type.into(),
        upstreams: r#"[{"url":"https://x","weight":1}]"#.into(),
        validation_endpoint: String::new(),
        channel_type: "openai".into(),
        sort: 0,
        test_model: "m".into(),
        param_overrides: "{}".into(),
        config: "{}".into(),
        header_rules: "[]".into(),
        model_redirect_rules: "{}".into(),
        model_redirect_strict: false,
        updated_at: now(),
    }
}

async fn exercise(url: &DatabaseUrl) {
    let repo = Repo::new(
        Database::connect(url, 2).await.unwrap(),
        KeyCodec::plaintext(),
    );
    let g = repo.insert_group(group("src", "standard")).await.unwrap();

    // Import: one transaction per call, existing keys skipped, ids returned in order.
    let keys: Vec<String> = (0..1200).map(|i| format!("sk-{i:05}")).collect();
    let added = repo.import_keys(g.id, keys[..700].to_vec()).await.unwrap();
    assert_eq!(added.len(), 700);
    let added = repo.import_keys(g.id, keys.clone()).await.unwrap();
    assert_eq!(added.len(), 500);
    assert!(added.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(repo.count_keys(g.id).await.unwrap(), 1200);

    // Health writes, operator status changes and restores. `disabled` round-trips, is listed
    // on its own, and a health write (a late pool write) never overwrites it.
    let first = repo
        .keys_by_hashes(g.id, &[repo.codec.hash("sk-00000")])
        .await
        .unwrap();
    let id = first[0].id;
    repo.save_key_health(id, KeyStatus::Invalid, 2)
        .await
        .unwrap();
    let row = repo.key(id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.failure_count), ("invalid", 2));
    let counts = repo.key_counts(Some(&[g.id])).await.unwrap()[&g.id];
    assert_eq!(
        (counts.total, counts.active, counts.invalid),
        (1200, 1199, 1)
    );
    let restored = repo.restore_keys(g.id, None).await.unwrap();
    assert_eq!(restored.len(), 1);
    repo.save_key_health(id, KeyStatus::Active, 1)
        .await
        .unwrap();
    let row = repo
        .set_key_status(id, KeyStatus::Disabled)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status.as_str(), row.failure_count), ("disabled", 1));
    repo.save_key_health(id, KeyStatus::Active, 5)
        .await
        .unwrap();
    assert_eq!(repo.key(id).await.unwrap().unwrap().status, "disabled");
    let counts = repo.key_counts(Some(&[g.id])).await.unwrap()[&g.id];
    assert_eq!(
        (counts.active, counts.invalid, counts.disabled),
        (1199, 0, 1)
    );
    assert_eq!(
        repo.group_keys(g.id, Some(KeyStatus::Disabled))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        repo.restore_keys(g.id, None).await.unwrap().is_empty(),
        "restoring touches invalid keys only"
    );
    let row = repo
        .set_key_status(id, KeyStatus::Active)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status.as_str(), row.failure_count), ("active", 0));
    assert!(repo
        .set_key_status(i64::MAX, KeyStatus::Active)
        .await
        .unwrap()
        .is_none());
    repo.save_key_health(id, KeyStatus::Invalid, 1)
        .await
        .unwrap();
    let restored = repo
        .restore_keys(
            g.id,
            Some(&[repo.codec.hash("sk-00000"), repo.codec.hash("sk-00001")]),
        )
        .await
        .unwrap();
    assert_eq!(restored.len(), 1);
    assert!(repo.update_notes(id, "n").await.unwrap());
    assert_eq!(repo.key(id).await.unwrap().unwrap().notes, "n");

    // Export batches and samples.
    let batch = repo.key_values_after(g.id, None, 0, 500).await.unwrap();
    assert_eq!(batch.len(), 500);
    let next = repo
        .key_values_after(g.id, None, batch[499].0, 1000)
        .await
        .unwrap();
    assert_eq!(next.len(), 700);
    assert_eq!(repo.key_sample(20).await.unwrap().len(), 20);
    assert_eq!(
        repo.group_keys(g.id, Some(KeyStatus::Active))
            .await
            .unwrap()
            .len(),
        1200
    );

    // Copy with keys, reorder, names.
    repo.save_key_health(id, KeyStatus::Invalid, 1)
        .await
        .unwrap();
    let mut copy = group("src_copy", "standard");
    copy.sort = 5;
    let (row, copied) = repo
        .copy_group(g.id, copy, CopyKeys::ValidOnly)
        .await
        .unwrap();
    assert_eq!(copied, 1199);
    assert_eq!(repo.count_keys(row.id).await.unwrap(), 1199);
    let (empty, copied) = repo
        .copy_group(g.id, group("src_copy_2", "standard"), CopyKeys::None)
        .await
        .unwrap();
    assert_eq!(copied, 0);
    assert!(matches!(
        repo.copy_group(g.id, group("src", "standard"), CopyKeys::All)
            .await,
        Err(gpt_load::db::DbError::Duplicate)
    ));
    assert_eq!(
        repo.reorder_groups(&[(g.id, 9), (424242, 1)])
            .await
            .unwrap(),
        Some(424242)
    );
    assert_eq!(
        repo.group(g.id).await.unwrap().unwrap().sort,
        0,
        "nothing written"
    );
    assert_eq!(
        repo.reorder_groups(&[(g.id, 9), (row.id, 1)])
            .await
            .unwrap(),
        None
    );
    assert_eq!(repo.group(g.id).await.unwrap().unwrap().sort, 9);
    assert_eq!(repo.group_names().await.unwrap().len(), 3);

    // Aggregate membership.
    let agg = repo.insert_group(group("agg", "aggregate")).await.unwrap();
    repo.add_sub_groups(agg.id, &[(g.id, 10), (row.id, 0)])
        .await
        .unwrap();
    assert!(
        repo.add_sub_groups(agg.id, &[(g.id, 1)]).await.is_err(),
        "unique pair"
    );
    assert_eq!(
        repo.sub_group_links(agg.id).await.unwrap(),
        vec![(g.id, 10), (row.id, 0)]
    );
    assert!(repo.set_sub_group_weight(agg.id, row.id, 7).await.unwrap());
    assert!(!repo
        .set_sub_group_weight(agg.id, empty.id, 7)
        .await
        .unwrap());
    assert_eq!(repo.parent_links(row.id).await.unwrap(), vec![(agg.id, 7)]);
    assert_eq!(
        repo.groups_by_ids(&[row.id, g.id]).await.unwrap()[0].id,
        row.id
    );
    assert!(repo.remove_sub_group(agg.id, row.id).await.unwrap());
    assert!(!repo.remove_sub_group(agg.id, row.id).await.unwrap());

    // Deleting by value, then clearing.
    let gone = repo
        .delete_keys_atomically(
            g.id,
            &[repo.codec.hash("sk-01199"), repo.codec.hash("nope")],
        )
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(
        repo.delete_keys_with_status(g.id, Some(KeyStatus::Invalid))
            .await
            .unwrap(),
        vec![id]
    );
    assert_eq!(
        repo.delete_keys_with_status(row.id, None)
            .await
            .unwrap()
            .len(),
        1199
    );

    // Logs and stats.
    let t0 = now();
    let mut rows = vec![
        log_row(
            g.id,
            "src_100%",
            "sk-00001",
            t0 - Duration::seconds(30),
            200,
        ),
        log_row(
            g.id,
            "src_100%",
            "sk-00002",
            t0 - Duration::seconds(20),
            500,
        ),
        log_row(g.id, "other", "sk-00001", t0 - Duration::seconds(10), 429),
    ];
    rows[2].request_type = "retry".into();
    repo.insert_request_logs(rows).await.unwrap();
    let filter = LogFilter {
        group_name: Some("_100%".into()),
        ..Default::default()
    };
    let (page, total) = repo.logs_page(&filter, 1, 10).await.unwrap();
    assert_eq!((page.len(), total), (2, LogTotal::Exact(2)));
    assert_eq!(page[0].status_code, 500, "newest first");
    let none = LogFilter {
        group_name: Some("src%0".into()),
        ..Default::default()
    };
    assert_eq!(
        repo.logs_page(&none, 1, 10).await.unwrap().1,
        LogTotal::Exact(0),
        "wildcards are literal"
    );
    // Counting stops a horizon past the page, and says the total is a lower bound.
    let many: Vec<_> = (0..30)
        .map(|i| {
            log_row(
                g.id,
                "counted",
                "sk-00003",
                t0 - Duration::seconds(100 + i),
                200,
            )
        })
        .collect();
    repo.insert_request_logs(many).await.unwrap();
    let counted = LogFilter {
        group_name: Some("counted".into()),
        ..Default::default()
    };
    let (first, total) = repo
        .logs_page_counting_ahead(&counted, 1, 10, 5)
        .await
        .unwrap();
    assert_eq!((first.len(), total), (10, LogTotal::AtLeast(16)));
    let (third, total) = repo
        .logs_page_counting_ahead(&counted, 3, 10, 5)
        .await
        .unwrap();
    assert_eq!((third.len(), total), (10, LogTotal::Exact(30)));
    repo.delete_logs_before(t0 - Duration::seconds(99))
        .await
        .unwrap();
    let export = repo
        .log_keys_batch(&LogFilter::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(export.len(), 3);
    assert!(export.windows(2).all(|w| w[0].key_hash <= w[1].key_hash));
    let key1 = repo.codec.hash("sk-00001");
    let latest = export.iter().find(|e| e.key_hash == key1).unwrap();
    assert_eq!(latest.group_name, "other", "a key's newest row comes first");
    assert_eq!(
        repo.count_final_logs(t0 - Duration::minutes(1), t0)
            .await
            .unwrap(),
        2
    );
    let hour = this_hour();
    repo.insert_hourly_stats(vec![hourly(g.id, hour, 3, 1), hourly(agg.id, hour, 9, 9)])
        .await
        .unwrap();
    let stats = repo
        .hourly_stats(
            hour - Duration::hours(1),
            hour + Duration::hours(1),
            Some(&[g.id]),
        )
        .await
        .unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].success_count, stats[0].failure_count), (3, 1));
    assert_eq!(stats[0].time, hour);
    exact_log_totals(&repo, g.id).await;
}

/// Issue 18, point 2: totals summed from `request_log_counts` (kept by the triggers on every
/// backend) plus the partial hours at the edges of a time range equal a plain count, through
/// inserts and deletes.
async fn exact_log_totals(repo: &Repo, group_id: i64) {
    let far = now() + Duration::days(1);
    repo.delete_logs_before(far).await.unwrap();
    assert_eq!(
        repo.logs_page(&LogFilter::default(), 1, 1).await.unwrap().1,
        LogTotal::Exact(0),
        "the delete trigger took every row out"
    );
    let base = this_hour() - Duration::hours(5);
    let rows: Vec<_> = (0..60)
        .map(|k| {
            let status = [200, 200, 500, 429][k % 4];
            let mut row = log_row(
                group_id,
                "g",
                "sk-00001",
                base + Duration::minutes(7 * k as i64),
                status,
            );
            if k % 5 == 0 {
                row.request_type = "retry".into();
            }
            row
        })
        .collect();
    repo.insert_request_logs(rows.clone()).await.unwrap();
    let at = |minutes: i64| base + Duration::minutes(minutes);
    let filters = vec![
        LogFilter::default(),
        LogFilter {
            status_code: Some(500),
            ..Default::default()
        },
        LogFilter {
            is_success: Some(false),
            ..Default::default()
        },
        LogFilter {
            request_type: Some("retry".into()),
            ..Default::default()
        },
        LogFilter {
            request_type: Some("bogus".into()),
            ..Default::default()
        },
        LogFilter {
            start: Some(at(95)),
            ..Default::default()
        },
        LogFilter {
            end: Some(at(200)),
            ..Default::default()
        },
        LogFilter {
            start: Some(at(61)),
            end: Some(at(299)),
            status_code: Some(200),
            ..Default::default()
        },
        LogFilter {
            start: Some(at(60)),
            end: Some(at(240)),
            ..Default::default()
        },
        LogFilter {
            start: Some(at(130)),
            end: Some(at(150)),
            ..Default::default()
        },
        LogFilter {
            start: Some(at(100)),
            end: Some(at(140)),
            is_success: Some(true),
            ..Default::default()
        },
    ];
    let expected = |f: &LogFilter, rows: &[gpt_load::db::repo_logs::LogRow]| {
        rows.iter()
            .filter(|r| f.status_code.is_none_or(|v| r.status_code == v))
            .filter(|r| f.is_success.is_none_or(|v| r.is_success == v))
            .filter(|r| f.request_type.as_ref().is_none_or(|v| &r.request_type == v))
            .filter(|r| f.start.is_none_or(|v| r.timestamp >= v))
            .filter(|r| f.end.is_none_or(|v| r.timestamp <= v))
            .count() as i64
    };
    for f in &filters {
        assert!(f.counted_by_hour());
        let total = repo.logs_page_counting_ahead(f, 1, 1, 0).await.unwrap().1;
        assert_eq!(total, LogTotal::Exact(expected(f, &rows)), "{f:?}");
    }
    let cutoff = at(150);
    repo.delete_logs_before(cutoff).await.unwrap();
    let left: Vec<_> = rows.into_iter().filter(|r| r.timestamp >= cutoff).collect();
    for f in &filters {
        let total = repo.logs_page_counting_ahead(f, 1, 1, 0).await.unwrap().1;
        assert_eq!(
            total,
            LogTotal::Exact(expected(f, &left)),
            "after delete: {f:?}"
        );
    }
}

#[actix_rt::test]
async fn postgres_admin_queries() {
    let server = server_url("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432");
    let name = unique_name();
    let mut admin = AsyncPgConnection::establish(&format!("{server}/test"))
        .await
        .expect("PostgreSQL must be running on 127.0.0.1:5432 (see .ci/test)");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    exercise(&DatabaseUrl::parse(&format!("{server}/{name}")).unwrap()).await;
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}

#[actix_rt::test]
async fn mysql_admin_queries() {
    let server = server_url("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306");
    let name = unique_name();
    let mut admin = AsyncMysqlConnection::establish(&format!("{server}/test"))
        .await
        .expect("MySQL/MariaDB must be running on 127.0.0.1:3306 (see .ci/test)");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    exercise(&DatabaseUrl::parse(&format!("{server}/{name}")).unwrap()).await;
    admin
        .batch_execute(&format!("DROP DATABASE {name}"))
        .await
        .unwrap();
}

#[actix_rt::test]
async fn sqlite_admin_queries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpt-load.db");
    exercise(&DatabaseUrl::parse(path.to_str().unwrap()).unwrap()).await;
}
