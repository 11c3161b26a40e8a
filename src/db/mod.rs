//! Database access through diesel + diesel-async on SQLite, PostgreSQL and MySQL.
//!
//! The backend is chosen at run time from `DATABASE_DSN`. Queries are written once in diesel's DSL
//! and compiled for each backend by [`with_conn!`]; backend-specific SQL stays in the function
//! that needs it.

pub mod adopt;
pub mod compat;
pub mod dsn;
pub mod instance_lock;
pub mod key_encryption;
pub mod log_row;
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
    /// No working connection within `DB_TIMEOUT_MS`, the server refused or dropped the
    /// connection, or (SQLite) another process held the write lock that long.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("the database schema is not one this server can use: {0}")]
    ForeignSchema(String),
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
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                DbError::Unavailable(info.message().to_string())
            }
            // SQLite's SQLITE_BUSY after the busy timeout: diesel gives it no kind of its own,
            // only SQLite's fixed message.
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message() == SQLITE_BUSY_MESSAGE =>
            {
                DbError::Unavailable(info.message().to_string())
            }
            other => DbError::Query(other),
        }
    }
}

/// What SQLite reports when the write lock stayed taken past the busy timeout.
const SQLITE_BUSY_MESSAGE: &str = "database is locked";

impl DbError {
    /// Whether the database itself is out of reach (as opposed to a bad query or data).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::Unavailable(_) | DbError::Pool(_) | DbError::Connect(_)
        )
    }
}

/// The port's view of a database failure: its kind survives, so the layers above still tell an
/// unavailable database (503, retry) from a conflict or a broken query.
impl From<DbError> for gpt_load_actors::ports::PortError {
    fn from(err: DbError) -> Self {
        use gpt_load_actors::ports::PortError;
        match err {
            DbError::Duplicate => PortError::Conflict(err.to_string()),
            DbError::NotFound => PortError::NotFound(err.to_string()),
            other if other.is_unavailable() => PortError::Unavailable(other.to_string()),
            other => PortError::Other(other.to_string()),
        }
    }
}

impl DbError {
    fn pool(err: impl std::fmt::Display) -> Self {
        DbError::Pool(err.to_string())
    }
}

/// Takes a connection from `pool`, all of it (waiting for a free slot, checking an idle
/// connection, opening a new one) bounded by the pool's wait timeout (`DB_TIMEOUT_MS`): a hung or
/// unreachable database fails here, fast, instead of after deadpool's per-step timeouts added up.
pub async fn checkout<C>(
    pool: &Pool<C>,
) -> Result<diesel_async::pooled_connection::deadpool::Object<C>, DbError>
where
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager<Type = C>,
    <AsyncDieselConnectionManager<C> as deadpool::managed::Manager>::Error: std::fmt::Display,
{
    let limit = pool.timeouts().wait.unwrap_or(DEFAULT_TIMEOUT);
    match tokio::time::timeout(limit, pool.get()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(err)) => Err(DbError::Unavailable(err.to_string())),
        Err(_) => Err(DbError::Unavailable(format!(
            "no working connection within {} ms",
            limit.as_millis()
        ))),
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
                let mut guard = $crate::db::checkout(pool).await?;
                let $conn = &mut *guard;
                $body
            }
            $crate::db::Database::Postgres(pool) => {
                let mut guard = $crate::db::checkout(pool).await?;
                let $conn = &mut *guard;
                $body
            }
            $crate::db::Database::Mysql(pool) => {
                let mut guard = $crate::db::checkout(pool).await?;
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
                let mut conn = $crate::db::checkout(pool).await?;
                conn.spawn_blocking(move |c| {
                    diesel::RunQueryDsl::execute(diesel::insert_into($table).values(&rows), c)
                })
                .await
                .map_err($crate::db::DbError::from)
            }
            $crate::db::Database::Postgres(pool) => {
                let mut conn = $crate::db::checkout(pool).await?;
                diesel::insert_into($table)
                    .values(&rows)
                    .execute(&mut *conn)
                    .await
                    .map_err($crate::db::DbError::from)
            }
            $crate::db::Database::Mysql(pool) => {
                let mut conn = $crate::db::checkout(pool).await?;
                diesel::insert_into($table)
                    .values(&rows)
                    .execute(&mut *conn)
                    .await
                    .map_err($crate::db::DbError::from)
            }
        }
    }};
}

/// `DB_TIMEOUT_MS` by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// A pool with explicit limits: deadpool waits forever by default when exhausted. The wait
/// timeout doubles as the bound of a whole [`checkout`].
macro_rules! build_pool {
    ($manager:expr, $size:expr, $timeout:expr) => {
        Pool::builder($manager)
            .max_size($size.max(1))
            .wait_timeout(Some($timeout))
            .create_timeout(Some($timeout))
            .recycle_timeout(Some($timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(DbError::pool)
    };
}

impl Database {
    /// Applies pending migrations, then opens a pool with the default [`DEFAULT_TIMEOUT`].
    pub async fn connect(url: &DatabaseUrl, pool_size: usize) -> Result<Self, DbError> {
        Self::connect_with_timeout(url, pool_size, DEFAULT_TIMEOUT).await
    }

    /// Applies pending migrations, then opens a pool whose calls fail as
    /// [`DbError::Unavailable`] when they get no working connection within `timeout`.
    pub async fn connect_with_timeout(
        url: &DatabaseUrl,
        pool_size: usize,
        timeout: Duration,
    ) -> Result<Self, DbError> {
        migrate(url).await?;
        // Connections are opened on the runtime that builds the pool, which outlives the actix
        // workers: a SQLite connection runs its blocking calls on the runtime it was opened on
        // and a PostgreSQL one keeps its driver task there, so one opened on a worker (by an
        // admin call) would die with that worker, and the last log flush of a graceful stop,
        // which runs as the workers stop, would fail ("task was cancelled").
        let home = tokio::runtime::Handle::current();
        let db = match url {
            DatabaseUrl::Sqlite(path) => {
                let pragmas = sqlite_pragmas(timeout);
                let config = opened_on(home, move |url| {
                    let pragmas = pragmas.clone();
                    async move {
                        let mut conn = SqliteConn::establish(&url).await?;
                        conn.batch_execute(&pragmas)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    }
                });
                let manager = AsyncDieselConnectionManager::new_with_config(path.clone(), config);
                Database::Sqlite(build_pool!(manager, pool_size, timeout)?)
            }
            DatabaseUrl::Postgres(dsn) => {
                let config = opened_on(home, |url| async move {
                    AsyncPgConnection::establish(&url).await
                });
                let manager = AsyncDieselConnectionManager::new_with_config(dsn.clone(), config);
                Database::Postgres(build_pool!(manager, pool_size, timeout)?)
            }
            DatabaseUrl::Mysql(dsn) => {
                let config = opened_on(home, |url| async move {
                    AsyncMysqlConnection::establish(&url).await
                });
                let manager = AsyncDieselConnectionManager::new_with_config(dsn.clone(), config);
                Database::Mysql(build_pool!(manager, pool_size, timeout)?)
            }
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
/// instead of failing with "database is locked" (until `DB_TIMEOUT_MS`: then the database counts
/// as unavailable). The timeout comes first: switching to WAL takes a lock too, and fails at once
/// without it while another process closes its connections.
///
/// `temp_store = MEMORY`: a multi-row insert whose triggers and upserts may abort midway keeps a
/// statement journal, by default in a temp file. The request-log writer's batches made it write
/// ~55 small pages per logged request there (strace, bench/README.md), more than the database
/// itself; in memory those journals cost nothing to the disk.
fn sqlite_pragmas(busy: Duration) -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY;",
        busy.as_millis()
    )
}

/// Migrations may wait longer for the lock than a request would: they run once, at start.
const MIGRATION_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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
                diesel::connection::SimpleConnection::batch_execute(
                    &mut conn,
                    &sqlite_pragmas(MIGRATION_BUSY_TIMEOUT),
                )?;
                adopt::prepare(&mut conn)?;
                run(&mut conn, SQLITE_MIGRATIONS)?
            }
            DatabaseUrl::Postgres(dsn) => {
                let mut conn =
                    <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(dsn)
                        .map_err(|e| DbError::Connect(e.to_string()))?;
                adopt::prepare(&mut conn)?;
                run(&mut conn, POSTGRES_MIGRATIONS)?
            }
            DatabaseUrl::Mysql(dsn) => {
                let mut conn =
                    <AsyncConnectionWrapper<AsyncMysqlConnection> as Connection>::establish(dsn)
                        .map_err(|e| DbError::Connect(e.to_string()))?;
                adopt::prepare(&mut conn)?;
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

/// A pool configuration whose connections are opened by `open` on the `home` runtime, whatever
/// task asks the pool for one.
fn opened_on<C, F, Fut>(home: tokio::runtime::Handle, open: F) -> ManagerConfig<C>
where
    C: diesel_async::AsyncConnection + Send + 'static,
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = diesel::ConnectionResult<C>> + Send + 'static,
{
    let mut config = ManagerConfig::<C>::default();
    config.custom_setup = Box::new(move |url| {
        let opened = home.spawn(open(url.to_string()));
        async move {
            opened
                .await
                .unwrap_or_else(|err| Err(diesel::ConnectionError::BadConnection(err.to_string())))
        }
        .boxed()
    });
    config
}
