//! The same migrations and queries on PostgreSQL and MySQL (real local servers), so the three
//! schemas never drift. Each test creates and drops its own database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use diesel_async::{
    AsyncConnection, AsyncMysqlConnection, AsyncPgConnection, SimpleAsyncConnection,
};
use gpt_load::crypto::KeyCodec;
use gpt_load::db::models::GroupValues;
use gpt_load::db::repo::{now, KeyFilter, Repo};
use gpt_load::db::{migrate, Database, DatabaseUrl};
use gpt_load_actors::domain::KeyStatus;
use gpt_load_actors::ports::{ConfigRepo, KeyRepo};

fn server_url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("gptload_t_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

fn group(name: &str) -> GroupValues {
    GroupValues {
        name: name.into(),
        display_name: "G".into(),
        proxy_keys: "p1".into(),
        description: String::new(),
        group_type: "standard".into(),
        upstreams: r#"[{"url":"https://x","weight":1}]"#.into(),
        validation_endpoint: String::new(),
        channel_type: "openai".into(),
        sort: 2,
        test_model: "m".into(),
        param_overrides: "{}".into(),
        config: r#"{"max_retries":1}"#.into(),
        header_rules: "[]".into(),
        model_redirect_rules: "{}".into(),
        model_redirect_strict: false,
        updated_at: now(),
    }
}

/// Runs every kind of query the service issues against `url`'s backend.
async fn exercise(url: &DatabaseUrl) {
    let db = Database::connect(url, 2).await.unwrap();
    assert_eq!(
        migrate(url).await.unwrap(),
        0,
        "a second run applies nothing"
    );
    let repo = Repo::new(db, KeyCodec::plaintext());

    let defaults = vec![("max_retries".to_string(), "3".to_string(), "d".to_string())];
    assert_eq!(repo.ensure_settings(&defaults).await.unwrap(), 1);
    assert_eq!(repo.ensure_settings(&defaults).await.unwrap(), 0);
    repo.update_settings(vec![
        ("max_retries".into(), "4".into()),
        ("proxy_keys".into(), "a".into()),
    ])
    .await
    .unwrap();
    let settings = repo.load_settings().await.unwrap();
    assert_eq!(settings["max_retries"], "4");
    assert_eq!(settings["proxy_keys"], "a");

    let g = repo.insert_group(group("one")).await.unwrap();
    assert!(matches!(
        repo.insert_group(group("one")).await,
        Err(gpt_load::db::DbError::Duplicate)
    ));
    let mut changed = group("one");
    changed.sort = 9;
    assert_eq!(repo.update_group(g.id, changed).await.unwrap().sort, 9);
    assert_eq!(
        repo.load_groups().await.unwrap()[0].config["max_retries"],
        1
    );

    let keys: Vec<String> = (0..1200).map(|i| format!("sk-{i:05}")).collect();
    let inserted = repo.insert_keys(g.id, &keys).await.unwrap();
    assert_eq!(inserted.len(), 1200);
    assert!(inserted.windows(2).all(|w| w[0].id < w[1].id));
    let hashes: Vec<String> = keys[..10].iter().map(|k| repo.codec.hash(k)).collect();
    assert_eq!(repo.existing_hashes(g.id, &hashes).await.unwrap().len(), 10);
    repo.save_key_health(inserted[0].id, KeyStatus::Invalid, 3)
        .await
        .unwrap();
    let filter = KeyFilter {
        group_id: g.id,
        status: Some(KeyStatus::Invalid),
        key_hash: None,
    };
    let (rows, total) = repo.keys_page(&filter, 1, 15).await.unwrap();
    assert_eq!((rows.len(), total), (1, 1));
    assert_eq!(rows[0].failure_count, 3);
    let all = KeyFilter {
        group_id: g.id,
        ..Default::default()
    };
    let (rows, total) = repo.keys_page(&all, 2, 1000).await.unwrap();
    assert_eq!((rows.len(), total), (200, 1200));
    let loaded = repo.load_keys(Some(g.id)).await.unwrap();
    assert_eq!(loaded.len(), 1200);
    assert_eq!(loaded[0].status, KeyStatus::Invalid);
    assert_eq!(
        repo.delete_keys_by_hash(g.id, &hashes).await.unwrap().len(),
        10
    );
    assert_eq!(repo.count_keys(g.id).await.unwrap(), 1190);
    repo.delete_group(g.id).await.unwrap();
    assert_eq!(repo.count_keys(g.id).await.unwrap(), 0);
    assert!(repo.group(g.id).await.unwrap().is_none());
    outlives_the_runtime_that_opened_it(url).await;
}

#[actix_rt::test]
async fn postgres_migrations_and_queries() {
    let server = server_url("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432");
    let name = unique_name();
    let mut admin = AsyncPgConnection::establish(&format!("{server}/test"))
        .await
        .expect("PostgreSQL must be running on 127.0.0.1:5432 (see .ci/run)");
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
async fn mysql_migrations_and_queries() {
    let server = server_url("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306");
    let name = unique_name();
    let mut admin = AsyncMysqlConnection::establish(&format!("{server}/test"))
        .await
        .expect("MySQL/MariaDB must be running on 127.0.0.1:3306 (see .ci/run)");
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
async fn sqlite_migrations_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/gpt-load.db");
    exercise(&DatabaseUrl::parse(path.to_str().unwrap()).unwrap()).await;
    assert!(path.exists(), "the parent directory is created");
}

/// A connection first opened from another runtime (an actix worker serving an admin call) keeps
/// working when that runtime stops while the connection is in use elsewhere: the last log flush
/// of a graceful stop runs as the workers stop, on whatever pooled connection it gets. (A SQLite
/// connection runs its calls on the runtime it was opened on; a PostgreSQL one its driver task.)
async fn outlives_the_runtime_that_opened_it(url: &DatabaseUrl) {
    let db = Database::connect(url, 2).await.unwrap();
    let repo = Repo::new(db.clone(), KeyCodec::plaintext());
    let defaults = vec![("max_retries".to_string(), "3".to_string(), "d".to_string())];

    // While the connection opened at start is held here, a worker's runtime opens the second
    // one, returns it to the pool, and then waits to stop. The pool hands out the connection
    // returned first: the worker's, checked out (and verified) while the worker still runs.
    macro_rules! check {
        ($pool:expr) => {{
            use diesel_async::RunQueryDsl;
            let held = gpt_load::db::checkout($pool).await.unwrap();
            let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
            let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
            let worker = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(repo.ensure_settings(&defaults)).unwrap();
                opened_tx.send(()).unwrap();
                stop_rx.recv().unwrap();
                drop(runtime);
            });
            opened_rx.await.unwrap();
            drop(held);
            let mut conn = gpt_load::db::checkout($pool).await.unwrap();
            stop_tx.send(()).unwrap();
            tokio::task::spawn_blocking(move || worker.join().unwrap())
                .await
                .unwrap();
            let ran = diesel::sql_query("SELECT 1").execute(&mut conn).await;
            ran.expect("the connection still runs queries");
        }};
    }
    match &db {
        Database::Sqlite(pool) => check!(pool),
        Database::Postgres(pool) => check!(pool),
        Database::Mysql(pool) => check!(pool),
    }
}
