//! Adopting a GPT-Load 1.4.x database in place.
//!
//! Our first migration creates the same six tables GPT-Load's GORM models auto-migrate, so a
//! database GPT-Load used holds them already and has no record of our migrations: running the
//! migrations would fail on `CREATE TABLE`. Before migrating, [`prepare`] looks at what is there.
//! GPT-Load's schema (every column our code reads, with a compatible type, and the unique keys it
//! relies on) is adopted: the missing indexes of our first migration are created and that
//! migration is recorded as applied, so the later ones run as on any database of ours. Nothing
//! of GPT-Load's is dropped or rewritten here, so GPT-Load can still open the database. Any other
//! schema is refused with the table and column that did not match.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use diesel::sqlite::SqliteConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncMysqlConnection, AsyncPgConnection};

use super::DbError;

/// The version diesel records for `…_init`, the migration that creates the six tables.
const INIT_VERSION: &str = "20261126000001";

/// diesel's own bookkeeping table, created the way its migration harness creates it.
const MIGRATIONS_TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (\
    version VARCHAR(50) PRIMARY KEY NOT NULL, \
    run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)";

/// What a column must hold for our queries, whatever its exact declared type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Int,
    Text,
    Bool,
    Time,
}

impl Family {
    fn describe(self) -> &'static str {
        match self {
            Family::Int => "an integer",
            Family::Text => "a text or JSON",
            Family::Bool => "a boolean",
            Family::Time => "a date-time",
        }
    }
}

use Family::{Bool, Int, Text as Txt, Time};

/// The columns our code reads and writes, table by table (our first migration's columns).
const TABLES: &[(&str, &[(&str, Family)])] = &[
    (
        "system_settings",
        &[
            ("id", Int),
            ("setting_key", Txt),
            ("setting_value", Txt),
            ("description", Txt),
            ("created_at", Time),
            ("updated_at", Time),
        ],
    ),
    (
        "groups",
        &[
            ("id", Int),
            ("name", Txt),
            ("display_name", Txt),
            ("proxy_keys", Txt),
            ("description", Txt),
            ("group_type", Txt),
            ("upstreams", Txt),
            ("validation_endpoint", Txt),
            ("channel_type", Txt),
            ("sort", Int),
            ("test_model", Txt),
            ("param_overrides", Txt),
            ("config", Txt),
            ("header_rules", Txt),
            ("model_redirect_rules", Txt),
            ("model_redirect_strict", Bool),
            ("last_validated_at", Time),
            ("created_at", Time),
            ("updated_at", Time),
        ],
    ),
    (
        "group_sub_groups",
        &[
            ("id", Int),
            ("group_id", Int),
            ("sub_group_id", Int),
            ("weight", Int),
            ("created_at", Time),
            ("updated_at", Time),
        ],
    ),
    (
        "api_keys",
        &[
            ("id", Int),
            ("key_value", Txt),
            ("key_hash", Txt),
            ("group_id", Int),
            ("status", Txt),
            ("notes", Txt),
            ("request_count", Int),
            ("failure_count", Int),
            ("last_used_at", Time),
            ("created_at", Time),
            ("updated_at", Time),
        ],
    ),
    (
        "request_logs",
        &[
            ("id", Txt),
            ("timestamp", Time),
            ("group_id", Int),
            ("group_name", Txt),
            ("parent_group_id", Int),
            ("parent_group_name", Txt),
            ("key_value", Txt),
            ("key_hash", Txt),
            ("model", Txt),
            ("is_success", Bool),
            ("source_ip", Txt),
            ("status_code", Int),
            ("request_path", Txt),
            ("duration", Int),
            ("error_message", Txt),
            ("user_agent", Txt),
            ("request_type", Txt),
            ("upstream_addr", Txt),
            ("is_stream", Bool),
            ("request_body", Txt),
        ],
    ),
    (
        "group_hourly_stats",
        &[
            ("id", Int),
            ("time", Time),
            ("group_id", Int),
            ("success_count", Int),
            ("failure_count", Int),
            ("created_at", Time),
            ("updated_at", Time),
        ],
    ),
];

/// Column sets that must be unique: duplicate names and upserts depend on them.
const UNIQUE_KEYS: &[(&str, &[&str])] = &[
    ("system_settings", &["setting_key"]),
    ("groups", &["name"]),
    ("group_sub_groups", &["group_id", "sub_group_id"]),
    ("group_hourly_stats", &["time", "group_id"]),
];

/// The plain indexes of our first migration: created when missing, so the later migrations
/// (which replace some of them) find what they expect.
const INIT_INDEXES: &[(&str, &str, &[&str])] = &[
    (
        "idx_group_sub_groups_sub",
        "group_sub_groups",
        &["sub_group_id"],
    ),
    ("idx_api_keys_group_id", "api_keys", &["group_id"]),
    ("idx_api_keys_key_hash", "api_keys", &["key_hash"]),
    ("idx_api_keys_status", "api_keys", &["status"]),
    (
        "idx_api_keys_group_last_used_id",
        "api_keys",
        &["group_id", "last_used_at", "id"],
    ),
    (
        "idx_api_keys_group_hash",
        "api_keys",
        &["group_id", "key_hash"],
    ),
    ("idx_request_logs_timestamp", "request_logs", &["timestamp"]),
    ("idx_request_logs_group_id", "request_logs", &["group_id"]),
    (
        "idx_request_logs_group_name",
        "request_logs",
        &["group_name"],
    ),
    (
        "idx_request_logs_parent_group_id",
        "request_logs",
        &["parent_group_id"],
    ),
    (
        "idx_request_logs_parent_group_name",
        "request_logs",
        &["parent_group_name"],
    ),
    ("idx_request_logs_key_hash", "request_logs", &["key_hash"]),
    ("idx_request_logs_model", "request_logs", &["model"]),
    (
        "idx_request_logs_request_type",
        "request_logs",
        &["request_type"],
    ),
];

/// One column as the database describes it.
#[derive(Debug, QueryableByName)]
pub(crate) struct ColumnInfo {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    ty: String,
    #[diesel(sql_type = Integer)]
    not_null: i32,
    #[diesel(sql_type = Integer)]
    has_default: i32,
}

/// One column of one index.
#[derive(Debug, QueryableByName)]
pub(crate) struct IndexColumn {
    #[diesel(sql_type = Text)]
    idx: String,
    #[diesel(sql_type = Text)]
    col: String,
    #[diesel(sql_type = Integer)]
    is_unique: i32,
}

#[derive(Debug, QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// What the database holds before migrating.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// Our migrations ran here before, or nothing is here yet: migrate as usual.
    OursOrEmpty,
    /// GPT-Load 1.4.x's schema, adopted just now.
    AdoptedGptLoad,
}

/// How each backend describes its tables.
pub(crate) trait Catalog: SimpleConnection {
    fn table_exists(&mut self, table: &str) -> QueryResult<bool>;
    fn columns(&mut self, table: &str) -> QueryResult<Vec<ColumnInfo>>;
    fn index_columns(&mut self, table: &str) -> QueryResult<Vec<IndexColumn>>;
    /// Whether `sql`, a `SELECT COUNT(*) AS n …`, counts any row.
    fn any_row(&mut self, sql: String) -> QueryResult<bool>;
    fn family(ty: &str) -> Option<Family>;

    /// Whether our first migration is recorded (the same query on every backend).
    fn init_recorded(&mut self) -> QueryResult<bool> {
        if !self.table_exists("__diesel_schema_migrations")? {
            return Ok(false);
        }
        self.any_row(format!(
            "SELECT COUNT(*) AS n FROM __diesel_schema_migrations WHERE version = '{INIT_VERSION}'"
        ))
    }
    fn quote(name: &str) -> String;
}

fn count<C: LoadConnection>(conn: &mut C, sql: String) -> QueryResult<bool>
where
    diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'static, C, Count>,
{
    let rows: Vec<Count> = diesel::RunQueryDsl::load(diesel::sql_query(sql), conn)?;
    Ok(rows.first().is_some_and(|c| c.n > 0))
}

use diesel::connection::LoadConnection;

impl Catalog for SqliteConnection {
    fn table_exists(&mut self, table: &str) -> QueryResult<bool> {
        count(
            self,
            format!(
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
            ),
        )
    }

    fn columns(&mut self, table: &str) -> QueryResult<Vec<ColumnInfo>> {
        diesel::RunQueryDsl::load(
            diesel::sql_query(format!(
                "SELECT name, type AS ty, \"notnull\" AS not_null, \
                 CASE WHEN dflt_value IS NOT NULL OR pk > 0 THEN 1 ELSE 0 END AS has_default \
                 FROM pragma_table_info('{table}')"
            )),
            self,
        )
    }

    fn index_columns(&mut self, table: &str) -> QueryResult<Vec<IndexColumn>> {
        diesel::RunQueryDsl::load(
            diesel::sql_query(format!(
                "SELECT il.name AS idx, ii.name AS col, il.\"unique\" AS is_unique \
                 FROM pragma_index_list('{table}') il JOIN pragma_index_info(il.name) ii"
            )),
            self,
        )
    }

    fn any_row(&mut self, sql: String) -> QueryResult<bool> {
        count(self, sql)
    }

    fn family(ty: &str) -> Option<Family> {
        let ty = ty.to_ascii_uppercase();
        if ty.contains("BOOL") || ty == "NUMERIC" {
            Some(Bool)
        } else if ty.contains("INT") {
            Some(Int)
        } else if ["CHAR", "TEXT", "CLOB", "JSON"]
            .iter()
            .any(|t| ty.contains(t))
        {
            Some(Txt)
        } else if ty.contains("DATE") || ty.contains("TIME") {
            Some(Time)
        } else {
            None
        }
    }

    fn quote(name: &str) -> String {
        format!("\"{name}\"")
    }
}

impl Catalog for AsyncConnectionWrapper<AsyncPgConnection> {
    fn table_exists(&mut self, table: &str) -> QueryResult<bool> {
        count(
            self,
            format!(
                "SELECT COUNT(*) AS n FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '{table}'"
            ),
        )
    }

    fn columns(&mut self, table: &str) -> QueryResult<Vec<ColumnInfo>> {
        diesel::RunQueryDsl::load(
            diesel::sql_query(format!(
                "SELECT column_name::text AS name, data_type::text AS ty, \
                 CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END AS not_null, \
                 CASE WHEN column_default IS NOT NULL THEN 1 ELSE 0 END AS has_default \
                 FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}'"
            )),
            self,
        )
    }

    fn index_columns(&mut self, table: &str) -> QueryResult<Vec<IndexColumn>> {
        diesel::RunQueryDsl::load(
            diesel::sql_query(format!(
                "SELECT i.relname::text AS idx, a.attname::text AS col, \
                 CASE WHEN x.indisunique THEN 1 ELSE 0 END AS is_unique \
                 FROM pg_index x \
                 JOIN pg_class t ON t.oid = x.indrelid \
                 JOIN pg_class i ON i.oid = x.indexrelid \
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(x.indkey) \
                 WHERE t.relname = '{table}' AND t.relnamespace = current_schema()::regnamespace"
            )),
            self,
        )
    }

    fn any_row(&mut self, sql: String) -> QueryResult<bool> {
        count(self, sql)
    }

    fn family(ty: &str) -> Option<Family> {
        match ty {
            "bigint" | "integer" | "smallint" => Some(Int),
            "text" | "character varying" | "character" | "json" => Some(Txt),
            "boolean" => Some(Bool),
            t if t.starts_with("timestamp") => Some(Time),
            _ => None,
        }
    }

    fn quote(name: &str) -> String {
        format!("\"{name}\"")
    }
}

impl Catalog for AsyncConnectionWrapper<AsyncMysqlConnection> {
    fn table_exists(&mut self, table: &str) -> QueryResult<bool> {
        count(
            self,
            format!(
                "SELECT COUNT(*) AS n FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name = '{table}'"
            ),
        )
    }

    fn columns(&mut self, table: &str) -> QueryResult<Vec<ColumnInfo>> {
        diesel::RunQueryDsl::load(
            diesel::sql_query(format!(
                "SELECT CAST(column_name AS CHAR) AS name, CAST(data_type AS CHAR) AS ty, \
                 CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END AS not_null, \
                 CASE WHEN (column_default IS NOT NULL AND column_default <> 'NULL') \
                   OR extra LIKE '%auto_increment%' THEN 1 ELSE 0 END AS has_default \
                 FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = '{table}'"
            )),
            self,
        )
    }

    fn index_columns(&mut self, table: &str) -> QueryResult<Vec<IndexColumn>> {
        diesel::RunQueryDsl::load(
            diesel::sql_query(format!(
                "SELECT CAST(index_name AS CHAR) AS idx, CAST(column_name AS CHAR) AS col, \
                 CASE WHEN non_unique = 0 THEN 1 ELSE 0 END AS is_unique \
                 FROM information_schema.statistics \
                 WHERE table_schema = DATABASE() AND table_name = '{table}'"
            )),
            self,
        )
    }

    fn any_row(&mut self, sql: String) -> QueryResult<bool> {
        count(self, sql)
    }

    fn family(ty: &str) -> Option<Family> {
        match ty.to_ascii_lowercase().as_str() {
            "tinyint" => Some(Bool),
            "bigint" | "int" | "integer" | "smallint" | "mediumint" => Some(Int),
            "varchar" | "char" | "text" | "tinytext" | "mediumtext" | "longtext" | "json" => {
                Some(Txt)
            }
            "datetime" | "timestamp" => Some(Time),
            _ => None,
        }
    }

    fn quote(name: &str) -> String {
        format!("`{name}`")
    }
}

/// Looks at the database before migrating; adopts GPT-Load's schema, refuses a foreign one.
/// Runs under the start-up lock, so one node at a time gets here.
pub(crate) fn prepare<C: Catalog>(conn: &mut C) -> Result<Found, DbError> {
    if conn.init_recorded()? {
        return Ok(Found::OursOrEmpty);
    }
    let mut present = Vec::new();
    for (table, _) in TABLES {
        if conn.table_exists(table)? {
            present.push(*table);
        }
    }
    if present.is_empty() {
        return Ok(Found::OursOrEmpty);
    }
    if let Some((missing, _)) = TABLES.iter().find(|(t, _)| !present.contains(t)) {
        return Err(foreign(
            missing,
            None,
            &format!("the table is missing (found only {})", present.join(", ")),
        ));
    }
    for (table, expected) in TABLES {
        check_table(conn, table, expected)?;
    }
    adopt(conn)?;
    Ok(Found::AdoptedGptLoad)
}

/// Every column we need is there with a usable type; every other column lets us insert rows
/// without naming it.
fn check_table<C: Catalog>(
    conn: &mut C,
    table: &str,
    expected: &[(&str, Family)],
) -> Result<(), DbError> {
    let columns = conn.columns(table)?;
    for (name, family) in expected {
        let Some(found) = columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)) else {
            return Err(foreign(table, Some(name), "the column is missing"));
        };
        let fits = match (C::family(&found.ty), family) {
            (Some(f), want) if f == *want => true,
            // MySQL and SQLite store booleans as small integers.
            (Some(Int), Bool) | (Some(Bool), Int) => true,
            _ => false,
        };
        if !fits {
            return Err(foreign(
                table,
                Some(name),
                &format!(
                    "expected {} column, found type `{}`",
                    family.describe(),
                    found.ty
                ),
            ));
        }
    }
    for extra in columns
        .iter()
        .filter(|c| !expected.iter().any(|(n, _)| c.name.eq_ignore_ascii_case(n)))
    {
        if extra.not_null != 0 && extra.has_default == 0 {
            return Err(foreign(
                table,
                Some(&extra.name),
                "an unknown column that is NOT NULL without a default (rows could not be added)",
            ));
        }
    }
    let indexes = conn.index_columns(table)?;
    for (_, cols) in UNIQUE_KEYS.iter().filter(|(t, _)| *t == table) {
        if !has_unique(&indexes, cols) {
            return Err(foreign(
                table,
                Some(&cols.join(", ")),
                "no unique index or constraint on these columns",
            ));
        }
    }
    Ok(())
}

fn has_unique(indexes: &[IndexColumn], cols: &[&str]) -> bool {
    let mut names: Vec<&str> = indexes
        .iter()
        .filter(|i| i.is_unique != 0)
        .map(|i| i.idx.as_str())
        .collect();
    names.dedup();
    names.iter().any(|name| {
        let members: Vec<&str> = indexes
            .iter()
            .filter(|i| i.idx == *name)
            .map(|i| i.col.as_str())
            .collect();
        members.len() == cols.len() && cols.iter().all(|c| members.contains(c))
    })
}

/// The add-only step: the indexes our first migration would have made, then its record.
fn adopt<C: Catalog>(conn: &mut C) -> Result<(), DbError> {
    for (name, table, cols) in INIT_INDEXES {
        let existing = conn.index_columns(table)?;
        if existing.iter().any(|i| i.idx == *name) {
            continue;
        }
        let columns: Vec<String> = cols.iter().map(|c| C::quote(c)).collect();
        conn.batch_execute(&format!(
            "CREATE INDEX {name} ON {} ({})",
            C::quote(table),
            columns.join(", ")
        ))?;
    }
    conn.batch_execute(MIGRATIONS_TABLE_DDL)?;
    conn.batch_execute(&format!(
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('{INIT_VERSION}')"
    ))?;
    tracing::info!(
        "Adopted a GPT-Load database: its six tables are kept as they are; this server's own tables and indexes are added next."
    );
    Ok(())
}

fn foreign(table: &str, column: Option<&str>, problem: &str) -> DbError {
    let place = match column {
        Some(column) => format!("table `{table}`, column `{column}`"),
        None => format!("table `{table}`"),
    };
    DbError::ForeignSchema(format!(
        "{place}: {problem}. The database holds tables of neither this server nor GPT-Load 1.4.x. \
         Point DATABASE_DSN at an empty database or at a GPT-Load 1.4.x database (upgrade an older \
         GPT-Load to 1.4.x and start it once first), or restore this one from a backup."
    ))
}
