//! The two tables that hold key values (`api_keys`, `request_logs`), each with its staging table,
//! behind one trait so every pass of the migration is written once.

use diesel::prelude::*;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

use crate::db::compat::TextOrEmpty;
use crate::db::schema::{api_keys, request_logs};
use crate::db::{Database, DbError};
use crate::{insert_batch, with_conn};

diesel::table! {
    /// New values for `api_keys`, filled batch by batch, swapped in by one UPDATE.
    migrate_keys_stage_keys (id) {
        id -> BigInt,
        key_value -> Text,
        key_hash -> Text,
    }
}

diesel::table! {
    /// New values for `request_logs`.
    migrate_keys_stage_logs (id) {
        id -> Text,
        key_value -> Text,
        key_hash -> Text,
    }
}

/// One stored key value: row id, stored value, stored hash.
pub type Row<Id> = (Id, String, String);

/// A table whose `key_value` / `key_hash` columns the migration rewrites.
pub trait KeyTable {
    /// Row id type (`api_keys` counts, `request_logs` uses UUID strings).
    type Id: Clone + Ord + std::hash::Hash + std::fmt::Display + Send + Sync + 'static;
    /// Table name, for messages and SQL.
    const NAME: &'static str;
    /// Its staging table.
    const STAGE: &'static str;
    /// The staging table's id column type.
    const STAGE_ID_TYPE: &'static str;

    /// How many rows the live table has.
    fn count(db: &Database) -> impl std::future::Future<Output = Result<u64, DbError>> + Send;
    /// Rows after `after` in id order.
    fn batch(
        db: &Database,
        after: Option<&Self::Id>,
        limit: i64,
    ) -> impl std::future::Future<Output = Result<Vec<Row<Self::Id>>, DbError>> + Send;
    /// Rows with these ids.
    fn by_ids(
        db: &Database,
        ids: &[Self::Id],
    ) -> impl std::future::Future<Output = Result<Vec<Row<Self::Id>>, DbError>> + Send;
    /// Staged rows after `after` in id order.
    fn staged_batch(
        db: &Database,
        after: Option<&Self::Id>,
        limit: i64,
    ) -> impl std::future::Future<Output = Result<Vec<Row<Self::Id>>, DbError>> + Send;
    /// Writes rows into the staging table.
    fn stage(
        db: &Database,
        rows: Vec<Row<Self::Id>>,
    ) -> impl std::future::Future<Output = Result<usize, DbError>> + Send;
}

/// `api_keys`.
pub struct Keys;
/// `request_logs`.
pub struct Logs;

impl KeyTable for Keys {
    type Id = i64;
    const NAME: &'static str = "api_keys";
    const STAGE: &'static str = "migrate_keys_stage_keys";
    const STAGE_ID_TYPE: &'static str = "BIGINT";

    async fn count(db: &Database) -> Result<u64, DbError> {
        let n: i64 = with_conn!(db, conn => api_keys::table.count().get_result(conn).await?);
        Ok(n.max(0) as u64)
    }

    async fn batch(
        db: &Database,
        after: Option<&i64>,
        limit: i64,
    ) -> Result<Vec<Row<i64>>, DbError> {
        let after = after.copied().unwrap_or(i64::MIN);
        let rows: Vec<(i64, TextOrEmpty, TextOrEmpty)> = with_conn!(db, conn => {
            api_keys::table
                .filter(api_keys::id.gt(after))
                .select((api_keys::id, api_keys::key_value, api_keys::key_hash))
                .order(api_keys::id.asc())
                .limit(limit)
                .load(conn)
                .await?
        });
        Ok(nullable_rows(rows))
    }

    async fn by_ids(db: &Database, ids: &[i64]) -> Result<Vec<Row<i64>>, DbError> {
        let rows: Vec<(i64, TextOrEmpty, TextOrEmpty)> = with_conn!(db, conn => {
            api_keys::table
                .filter(api_keys::id.eq_any(ids))
                .select((api_keys::id, api_keys::key_value, api_keys::key_hash))
                .load(conn)
                .await?
        });
        Ok(nullable_rows(rows))
    }

    async fn staged_batch(
        db: &Database,
        after: Option<&i64>,
        limit: i64,
    ) -> Result<Vec<Row<i64>>, DbError> {
        use migrate_keys_stage_keys as s;
        let after = after.copied().unwrap_or(i64::MIN);
        Ok(with_conn!(db, conn => {
            s::table
                .filter(s::id.gt(after))
                .select((s::id, s::key_value, s::key_hash))
                .order(s::id.asc())
                .limit(limit)
                .load(conn)
                .await?
        }))
    }

    async fn stage(db: &Database, rows: Vec<Row<i64>>) -> Result<usize, DbError> {
        use migrate_keys_stage_keys as s;
        let values: Vec<_> = rows
            .into_iter()
            .map(|(id, value, hash)| (s::id.eq(id), s::key_value.eq(value), s::key_hash.eq(hash)))
            .collect();
        insert_batch!(db, s::table, values)
    }
}

impl KeyTable for Logs {
    type Id = String;
    const NAME: &'static str = "request_logs";
    const STAGE: &'static str = "migrate_keys_stage_logs";
    const STAGE_ID_TYPE: &'static str = "VARCHAR(36)";

    async fn count(db: &Database) -> Result<u64, DbError> {
        let n: i64 = with_conn!(db, conn => request_logs::table.count().get_result(conn).await?);
        Ok(n.max(0) as u64)
    }

    async fn batch(
        db: &Database,
        after: Option<&String>,
        limit: i64,
    ) -> Result<Vec<Row<String>>, DbError> {
        let after = after.cloned();
        let rows: Vec<(String, TextOrEmpty, TextOrEmpty)> = with_conn!(db, conn => {
            let mut query = request_logs::table
                .select((request_logs::id, request_logs::key_value, request_logs::key_hash))
                .order(request_logs::id.asc())
                .limit(limit)
                .into_boxed();
            if let Some(after) = &after {
                query = query.filter(request_logs::id.gt(after.clone()));
            }
            query.load(conn).await?
        });
        Ok(nullable_rows(rows))
    }

    async fn by_ids(db: &Database, ids: &[String]) -> Result<Vec<Row<String>>, DbError> {
        let rows: Vec<(String, TextOrEmpty, TextOrEmpty)> = with_conn!(db, conn => {
            request_logs::table
                .filter(request_logs::id.eq_any(ids))
                .select((request_logs::id, request_logs::key_value, request_logs::key_hash))
                .load(conn)
                .await?
        });
        Ok(nullable_rows(rows))
    }

    async fn staged_batch(
        db: &Database,
        after: Option<&String>,
        limit: i64,
    ) -> Result<Vec<Row<String>>, DbError> {
        use migrate_keys_stage_logs as s;
        let after = after.cloned();
        Ok(with_conn!(db, conn => {
            let mut query = s::table
                .select((s::id, s::key_value, s::key_hash))
                .order(s::id.asc())
                .limit(limit)
                .into_boxed();
            if let Some(after) = &after {
                query = query.filter(s::id.gt(after.clone()));
            }
            query.load(conn).await?
        }))
    }

    async fn stage(db: &Database, rows: Vec<Row<String>>) -> Result<usize, DbError> {
        use migrate_keys_stage_logs as s;
        let values: Vec<_> = rows
            .into_iter()
            .map(|(id, value, hash)| (s::id.eq(id), s::key_value.eq(value), s::key_hash.eq(hash)))
            .collect();
        insert_batch!(db, s::table, values)
    }
}

/// Drops (if left over from an interrupted run) and creates both staging tables. MySQL gets the
/// live tables' binary collation, or joining on the text ids would mix collations.
pub async fn create_staging(db: &Database) -> Result<(), DbError> {
    let suffix = match db {
        Database::Mysql(_) => " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        _ => "",
    };
    drop_staging(db).await?;
    for (stage, id_type) in [
        (Keys::STAGE, Keys::STAGE_ID_TYPE),
        (Logs::STAGE, Logs::STAGE_ID_TYPE),
    ] {
        let sql = format!(
            "CREATE TABLE {stage} (id {id_type} NOT NULL PRIMARY KEY, key_value TEXT NOT NULL, key_hash VARCHAR(128) NOT NULL){suffix}"
        );
        with_conn!(db, conn => conn.batch_execute(&sql).await.map_err(DbError::from)?);
    }
    Ok(())
}

/// Drops both staging tables if present.
pub async fn drop_staging(db: &Database) -> Result<(), DbError> {
    for stage in [Keys::STAGE, Logs::STAGE] {
        let sql = format!("DROP TABLE IF EXISTS {stage}");
        with_conn!(db, conn => conn.batch_execute(&sql).await.map_err(DbError::from)?);
    }
    Ok(())
}

/// The UPDATE that copies staged values into the live table, in the backend's dialect.
pub fn swap_sql(db: &Database, table: &str, stage: &str) -> String {
    match db {
        Database::Mysql(_) => format!(
            "UPDATE {table} AS t JOIN {stage} AS s ON t.id = s.id SET t.key_value = s.key_value, t.key_hash = s.key_hash"
        ),
        // PostgreSQL and SQLite (3.33+) share UPDATE … FROM.
        _ => format!(
            "UPDATE {table} SET key_value = s.key_value, key_hash = s.key_hash FROM {stage} AS s WHERE {table}.id = s.id"
        ),
    }
}

/// Rewrites the live tables' files so replaced values do not linger in free pages: `VACUUM` on
/// SQLite (then a WAL checkpoint that truncates the log), `VACUUM FULL` on PostgreSQL, a table
/// rebuild on MySQL.
pub async fn compact(db: &Database) -> Result<(), DbError> {
    let statements: &[&str] = match db {
        Database::Sqlite(_) => &["VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"],
        Database::Postgres(_) => &["VACUUM FULL api_keys, request_logs"],
        Database::Mysql(_) => &[
            "ALTER TABLE api_keys ENGINE=InnoDB",
            "ALTER TABLE request_logs ENGINE=InnoDB",
        ],
    };
    for sql in statements {
        with_conn!(db, conn => conn.batch_execute(sql).await.map_err(DbError::from)?);
    }
    Ok(())
}

/// Rows whose value or hash GPT-Load left NULL (logs older than its key hashes) read as empty.
fn nullable_rows<T>(rows: Vec<(T, TextOrEmpty, TextOrEmpty)>) -> Vec<Row<T>> {
    rows.into_iter()
        .map(|(id, value, hash)| (id, value.0, hash.0))
        .collect()
}
