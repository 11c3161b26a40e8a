//! Database access through diesel + diesel-async on SQLite, PostgreSQL and MySQL.
//!
//! The backend is chosen at run time from `DATABASE_DSN`. Queries are written once in diesel's DSL
//! and compiled for each backend by [`with_conn!`]; backend-specific SQL stays in the function
//! that needs it.

pub mod dsn;
pub mod instance_lock;
pub mod key_encryption;
pub mod log_sink;
pub mod models;
pub mod repo;
pub mod repo_groups;
pub mod repo_keys;
pub mod repo_logs;
pub mod repo_stats;
pub mod repo_subgroups;
pub mod repo_usage;
pub mod schema;
pub mod write_tx;

use std::time::Duration;

use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{
    AsyncConnection, AsyncMysqlConnection, AsyncPgConnection, SimpleAsyncConnection,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;

pub use dsn::DatabaseUrl;

/// SQLite behind diesel-async's sync-connection wrapper.
pub type SqliteConn = SyncConnectionWrapper<diesel::SqliteConnection>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");

/// Errors of the data layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not connect to the database: {0}")]
    Connect(String),
    #[error("database pool error: {0}")]
    Pool(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("a row with the same unique value already exists")]
    Duplicate,
    #[error("row not found")]
    NotFound,
    #[error("database error: {0}")]
    Query(diesel::result::Error),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Encode(#[from] crate::crypto::EncodeError),
}

impl From<diesel::result::Error> for DbError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match err {
            Error::NotFound => DbError::NotFound,
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => DbError::Duplicate,
            other => DbError::Query(other),
        }
    }
}

impl DbError {
    fn pool(err: impl std::fmt::Display) -> Self {
        DbError::Pool(err.to_string())
    }
}

/// A pooled database of one of the three backends.
#[derive(Clone)]
pub enum Database {
    Sqlite(Pool<SqliteConn>),
    Postgres(Pool<AsyncPgConnection>),
    Mysql(Pool<AsyncMysqlConnection>),
}

/// Runs `$body` with `$conn` bound to a pooled connection of whichever backend `$db` is. The body
/// is compiled once per backend, so it must use only diesel DSL that all three support.
#[macro_export]
macro_rules! with_conn {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite(pool) => {
                let mut guard = pool
                    .get()
                    .await
                    .map_err(|e| $crate::db::DbError::Pool(e.to_string()))?;
                let $conn = &mut *guard;
                $body
            }
            $crate::db::Database::Postgres(pool) => {
                let mut guard = pool
                    .get()
                    .await
                    .map_err(|e| $crate::db::DbError::Pool(e.to_string()))?;
                let $conn = &mut *guard;
                $body
            }
            $crate::db::Database::Mysql(pool) => {
                let mut guard = pool
                    .get()
                    .await
                    .map_err(|e| $crate::db::DbError::Pool(e.to_string()))?;
                let $conn = &mut *guard;
                $body
            }
        }
    };
}

/// Inserts many rows in one statement. SQLite's multi-row insert exists only on diesel's sync
/// connection, so that arm runs it on the wrapper's blocking thread.
#[macro_export]
macro_rules! insert_batch {
    ($db:expr, $table:expr, $rows:expr) => {{
        use diesel_async::RunQueryDsl as _;
        let rows = $rows;
        match $db {
            $crate::db::Database::Sqlite(pool) => {
                let mut conn = pool
                    .get()
                    .await
                    .map_err(|e| $crate::db::DbError::Pool(e.to_string()))?;
                conn.spawn_blocking(move |c| {
                    diesel::RunQueryDsl::execute(diesel::insert_into($table).values(&rows), c)
                })
                .await
                .map_err($crate::db::DbError::from)
            }
            $crate::db::Database::Postgres(pool) => {
                let mut conn = pool
                    .get()
                    .await
                    .map_err(|e| $crate::db::DbError::Pool(e.to_string()))?;
                diesel::insert_into($table)
                    .values(&rows)
                    .execute(&mut *conn)
                    .await
                    .map_err($crate::db::DbError::from)
            }
            $crate::db::Database::Mysql(pool) => {
                let mut conn = pool
                    .get()
                    .await
                    .map_err(|e| $crate::db::DbError::Pool(e.to_string()))?;
                diesel::insert_into($table)
                    .values(&rows)
                    .execute(&mut *conn)
                    .await
                    .map_err($crate::db::DbError::from)
            }
        }
    }};
}

const POOL_WAIT: Duration = Duration::from_secs(15);

/// A pool with explicit limits: deadpool waits forever by default when exhausted.
macro_rules! build_pool {
    ($manager:expr, $size:expr) => {
        Pool::builder($manager)
            .max_size($size.max(1))
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(DbError::pool)
    };
}

impl Database {
    /// Applies pending migrations, then opens a pool.
    pub async fn connect(url: &DatabaseUrl, pool_size: usize) -> Result<Self, DbError> {
        migrate(url).await?;
        let db = match url {
            DatabaseUrl::Sqlite(path) => {
                let mut config = ManagerConfig::<SqliteConn>::default();
                config.custom_setup = Box::new(|url| {
                    let url = url.to_string();
                    async move {
                        let mut conn = SqliteConn::establish(&url).await?;
                        conn.batch_execute(SQLITE_PRAGMAS)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    }
                    .boxed()
                });
                let manager = AsyncDieselConnectionManager::new_with_config(path.clone(), config);
                Database::Sqlite(build_pool!(manager, pool_size)?)
            }
            DatabaseUrl::Postgres(dsn) => Database::Postgres(build_pool!(
                AsyncDieselConnectionManager::new(dsn.clone()),
                pool_size
            )?),
            DatabaseUrl::Mysql(dsn) => Database::Mysql(build_pool!(
                AsyncDieselConnectionManager::new(dsn.clone()),
                pool_size
            )?),
        };
        db.ping().await?;
        Ok(db)
    }

    /// Name of the backend, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
            Database::Mysql(_) => "mysql",
        }
    }

    /// Checks that a connection can be taken and used.
    pub async fn ping(&self) -> Result<(), DbError> {
        with_conn!(self, conn => conn.batch_execute("SELECT 1").await.map_err(DbError::from))
    }
}

/// WAL lets readers proceed while the log batcher writes; the busy timeout makes writers queue
/// instead of failing with "database is locked". The timeout comes first: switching to WAL
/// takes a lock too, and fails at once without it while another process closes its connections.
const SQLITE_PRAGMAS: &str =
    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;";

/// Applies every pending migration of the backend. Runs on a blocking thread because diesel's
/// migration harness is synchronous.
pub async fn migrate(url: &DatabaseUrl) -> Result<usize, DbError> {
    let url = url.clone();
    tokio::task::spawn_blocking(move || -> Result<usize, DbError> {
        let applied = match &url {
            DatabaseUrl::Sqlite(path) => {
                if let Some(parent) = std::path::Path::new(path).parent() {
                    if !parent.as_os_str().is_empty() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            DbError::Connect(format!("cannot create {}: {e}", parent.display()))
                        })?;
                    }
                }
                let mut conn = diesel::SqliteConnection::establish(path)
                    .map_err(|e| DbError::Connect(e.to_string()))?;
                diesel::connection::SimpleConnection::batch_execute(&mut conn, SQLITE_PRAGMAS)?;
                run(&mut conn, SQLITE_MIGRATIONS)?
            }
            DatabaseUrl::Postgres(dsn) => {
                let mut conn =
                    <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(dsn)
                        .map_err(|e| DbError::Connect(e.to_string()))?;
                run(&mut conn, POSTGRES_MIGRATIONS)?
            }
            DatabaseUrl::Mysql(dsn) => {
                let mut conn =
                    <AsyncConnectionWrapper<AsyncMysqlConnection> as Connection>::establish(dsn)
                        .map_err(|e| DbError::Connect(e.to_string()))?;
                run(&mut conn, MYSQL_MIGRATIONS)?
            }
        };
        Ok(applied)
    })
    .await
    .map_err(|e| DbError::Migration(e.to_string()))?
}

fn run<C>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<usize, DbError>
where
    C: MigrationHarness<C::Backend> + Connection,
{
    let applied = conn
        .run_pending_migrations(migrations)
        .map_err(|e| DbError::Migration(e.to_string()))?;
    if !applied.is_empty() {
        tracing::info!(count = applied.len(), "Applied database migrations.");
    }
    Ok(applied.len())
}
