//! Request log reads for the logs page, its CSV export and the dashboard's RPM, plus a batch
//! insert (used by tests now and by the log writer).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::repo::Repo;
use super::schema::request_logs;
use super::DbError;
use crate::{insert_batch, with_conn};

/// A `request_logs` row (read and insert).
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = request_logs)]
pub struct LogRow {
    pub id: String,
    pub timestamp: NaiveDateTime,
    pub group_id: i64,
    pub group_name: String,
    pub parent_group_id: i64,
    pub parent_group_name: String,
    pub key_value: String,
    pub key_hash: String,
    pub model: String,
    pub is_success: bool,
    pub source_ip: String,
    pub status_code: i32,
    pub request_path: String,
    pub duration: i64,
    pub error_message: String,
    pub user_agent: String,
    pub request_type: String,
    pub upstream_addr: String,
    pub is_stream: bool,
    pub request_body: String,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub cached_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub proxy_key: String,
}

/// Filters of the logs page and its export; every field is optional.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    /// Substring of the aggregate group name.
    pub parent_group_name: Option<String>,
    /// Substring of the group name.
    pub group_name: Option<String>,
    /// Exact key, by hash.
    pub key_hash: Option<String>,
    /// Substring of the model.
    pub model: Option<String>,
    pub is_success: Option<bool>,
    /// `retry` or `final`.
    pub request_type: Option<String>,
    pub status_code: Option<i32>,
    /// Exact client address.
    pub source_ip: Option<String>,
    /// Substring of the error message.
    pub error_contains: Option<String>,
    /// `timestamp >= start`.
    pub start: Option<NaiveDateTime>,
    /// `timestamp <= end`.
    pub end: Option<NaiveDateTime>,
}

/// How far past the current page the logs page counts matching rows exactly.
pub const LOG_COUNT_AHEAD: i64 = 10_000;

/// How many log rows match a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTotal {
    Exact(i64),
    /// More rows match than were counted; at least this many.
    AtLeast(i64),
}

/// One line of the log export: the newest row of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedKey {
    pub key_hash: String,
    pub key_value: String,
    pub group_name: String,
    pub status_code: i32,
}

/// `%text%` with LIKE wildcards in `text` escaped by `!` (a backslash would need different
/// quoting on MySQL).
fn like(text: &str) -> String {
    let escaped = text
        .replace('!', "!!")
        .replace('%', "!%")
        .replace('_', "!_");
    format!("%{escaped}%")
}

/// Applies a [`LogFilter`] to a boxed `request_logs` query (the same code for every backend).
macro_rules! filtered {
    ($query:expr, $f:expr) => {{
        let f: &LogFilter = $f;
        let mut q = $query;
        if let Some(v) = &f.parent_group_name {
            q = q.filter(request_logs::parent_group_name.like(like(v)).escape('!'));
        }
        if let Some(v) = &f.group_name {
            q = q.filter(request_logs::group_name.like(like(v)).escape('!'));
        }
        if let Some(v) = &f.key_hash {
            q = q.filter(request_logs::key_hash.eq(v.clone()));
        }
        if let Some(v) = &f.model {
            q = q.filter(request_logs::model.like(like(v)).escape('!'));
        }
        if let Some(v) = f.is_success {
            q = q.filter(request_logs::is_success.eq(v));
        }
        if let Some(v) = &f.request_type {
            q = q.filter(request_logs::request_type.eq(v.clone()));
        }
        if let Some(v) = f.status_code {
            q = q.filter(request_logs::status_code.eq(v));
        }
        if let Some(v) = &f.source_ip {
            q = q.filter(request_logs::source_ip.eq(v.clone()));
        }
        if let Some(v) = &f.error_contains {
            q = q.filter(request_logs::error_message.like(like(v)).escape('!'));
        }
        if let Some(v) = f.start {
            q = q.filter(request_logs::timestamp.ge(v));
        }
        if let Some(v) = f.end {
            q = q.filter(request_logs::timestamp.le(v));
        }
        q
    }};
}

impl Repo {
    /// Inserts log rows in batches.
    pub async fn insert_request_logs(&self, rows: Vec<LogRow>) -> Result<(), DbError> {
        for chunk in rows.chunks(200) {
            insert_batch!(&self.db, request_logs::table, chunk.to_vec())?;
        }
        Ok(())
    }

    /// A page of logs matching `filter`, newest first, and how many rows match.
    ///
    /// The count is exact up to [`LOG_COUNT_AHEAD`] rows past the end of the page; beyond that
    /// it stops counting and says so ([`LogTotal::AtLeast`]). An exact `COUNT(*)` of a
    /// 10-million-row table costs ~170 ms on SQLite and ~400 ms on PostgreSQL on every page
    /// view, while "is there a row N positions further" reads at most N / selectivity rows
    /// (measured with bench/logs_page.sh; a 100k horizon cost ~450 ms on PostgreSQL for a filter
    /// matching 5 % of the rows, 10k costs a tenth of that).
    pub async fn logs_page(
        &self,
        filter: &LogFilter,
        page: i64,
        page_size: i64,
    ) -> Result<(Vec<LogRow>, LogTotal), DbError> {
        self.logs_page_counting_ahead(filter, page, page_size, LOG_COUNT_AHEAD)
            .await
    }

    /// [`Repo::logs_page`] with the counting horizon as a parameter (tests use a small one).
    pub async fn logs_page_counting_ahead(
        &self,
        filter: &LogFilter,
        page: i64,
        page_size: i64,
        count_ahead: i64,
    ) -> Result<(Vec<LogRow>, LogTotal), DbError> {
        let offset = (page - 1).max(0) * page_size;
        let horizon = offset + page_size + count_ahead.max(0);
        Ok(with_conn!(&self.db, conn => {
            let rows = filtered!(request_logs::table.into_boxed(), filter)
                .select(LogRow::as_select())
                .order((request_logs::timestamp.desc(), request_logs::id.desc()))
                .limit(page_size)
                .offset(offset)
                .load(conn)
                .await?;
            // `timestamp` rather than `id`: the filter indexes hold it, so the walk stays in
            // the index.
            let beyond: Option<NaiveDateTime> = filtered!(request_logs::table.into_boxed(), filter)
                .select(request_logs::timestamp)
                .offset(horizon)
                .limit(1)
                .first(conn)
                .await
                .optional()?;
            let total = if beyond.is_some() {
                LogTotal::AtLeast(horizon + 1)
            } else {
                let n: i64 = filtered!(request_logs::table.into_boxed(), filter)
                    .count()
                    .get_result(conn)
                    .await?;
                LogTotal::Exact(n)
            };
            (rows, total)
        }))
    }

    /// One batch of the export: filtered rows with a key, ordered by key hash then newest first,
    /// so the first row of each hash is that key's latest.
    pub async fn log_keys_batch(
        &self,
        filter: &LogFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<ExportedKey>, DbError> {
        let rows: Vec<(String, String, String, i32)> = with_conn!(&self.db, conn => {
            filtered!(request_logs::table.into_boxed(), filter)
                .filter(request_logs::key_hash.ne(""))
                .select((
                    request_logs::key_hash,
                    request_logs::key_value,
                    request_logs::group_name,
                    request_logs::status_code,
                ))
                .order((
                    request_logs::key_hash.asc(),
                    request_logs::timestamp.desc(),
                    request_logs::id.asc(),
                ))
                .limit(limit)
                .offset(offset)
                .load(conn)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(key_hash, key_value, group_name, status_code)| ExportedKey {
                    key_hash,
                    key_value,
                    group_name,
                    status_code,
                },
            )
            .collect())
    }

    /// Final (non-retry) log rows with `from <= timestamp < to`.
    pub async fn count_final_logs(
        &self,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> Result<i64, DbError> {
        Ok(with_conn!(&self.db, conn => {
            request_logs::table
                .filter(request_logs::request_type.eq("final"))
                .filter(request_logs::timestamp.ge(from))
                .filter(request_logs::timestamp.lt(to))
                .count()
                .get_result(conn)
                .await?
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like("a%b_c!"), "%a!%b!_c!!%");
    }
}
