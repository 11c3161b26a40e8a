//! At-rest encryption of upstream keys: `migrate-keys` round trips on SQLite, PostgreSQL and
//! MySQL, interruption and refusal safety, the start-up check, the lock between servers and
//! migrations, no plaintext in the SQLite file or in any log line, and a proxied request with
//! encryption on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use diesel::prelude::*;
use diesel_async::{
    AsyncConnection, AsyncMysqlConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection,
};
use gpt_load::app::StartError;
use gpt_load::crypto::{is_encrypted_value, plain_hash, KeyCodec};
use gpt_load::db::instance_lock::{InstanceLock, LockKind, LockTiming};
use gpt_load::db::key_encryption::{kdf_record, KdfRecord};
use gpt_load::db::models::GroupValues;
use gpt_load::db::repo::{now, Repo};
use gpt_load::db::schema::{api_keys, instance_locks, request_logs};
use gpt_load::db::{Database, DatabaseUrl, DbError};
use gpt_load::key_encryption::startup::{open_codec, EncryptionMismatch};
use gpt_load::migrate_keys::{self, Fault, MigrateError, MigrateOptions, Report};
use gpt_load::{insert_batch, with_conn};
use gpt_load_actors::ports::KeyRepo;
use gpt_load_mock_upstream::MockUpstream;
use serde_json::{json, Value};
use support::{test_config, wait_until, TestServer, AUTH, PROXY_KEY};

const K1: &str = "enc-one-Vq7Lm2pXr9tWb4kQ";
const K2: &str = "enc-two-Zn1cHs8yQe3uJd6R";
const K3: &str = "enc-three-Pw5nGt2vLx8cMb1";

// ---- databases ------------------------------------------------------------------------------

/// A database of one backend, dropped by [`TestDb::drop_db`] (SQLite: with its directory).
struct TestDb {
    url: DatabaseUrl,
    backend: &'static str,
    server: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "gptload_enc_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

impl TestDb {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gpt-load.db");
        Self {
            url: DatabaseUrl::parse(path.to_str().unwrap()).unwrap(),
            backend: "sqlite",
            server: None,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Self {
        let server = std::env::var("TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = unique_name();
        let mut admin = AsyncPgConnection::establish(&format!("{server}/test"))
            .await
            .expect("PostgreSQL must be running on 127.0.0.1:5432 (see .ci/run)");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Self {
            url: DatabaseUrl::parse(&format!("{server}/{name}")).unwrap(),
            backend: "postgres",
            server: Some((server, name)),
            _dir: None,
        }
    }

    async fn mysql() -> Self {
        let server = std::env::var("TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        let name = unique_name();
        let mut admin = AsyncMysqlConnection::establish(&format!("{server}/test"))
            .await
            .expect("MySQL/MariaDB must be running on 127.0.0.1:3306 (see .ci/run)");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Self {
            url: DatabaseUrl::parse(&format!("{server}/{name}")).unwrap(),
            backend: "mysql",
            server: Some((server, name)),
            _dir: None,
        }
    }

    async fn drop_db(self) {
        match (self.backend, &self.server) {
            ("postgres", Some((server, name))) => {
                let mut admin = AsyncPgConnection::establish(&format!("{server}/test"))
                    .await
                    .unwrap();
                admin
                    .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
                    .await
                    .unwrap();
            }
            ("mysql", Some((server, name))) => {
                let mut admin = AsyncMysqlConnection::establish(&format!("{server}/test"))
                    .await
                    .unwrap();
                admin
                    .batch_execute(&format!("DROP DATABASE {name}"))
                    .await
                    .unwrap();
            }
            _ => {}
        }
    }
}

// ---- data -----------------------------------------------------------------------------------

fn group(name: &str) -> GroupValues {
    GroupValues {
        name: name.into(),
        display_name: name.into(),
        proxy_keys: String::new(),
        description: String::new(),
        group_type: "standard".into(),
        upstreams: r#"[{"url":"http://127.0.0.1:9","weight":1}]"#.into(),
        validation_endpoint: String::new(),
        channel_type: "openai".into(),
        sort: 0,
        test_model: "gpt-4o-mini".into(),
        param_overrides: "{}".into(),
        config: "{}".into(),
        header_rules: "[]".into(),
        model_redirect_rules: "{}".into(),
        model_redirect_strict: false,
        updated_at: now(),
    }
}

/// What a test stored: plain keys by id, and the plain key of every log row by id ("" = none).
struct Seed {
    keys: HashMap<i64, String>,
    logs: HashMap<String, String>,
}

impl Seed {
    fn logs_with_key(&self) -> u64 {
        self.logs.values().filter(|k| !k.is_empty()).count() as u64
    }
}

/// `keys` upstream keys in one group plus `logs` request-log rows (every 50th without a key),
/// all written through `codec` as the server would write them.
async fn seed(db: &Database, codec: &KeyCodec, keys: usize, logs: usize) -> Seed {
    let repo = Repo::new(db.clone(), codec.clone());
    let g = repo.insert_group(group("enc")).await.unwrap();
    let plain: Vec<String> = (0..keys)
        .map(|i| format!("sk-enc-{i:06}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    let inserted = repo.insert_keys(g.id, &plain).await.unwrap();
    assert_eq!(inserted.len(), keys);
    let key_map: HashMap<i64, String> = inserted
        .iter()
        .map(|k| (k.id, k.secret.expose().to_string()))
        .collect();
    let mut log_map = HashMap::new();
    let ts = now();
    let rows: Vec<_> = (0..logs)
        .map(|i| {
            let key = if i % 50 == 49 {
                String::new()
            } else {
                plain[i % keys.max(1)].clone()
            };
            let id = uuid::Uuid::new_v4().to_string();
            log_map.insert(id.clone(), key.clone());
            (
                request_logs::id.eq(id),
                request_logs::timestamp.eq(ts),
                request_logs::group_id.eq(g.id),
                request_logs::group_name.eq("enc"),
                request_logs::parent_group_id.eq(0i64),
                request_logs::parent_group_name.eq(""),
                request_logs::key_value.eq(codec.encode(&key).unwrap()),
                request_logs::key_hash.eq(codec.hash(&key)),
                request_logs::model.eq("gpt-4o-mini"),
                request_logs::is_success.eq(true),
                request_logs::source_ip.eq("127.0.0.1"),
                request_logs::status_code.eq(200),
                request_logs::request_path.eq("/proxy/enc/v1/chat/completions"),
                request_logs::duration.eq(5i64),
                request_logs::error_message.eq(""),
                request_logs::user_agent.eq(""),
                request_logs::request_type.eq("final"),
                request_logs::upstream_addr.eq("http://127.0.0.1:9/v1/chat/completions"),
                request_logs::is_stream.eq(false),
                request_logs::request_body.eq(""),
            )
        })
        .collect();
    for chunk in rows.chunks(500) {
        let chunk = chunk.to_vec();
        let inserted: Result<usize, DbError> =
            async { insert_batch!(db, request_logs::table, chunk) }.await;
        inserted.unwrap();
    }
    Seed {
        keys: key_map,
        logs: log_map,
    }
}

type Snapshot = (
    Vec<(i64, String, String)>,
    Vec<(String, String, String)>,
    Option<KdfRecord>,
);

/// Every stored value and hash, and the key_encryption record.
async fn snapshot(db: &Database) -> Snapshot {
    let (keys, logs) = match db {
        Database::Sqlite(pool) => {
            let mut c = pool.get().await.unwrap();
            (load_keys(&mut *c).await, load_logs(&mut *c).await)
        }
        Database::Postgres(pool) => {
            let mut c = pool.get().await.unwrap();
            (load_keys(&mut *c).await, load_logs(&mut *c).await)
        }
        Database::Mysql(pool) => {
            let mut c = pool.get().await.unwrap();
            (load_keys(&mut *c).await, load_logs(&mut *c).await)
        }
    };
    (keys, logs, kdf_record(db).await.unwrap())
}

macro_rules! loaders {
    ($($conn:ty),*) => {
        trait Loader {
            async fn keys(&mut self) -> Vec<(i64, String, String)>;
            async fn logs(&mut self) -> Vec<(String, String, String)>;
        }
        $(impl Loader for $conn {
            async fn keys(&mut self) -> Vec<(i64, String, String)> {
                api_keys::table
                    .select((api_keys::id, api_keys::key_value, api_keys::key_hash))
                    .order(api_keys::id.asc())
                    .load(self)
                    .await
                    .unwrap()
            }
            async fn logs(&mut self) -> Vec<(String, String, String)> {
                request_logs::table
                    .select((request_logs::id, request_logs::key_value, request_logs::key_hash))
                    .order(request_logs::id.asc())
                    .load(self)
                    .await
                    .unwrap()
            }
        })*
    };
}
loaders!(
    gpt_load::db::SqliteConn,
    AsyncPgConnection,
    AsyncMysqlConnection
);

async fn load_keys<C: Loader>(c: &mut C) -> Vec<(i64, String, String)> {
    c.keys().await
}

async fn load_logs<C: Loader>(c: &mut C) -> Vec<(String, String, String)> {
    c.logs().await
}

/// Every key and log key decodes with `codec` to what was stored, and every hash is `codec`'s.
async fn assert_readable(db: &Database, codec: &KeyCodec, seed: &Seed) {
    let (keys, logs, record) = snapshot(db).await;
    assert_eq!(keys.len(), seed.keys.len());
    assert_eq!(logs.len(), seed.logs.len());
    assert_eq!(record.is_some(), codec.is_encrypting());
    for (id, value, hash) in &keys {
        let plain = codec.decode(value).unwrap();
        assert_eq!(plain.expose(), seed.keys[id], "api_keys {id}");
        assert_eq!(*hash, codec.hash(plain.expose()), "api_keys {id} hash");
        assert_eq!(is_encrypted_value(value), codec.is_encrypting());
    }
    for (id, value, hash) in &logs {
        let plain = codec.decode(value).unwrap();
        assert_eq!(plain.expose(), seed.logs[id], "request_logs {id}");
        assert_eq!(*hash, codec.hash(plain.expose()), "request_logs {id} hash");
        if !plain.expose().is_empty() {
            assert_eq!(is_encrypted_value(value), codec.is_encrypting());
        }
    }
}

async fn migrate(
    db: &Database,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Report, MigrateError> {
    migrate_with(db, MigrateOptions::new(from, to)).await
}

async fn migrate_with(db: &Database, options: MigrateOptions) -> Result<Report, MigrateError> {
    let mut lines = Vec::new();
    let mut sink = |line: &str| lines.push(line.to_string());
    let result = migrate_keys::run(db, options, &mut sink).await;
    if result.is_ok() {
        assert!(
            lines.iter().any(|l| l.contains("api_keys:")),
            "progress lines name the tables: {lines:?}"
        );
    }
    result
}

async fn set_key_value(db: &Database, id: i64, value: &str) -> Result<usize, DbError> {
    Ok(with_conn!(db, conn => {
        diesel::update(api_keys::table.find(id))
            .set(api_keys::key_value.eq(value))
            .execute(conn)
            .await?
    }))
}

async fn delete_kdf_record(db: &Database) -> Result<usize, DbError> {
    Ok(with_conn!(db, conn => {
        diesel::delete(gpt_load::db::schema::key_encryption::table)
            .execute(conn)
            .await?
    }))
}

/// A lock row whose process died an hour ago.
async fn insert_crashed_lock(db: &Database) -> Result<usize, DbError> {
    Ok(with_conn!(db, conn => {
        diesel::insert_into(instance_locks::table)
            .values((
                instance_locks::id.eq("crashed"),
                instance_locks::kind.eq("server"),
                instance_locks::holder.eq("old-host, pid 1"),
                instance_locks::started_at.eq(now() - chrono::Duration::hours(2)),
                instance_locks::heartbeat_at.eq(now() - chrono::Duration::hours(1)),
            ))
            .execute(conn)
            .await?
    }))
}

async fn lock_rows(
    db: &Database,
) -> Result<Vec<(chrono::NaiveDateTime, chrono::NaiveDateTime)>, DbError> {
    Ok(with_conn!(db, conn => {
        instance_locks::table
            .select((instance_locks::started_at, instance_locks::heartbeat_at))
            .load(conn)
            .await?
    }))
}

async fn staging_exists(db: &Database) -> bool {
    let probe = "SELECT 1 FROM migrate_keys_stage_keys";
    match db {
        Database::Sqlite(pool) => pool.get().await.unwrap().batch_execute(probe).await.is_ok(),
        Database::Postgres(pool) => pool.get().await.unwrap().batch_execute(probe).await.is_ok(),
        Database::Mysql(pool) => pool.get().await.unwrap().batch_execute(probe).await.is_ok(),
    }
}

// ---- enable → rotate → disable over 10,000 keys and logs --------------------------------------

async fn round_trip(test_db: TestDb) {
    let backend = test_db.backend;
    let db = Database::connect(&test_db.url, 4).await.unwrap();
    let seed = seed(&db, &KeyCodec::plaintext(), 10_000, 10_000).await;
    assert_readable(&db, &KeyCodec::plaintext(), &seed).await;

    let started = Instant::now();
    let report = migrate(&db, None, Some(K1)).await.unwrap();
    eprintln!(
        "[{backend}] enable 10k keys + 10k logs: {:?}",
        started.elapsed()
    );
    assert_eq!(report.keys, 10_000);
    assert_eq!(report.logs, seed.logs_with_key());
    assert_eq!(report.logs + report.logs_without_key, 10_000);
    assert_eq!(report.stale_hashes, 0);
    let started = Instant::now();
    let one = open_codec(&db, K1).await.unwrap();
    eprintln!(
        "[{backend}] start-up check incl. key derivation: {:?}",
        started.elapsed()
    );
    assert_eq!(one.kdf_id(), report.kdf_id.as_deref());
    assert_readable(&db, &one, &seed).await;
    assert!(!staging_exists(&db).await);
    assert!(matches!(
        open_codec(&db, "").await,
        Err(EncryptionMismatch::KeyNotConfigured)
    ));
    assert!(matches!(
        open_codec(&db, K2).await,
        Err(EncryptionMismatch::KeyMismatch)
    ));
    // The pool's view: every key decrypted once at load, lookups by keyed hash.
    let repo = Repo::new(db.clone(), one.clone());
    let pool = repo.load_keys(None).await.unwrap();
    assert_eq!(pool.len(), 10_000);
    assert!(pool.iter().all(|k| seed.keys[&k.id] == k.secret.expose()));
    let some = seed
        .keys
        .values()
        .take(3)
        .map(|k| one.hash(k))
        .collect::<Vec<_>>();
    let gid = pool[0].group_id;
    assert_eq!(repo.existing_hashes(gid, &some).await.unwrap().len(), 3);

    let started = Instant::now();
    let report = migrate(&db, Some(K1), Some(K2)).await.unwrap();
    eprintln!("[{backend}] rotate: {:?}", started.elapsed());
    assert_eq!(report.keys, 10_000);
    let two = open_codec(&db, K2).await.unwrap();
    assert_ne!(two.kdf_id(), one.kdf_id(), "a rotation picks a new salt");
    assert_readable(&db, &two, &seed).await;
    assert!(matches!(
        open_codec(&db, K1).await,
        Err(EncryptionMismatch::KeyMismatch)
    ));

    let started = Instant::now();
    let report = migrate(&db, Some(K2), None).await.unwrap();
    eprintln!("[{backend}] disable: {:?}", started.elapsed());
    assert_eq!(report.keys, 10_000);
    assert!(report.kdf_id.is_none());
    let plain = open_codec(&db, "").await.unwrap();
    assert!(!plain.is_encrypting());
    assert_readable(&db, &plain, &seed).await;
    assert!(matches!(
        open_codec(&db, K2).await,
        Err(EncryptionMismatch::DataNotEncrypted)
    ));
    test_db.drop_db().await;
}

#[actix_rt::test]
async fn sqlite_enable_rotate_disable_round_trip() {
    round_trip(TestDb::sqlite()).await;
}

#[actix_rt::test]
async fn postgres_enable_rotate_disable_round_trip() {
    round_trip(TestDb::postgres().await).await;
}

#[actix_rt::test]
async fn mysql_enable_rotate_disable_round_trip() {
    round_trip(TestDb::mysql().await).await;
}

// ---- interrupted and refused runs change nothing ----------------------------------------------

async fn refusals_change_nothing(test_db: TestDb) {
    let db = Database::connect(&test_db.url, 4).await.unwrap();
    let seed = seed(&db, &KeyCodec::plaintext(), 1_200, 300).await;
    let plain = snapshot(&db).await;

    // A failing staging batch, then a failure inside the swap transaction after api_keys was
    // updated: both leave every value and the record as they were, and no staging table.
    for fault in [Fault::StagingBatch(2), Fault::SwapAfterKeys] {
        let mut options = MigrateOptions::new(None, Some(K1));
        options.batch_size = 500;
        options.fault = Some(fault);
        let err = migrate_with(&db, options).await.unwrap_err();
        assert!(matches!(err, MigrateError::Injected(_)), "{fault:?}: {err}");
        assert!(snapshot(&db).await == plain, "{fault:?} changed data");
        assert!(!staging_exists(&db).await, "{fault:?} left staging tables");
    }
    // --from on plain data: refused, saying the data is plain text.
    let err = migrate(&db, Some(K1), Some(K2)).await.unwrap_err();
    assert!(err.to_string().contains("plain text"), "{err}");
    assert!(snapshot(&db).await == plain);

    // A heartbeat writing every few milliseconds must not break the swap or the compaction
    // (SQLite has one writer at a time).
    let mut options = MigrateOptions::new(None, Some(K1));
    options.lock_timing.heartbeat = Duration::from_millis(5);
    migrate_with(&db, options).await.unwrap();
    let encrypted = snapshot(&db).await;
    assert!(encrypted != plain);

    let mut options = MigrateOptions::new(Some(K1), Some(K2));
    options.fault = Some(Fault::SwapAfterKeys);
    assert!(matches!(
        migrate_with(&db, options).await,
        Err(MigrateError::Injected(_))
    ));
    assert!(
        snapshot(&db).await == encrypted,
        "a failed rotation changed data"
    );

    // Wrong --from: refused, saying so; the --to key alone on encrypted data: refused too.
    let err = migrate(&db, Some(K3), Some(K2)).await.unwrap_err();
    assert!(
        matches!(&err, MigrateError::WrongState(m) if m.contains("--from is not the key")),
        "{err}"
    );
    let err = migrate(&db, None, Some(K2)).await.unwrap_err();
    assert!(err.to_string().contains("already encrypted"), "{err}");
    let err = migrate(&db, None, Some(K1)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("already encrypted with the --to key"),
        "{err}"
    );
    let err = migrate(&db, Some(K2), Some(K1)).await.unwrap_err();
    assert!(err.to_string().contains("done already"), "{err}");
    let err = migrate(&db, Some(K1), Some(K1)).await.unwrap_err();
    assert!(matches!(err, MigrateError::Usage(_)), "{err}");
    assert!(snapshot(&db).await == encrypted);

    // One corrupted value: the verify pass refuses before any write and names the row.
    let (keys, _, _) = &encrypted;
    let (victim, value, _) = keys[7].clone();
    let mut bytes = value.into_bytes();
    let at = bytes.len() - 5;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let corrupted = String::from_utf8(bytes).unwrap();
    set_key_value(&db, victim, &corrupted).await.unwrap();
    let before = snapshot(&db).await;
    let err = migrate(&db, Some(K1), Some(K2)).await.unwrap_err();
    match &err {
        MigrateError::Unreadable {
            table, count, ids, ..
        } => {
            assert_eq!((*table, *count), ("api_keys", 1));
            assert_eq!(*ids, victim.to_string());
        }
        other => panic!("expected Unreadable, got {other}"),
    }
    let mut dry = MigrateOptions::new(Some(K1), None);
    dry.dry_run = true;
    assert!(matches!(
        migrate_with(&db, dry).await,
        Err(MigrateError::Unreadable { .. })
    ));
    assert!(snapshot(&db).await == before);
    assert!(matches!(
        open_codec(&db, K1).await,
        Err(EncryptionMismatch::Inconsistent { unreadable: 1, .. })
    ));
    assert_eq!(seed.keys.len(), 1_200);
    test_db.drop_db().await;
}

#[actix_rt::test]
async fn sqlite_interrupted_or_refused_runs_change_nothing() {
    refusals_change_nothing(TestDb::sqlite()).await;
}

#[actix_rt::test]
async fn postgres_interrupted_or_refused_runs_change_nothing() {
    refusals_change_nothing(TestDb::postgres().await).await;
}

#[actix_rt::test]
async fn mysql_interrupted_or_refused_runs_change_nothing() {
    refusals_change_nothing(TestDb::mysql().await).await;
}

#[actix_rt::test]
async fn dry_run_reports_without_writing() {
    let test_db = TestDb::sqlite();
    let db = Database::connect(&test_db.url, 2).await.unwrap();
    let seed = seed(&db, &KeyCodec::plaintext(), 30, 100).await;
    let before = snapshot(&db).await;
    let mut options = MigrateOptions::new(None, Some(K1));
    options.dry_run = true;
    let report = migrate_with(&db, options).await.unwrap();
    assert!(report.dry_run);
    assert_eq!(report.keys, 30);
    assert_eq!(report.logs, seed.logs_with_key());
    assert_eq!(report.logs_without_key, 2);
    assert!(snapshot(&db).await == before);
}

// ---- the start-up check and the lock between servers and migrate-keys ------------------------

fn start_error(result: Result<gpt_load::app::RunningApp, StartError>) -> String {
    match result {
        Ok(_) => panic!("the server started"),
        Err(err) => err.to_string(),
    }
}

#[actix_rt::test]
async fn server_refuses_to_start_with_a_key_that_does_not_fit_the_data() {
    let mut t = TestServer::start(&["sk-up-aaaaaaaaaaaa"]).await;
    t.create_group(
        "g",
        &["sk-up-aaaaaaaaaaaa", "sk-up-bbbbbbbbbbbb"],
        json!({}),
    )
    .await;
    t.app.take().unwrap().stop().await;
    let dir = t.dir.path().to_path_buf();
    let start = |extra: &'static [(&'static str, &'static str)]| {
        gpt_load::app::start(test_config(&dir, extra), false)
    };

    let err = start_error(start(&[("ENCRYPTION_KEY", K1)]).await);
    assert!(
        err.contains("plain text") && err.contains("migrate-keys --to"),
        "{err}"
    );
    assert!(!err.contains(K1));

    // The refused start released its lock row, so migrate-keys runs right away.
    let db = Database::connect(&test_config(&dir, &[]).database, 2)
        .await
        .unwrap();
    migrate(&db, None, Some(K1)).await.unwrap();

    let err = start_error(start(&[]).await);
    assert!(
        err.contains("ENCRYPTION_KEY is not set") && err.contains("migrate-keys --from"),
        "{err}"
    );
    let err = start_error(start(&[("ENCRYPTION_KEY", K2)]).await);
    assert!(
        err.contains("does not match") && err.contains("--from <old key> --to"),
        "{err}"
    );
    assert!(!err.contains(K1) && !err.contains(K2));

    let app = start(&[("ENCRYPTION_KEY", K1)]).await.unwrap();
    t.base = format!("http://{}", app.addr);
    t.app = Some(app);
    let (status, body) = t.get("/api/keys?group_id=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut shown: Vec<&str> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_value"].as_str().unwrap())
        .collect();
    shown.sort();
    assert_eq!(shown, ["sk-up-aaaaaaaaaaaa", "sk-up-bbbbbbbbbbbb"]);
    let (status, chat) = t.chat("g", false).await;
    assert_eq!(status, StatusCode::OK, "{chat}");
    assert_eq!(t.mock.requests_for_key("sk-up-aaaaaaaaaaaa"), 1);
    t.stop().await;
}

#[actix_rt::test]
async fn nodes_starting_together_on_an_empty_database_agree_on_one_derivation() {
    let test_db = TestDb::sqlite();
    let db = Database::connect(&test_db.url, 4).await.unwrap();
    let (a, b) = futures_util::join!(open_codec(&db, K1), open_codec(&db, K1));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.is_encrypting());
    assert_eq!(a.kdf_id(), b.kdf_id());
    assert_eq!(a.hash("sk-x"), b.hash("sk-x"), "both nodes hash keys alike");
    let record = kdf_record(&db).await.unwrap().unwrap();
    assert_eq!(Some(record.kdf_id.as_str()), a.kdf_id());
    assert!(matches!(
        open_codec(&db, K2).await,
        Err(EncryptionMismatch::KeyMismatch)
    ));
    assert!(matches!(
        open_codec(&db, "").await,
        Err(EncryptionMismatch::KeyNotConfigured)
    ));
}

#[actix_rt::test]
async fn start_up_check_names_foreign_formats_and_missing_records() {
    let test_db = TestDb::sqlite();
    let db = Database::connect(&test_db.url, 2).await.unwrap();
    let seed = seed(&db, &KeyCodec::plaintext(), 5, 0).await;
    migrate(&db, None, Some(K1)).await.unwrap();
    let encrypted = snapshot(&db).await;
    // key_encryption lost (restored from another backup): neither setting starts.
    delete_kdf_record(&db).await.unwrap();
    for key in ["", K1] {
        let err = open_codec(&db, key).await.unwrap_err();
        assert!(
            matches!(
                err,
                EncryptionMismatch::RecordMissing {
                    encrypted: 5,
                    sampled: 5
                }
            ),
            "{err}"
        );
    }
    // Values in another tool's format (GPT-Load stores hex AES-GCM with HMAC hashes).
    for (id, _, _) in &encrypted.0 {
        set_key_value(&db, *id, &"ab".repeat(40)).await.unwrap();
    }
    for key in ["", K1] {
        let err = open_codec(&db, key).await.unwrap_err();
        assert!(err.to_string().contains("GPT-Load"), "{err}");
    }
    assert_eq!(seed.keys.len(), 5);
    test_db.drop_db().await;
}

#[actix_rt::test]
async fn migrate_keys_and_servers_keep_apart() {
    let t = TestServer::start(&[]).await;
    let url = test_config(t.dir.path(), &[]).database;
    let db = Database::connect(&url, 2).await.unwrap();
    let err = migrate(&db, None, Some(K1)).await.unwrap_err();
    assert!(matches!(err, MigrateError::Busy(_)), "{err}");
    assert!(
        err.to_string().contains("Stop every gpt-load server"),
        "{err}"
    );
    let mut dry = MigrateOptions::new(None, Some(K1));
    dry.dry_run = true;
    let report = migrate_with(&db, dry).await.unwrap();
    assert_eq!(
        report.live_holders.len(),
        1,
        "a dry run reports the live server"
    );
    let dir = t.dir.path().to_path_buf();
    let mut t = t;
    t.app.take().unwrap().stop().await;
    migrate(&db, None, Some(K1)).await.unwrap();

    // A fresh migrate-keys lock keeps a server from starting; a released one does not.
    let lock = InstanceLock::acquire(&db, LockKind::MigrateKeys, LockTiming::default())
        .await
        .unwrap();
    let config = test_config(&dir, &[("ENCRYPTION_KEY", K1)]);
    let err = start_error(gpt_load::app::start(config.clone(), false).await);
    assert!(
        err.contains("migrate-keys` run is using this database"),
        "{err}"
    );
    lock.release().await;
    let app = gpt_load::app::start(config, false).await.unwrap();
    app.stop().await;

    // A row whose heartbeat stopped long ago (a crashed process) does not block.
    insert_crashed_lock(&db).await.unwrap();
    migrate(&db, Some(K1), None).await.unwrap();
    drop(t);
}

#[actix_rt::test]
async fn lock_heartbeats_keep_the_row_fresh_and_release_removes_it() {
    let test_db = TestDb::sqlite();
    let db = Database::connect(&test_db.url, 2).await.unwrap();
    let timing = LockTiming {
        heartbeat: Duration::from_millis(200),
        stale_after: Duration::from_secs(30),
    };
    let lock = InstanceLock::acquire(&db, LockKind::Server, timing)
        .await
        .unwrap();
    let rows = || async { lock_rows(&db).await.unwrap() };
    // CURRENT_TIMESTAMP has one-second resolution on SQLite: a beat shows within a few seconds.
    assert!(
        wait_until(Duration::from_secs(5), || async {
            matches!(rows().await.as_slice(), [(start, beat)] if beat > start)
        })
        .await,
        "the heartbeat never advanced"
    );
    // Two servers may share a database.
    let second = InstanceLock::acquire(&db, LockKind::Server, timing)
        .await
        .unwrap();
    assert_eq!(rows().await.len(), 2);
    second.release().await;
    lock.release().await;
    assert!(rows().await.is_empty());
}

// ---- encryption on, end to end ---------------------------------------------------------------

#[actix_rt::test]
async fn proxied_requests_use_the_decrypted_key_and_admin_sees_plain_keys() {
    const KEY_A: &str = "sk-live-upstream-alpha-0001";
    const KEY_B: &str = "sk-live-upstream-bravo-0002";
    let t = TestServer::start_with(&[KEY_A, KEY_B], &[("ENCRYPTION_KEY", K1)]).await;
    let gid = t.create_group("enc", &[KEY_A, KEY_B], json!({})).await;
    for _ in 0..4 {
        let (status, body) = t.chat("enc", false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(t.mock.requests_for_key(KEY_A), 2);
    assert_eq!(t.mock.requests_for_key(KEY_B), 2);

    let repo = &t.app().state.repo;
    assert!(repo.codec.is_encrypting());
    let (stored, _, record) = snapshot(&repo.db).await;
    assert!(record.is_some());
    for (_, value, hash) in &stored {
        assert!(value.starts_with("v1$a2id.v19.m19456.t2.p1."), "{value}");
        assert!(!value.contains("sk-live"));
        assert_ne!(*hash, plain_hash(KEY_A));
        assert_ne!(*hash, plain_hash(KEY_B));
    }

    // The request-log writer stores the key the same way: encrypted, with the keyed hash.
    t.app().state.flush_logs().await;
    let (_, logs, _) = snapshot(&repo.db).await;
    assert_eq!(logs.len(), 4);
    for (_, value, hash) in &logs {
        assert!(is_encrypted_value(value), "{value}");
        let plain = repo.codec.decode(value).unwrap();
        assert!([KEY_A, KEY_B].contains(&plain.expose()));
        assert_eq!(*hash, repo.codec.hash(plain.expose()));
    }

    let (_, body) = t
        .get(&format!("/api/keys?group_id={gid}&key_value={KEY_B}"))
        .await;
    assert_eq!(body["data"]["pagination"]["total_items"], 1, "{body}");
    assert_eq!(body["data"]["items"][0]["key_value"], KEY_B);
    let (_, body) = t
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": format!("{KEY_A}\n{KEY_B}")}),
        )
        .await;
    assert_eq!(
        body["data"]["added_count"], 0,
        "dedupe by keyed hash: {body}"
    );

    let (status, body) = t.get("/api/dashboard/encryption-status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"],
        json!({"has_mismatch": false, "scenario_type": "", "message": "", "suggestion": ""})
    );
    // A foreign writer storing plain keys under the running server shows up as a mismatch.
    let foreign: Vec<String> = (0..9).map(|i| format!("sk-foreign-{i:04}")).collect();
    Repo::new(repo.db.clone(), KeyCodec::plaintext())
        .insert_keys(gid, &foreign)
        .await
        .unwrap();
    let (_, body) = t.get("/api/dashboard/encryption-status").await;
    assert_eq!(body["data"]["has_mismatch"], true, "{body}");
    assert_eq!(body["data"]["scenario_type"], "data_not_encrypted");
    assert!(body["data"]["suggestion"]
        .as_str()
        .unwrap()
        .contains("migrate-keys"));
    let res = t
        .client
        .get(t.url("/api/dashboard/encryption-status"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    t.stop().await;
}

// ---- no plaintext in the SQLite file ---------------------------------------------------------

/// Checkpoints the WAL into the main file and returns the bytes of every file of the database.
fn database_bytes(path: &std::path::Path) -> Vec<u8> {
    use diesel::connection::SimpleConnection;
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(path).unwrap();
    for suffix in ["-wal", "-journal", "-shm"] {
        let mut extra = path.as_os_str().to_owned();
        extra.push(suffix);
        if let Ok(more) = std::fs::read(&extra) {
            bytes.extend(more);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[actix_rt::test]
async fn no_plaintext_key_is_left_in_the_sqlite_file_after_enabling() {
    let keys: Vec<String> = (0..60)
        .map(|i| format!("sk-filescan-{i:03}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut t = TestServer::start(&key_refs).await;
    t.create_group("scan", &key_refs, json!({})).await;
    let db = t.app().state.repo.db.clone();
    let group_id = 1;
    // Request logs holding these keys, as a log writer stores them.
    let ts = now();
    let rows: Vec<_> = keys
        .iter()
        .map(|k| {
            (
                request_logs::id.eq(uuid::Uuid::new_v4().to_string()),
                request_logs::timestamp.eq(ts),
                request_logs::group_id.eq(group_id as i64),
                request_logs::key_value.eq(k.clone()),
                request_logs::key_hash.eq(plain_hash(k)),
                request_logs::is_success.eq(true),
                request_logs::status_code.eq(200),
                request_logs::duration.eq(1i64),
                request_logs::error_message.eq(""),
                request_logs::is_stream.eq(false),
                request_logs::request_body.eq(""),
            )
        })
        .collect();
    let inserted: Result<usize, DbError> =
        async { insert_batch!(&db, request_logs::table, rows) }.await;
    inserted.unwrap();
    t.app.take().unwrap().stop().await;
    drop(db);
    let path = t.dir.path().join("gpt-load.db");
    let bytes = database_bytes(&path);
    assert!(
        keys.iter().all(|k| contains(&bytes, k)),
        "the scan finds plain keys before encryption"
    );

    let db = Database::connect(&test_config(t.dir.path(), &[]).database, 2)
        .await
        .unwrap();
    migrate(&db, None, Some(K1)).await.unwrap();
    drop(db);
    let bytes = database_bytes(&path);
    let left: Vec<&String> = keys.iter().filter(|k| contains(&bytes, k)).collect();
    assert!(
        left.is_empty(),
        "plain keys left in the file: {}",
        left.len()
    );

    // Keys added and used while encryption is on never reach the file in plain text either.
    let app = gpt_load::app::start(test_config(t.dir.path(), &[("ENCRYPTION_KEY", K1)]), false)
        .await
        .unwrap();
    t.base = format!("http://{}", app.addr);
    t.app = Some(app);
    let fresh: Vec<String> = (0..20)
        .map(|i| format!("sk-filescan-new-{i:03}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    for k in &fresh {
        t.mock.add_key(k);
    }
    let (_, body) = t
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": group_id, "keys_text": fresh.join(",")}),
        )
        .await;
    assert_eq!(body["data"]["added_count"], 20, "{body}");
    for _ in 0..5 {
        let (status, body) = t.chat("scan", false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    t.app.take().unwrap().stop().await;
    let bytes = database_bytes(&path);
    let left = keys
        .iter()
        .chain(&fresh)
        .filter(|k| contains(&bytes, k))
        .count();
    assert_eq!(left, 0, "plain keys in the file after serving");
}

// ---- the real binary: logs, migrate-keys CLI, start-up refusal --------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Binary {
    child: std::process::Child,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

fn binary(dir: &std::path::Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Binary {
    let out = dir.join(format!("{name}.out"));
    let err = dir.join(format!("{name}.err"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_gpt-load"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("ENCRYPTION_KEY")
        .env_remove("RUST_LOG")
        .env("AUTH_KEY", AUTH)
        .env("HOST", "127.0.0.1")
        .env("DATABASE_DSN", dir.join("gpt-load.db"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    for (k, v) in env {
        command.env(k, v);
    }
    Binary {
        child: command.spawn().unwrap(),
        out,
        err,
    }
}

impl Binary {
    /// Waits for the process to exit (at most `deadline`); returns its code and all it printed.
    async fn finish(mut self, deadline: Duration) -> (Option<i32>, String) {
        let end = Instant::now() + deadline;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!("gpt-load did not exit within {deadline:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let text = format!(
            "{}{}",
            std::fs::read_to_string(&self.out).unwrap(),
            std::fs::read_to_string(&self.err).unwrap()
        );
        (status.code(), text)
    }

    fn terminate(&self) {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

async fn wait_healthy(client: &awc::Client, base: &str) {
    let url = format!("{base}/health");
    assert!(
        wait_until(Duration::from_secs(60), || async {
            client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await,
        "the binary never became healthy"
    );
}

#[actix_rt::test]
async fn the_binary_never_logs_keys_and_migrate_keys_works_from_the_command_line() {
    const KEY_A: &str = "sk-binary-upstream-alpha-7f3a";
    const KEY_B: &str = "sk-binary-upstream-bravo-9c1d";
    let dir = tempfile::tempdir().unwrap();
    let mock = MockUpstream::start(&[KEY_A, KEY_B]).await.unwrap();
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let port = free_port().to_string();
    let base = format!("http://127.0.0.1:{port}");
    let server = binary(
        dir.path(),
        "serve-1",
        &[],
        &[
            ("ENCRYPTION_KEY", K1),
            ("PORT", &port),
            ("LOG_LEVEL", "debug"),
        ],
    );
    wait_healthy(&client, &base).await;
    let admin = |method: &str, path: &str| {
        client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .insert_header(("Authorization", format!("Bearer {AUTH}")))
    };
    let mut res = admin("POST", "/api/groups")
        .send_json(&json!({
            "name": "bin",
            "channel_type": "openai",
            "test_model": "gpt-4o-mini",
            "upstreams": [{"url": mock.base_url(), "weight": 1}],
            "proxy_keys": PROXY_KEY,
        }))
        .await
        .unwrap();
    let group: Value = res.json().await.unwrap();
    let gid = group["data"]["id"].as_i64().unwrap();
    let mut res = admin("POST", "/api/keys/add-multiple")
        .send_json(&json!({"group_id": gid, "keys_text": format!("{KEY_A} {KEY_B}")}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.body().await);
    for _ in 0..2 {
        let mut res = client
            .post(format!("{base}/proxy/bin/v1/chat/completions"))
            .insert_header(("Authorization", format!("Bearer {PROXY_KEY}")))
            .send_json(
                &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{:?}", res.body().await);
    }
    assert_eq!(mock.requests_for_key(KEY_A), 1);
    assert_eq!(mock.requests_for_key(KEY_B), 1);
    server.terminate();
    let (code, output) = server.finish(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output.contains("Derived the key-encryption key"),
        "{output}"
    );
    for secret in [KEY_A, KEY_B, K1] {
        assert!(
            !output.contains(secret),
            "a log line holds a secret:\n{output}"
        );
    }

    let cli = |name: &str, args: &[&str]| binary(dir.path(), name, args, &[]);
    let (code, usage) = cli("usage", &["migrate-keys"])
        .finish(Duration::from_secs(30))
        .await;
    assert_eq!(code, Some(0));
    assert!(
        usage.contains("--from") && usage.contains("--dry-run"),
        "{usage}"
    );
    let (code, out) = cli("wrong", &["migrate-keys", "--from", K3, "--to", K2])
        .finish(Duration::from_secs(60))
        .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("--from is not the key"), "{out}");
    let (code, out) = cli(
        "dry",
        &["migrate-keys", "--from", K1, "--to", K2, "--dry-run"],
    )
    .finish(Duration::from_secs(60))
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Would re-encrypt keys under a new key: 2 keys"),
        "{out}"
    );
    let (code, out) = cli("rotate", &["migrate-keys", "--from", K1, "--to", K2])
        .finish(Duration::from_secs(60))
        .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Did re-encrypt keys under a new key: 2 keys"),
        "{out}"
    );
    assert!(out.contains("api_keys: 2/2"), "{out}");
    for secret in [KEY_A, KEY_B] {
        assert!(!out.contains(secret), "{out}");
    }

    let port = free_port().to_string();
    let refused = binary(
        dir.path(),
        "serve-old-key",
        &[],
        &[("ENCRYPTION_KEY", K1), ("PORT", &port)],
    );
    let (code, out) = refused.finish(Duration::from_secs(60)).await;
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("migrate-keys --from <old key> --to"), "{out}");
    assert!(!out.contains(K1) && !out.contains(K2), "{out}");

    let base = format!("http://127.0.0.1:{port}");
    let server = binary(
        dir.path(),
        "serve-2",
        &[],
        &[("ENCRYPTION_KEY", K2), ("PORT", &port)],
    );
    wait_healthy(&client, &base).await;
    let mut res = client
        .get(format!("{base}/api/keys?group_id={gid}"))
        .insert_header(("Authorization", format!("Bearer {AUTH}")))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let mut shown: Vec<&str> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_value"].as_str().unwrap())
        .collect();
    shown.sort();
    assert_eq!(shown, [KEY_A, KEY_B]);
    server.terminate();
    let (code, output) = server.finish(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "{output}");
    assert!(!output.contains(KEY_A) && !output.contains(K2), "{output}");
}
