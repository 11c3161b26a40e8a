//! Request log reads for the logs page, its CSV export and the dashboard's RPM, plus a batch
//! insert (used by tests now and by the log writer).

use std::ops::Bound;

use chrono::{DurationRound, NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;

use super::compat::{Int32, TextOrEmpty};
pub use super::log_row::LogRow;
use super::repo::Repo;
use super::schema::{request_log_counts, request_logs};
use super::{Database, DbError};
use crate::{insert_batch, with_conn};

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

/// How far past the current page the logs page counts rows exactly for filters no index serves
/// (substrings, client address).
pub const LOG_COUNT_AHEAD: i64 = 10_000;

/// How far past the current page the logs page counts rows exactly for a key filter, whose rows
/// the (key_hash, timestamp) index reaches directly.
pub const KEY_COUNT_AHEAD: i64 = 1_000_000;

impl LogFilter {
    /// True when `request_log_counts` holds the answer: no filter beyond the request type,
    /// success, status code and a time range.
    pub fn counted_by_hour(&self) -> bool {
        self.parent_group_name.is_none()
            && self.group_name.is_none()
            && self.key_hash.is_none()
            && self.model.is_none()
            && self.source_ip.is_none()
            && self.error_contains.is_none()
    }
}

/// The start of the hour holding `t`.
fn floor_hour(t: NaiveDateTime) -> NaiveDateTime {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// The first hour boundary at or after `t`.
fn ceil_hour(t: NaiveDateTime) -> NaiveDateTime {
    let floor = floor_hour(t);
    if floor == t {
        t
    } else {
        floor + TimeDelta::hours(1)
    }
}

/// How many log rows match a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTotal {
    Exact(i64),
    /// More rows match than were counted; at least this many.
    AtLeast(i64),
}

/// One row of the log export, read key by key, each key's newest row first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedKey {
    pub key_hash: String,
    pub key_value: String,
    pub group_name: String,
    pub status_code: i32,
    /// The row's token counts (`[input, output, total, cached, cache_write, reasoning]`), each
    /// `None` when the upstream did not report it.
    pub tokens: [Option<i64>; 6],
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
    /// Inserts log rows in batches, counted in `request_log_counts` as the log writer counts.
    pub async fn insert_request_logs(&self, rows: Vec<LogRow>) -> Result<(), DbError> {
        for chunk in rows.chunks(200) {
            insert_batch!(&self.db, request_logs::table, chunk.to_vec())?;
        }
        let Some(sql) = super::log_sink::counts_sql(&self.db) else {
            return Ok(());
        };
        let counts = super::log_sink::log_counts(rows.iter().map(|r| {
            (
                r.timestamp,
                r.request_type.as_str(),
                r.is_success,
                r.status_code,
            )
        }));
        use diesel_async::RunQueryDsl;
        with_conn!(&self.db, conn => {
            for (hour, kind, ok, status, n) in &counts {
                crate::count_query!(sql, *hour, kind, *ok, *status, *n)
                    .execute(conn)
                    .await?;
            }
        });
        Ok(())
    }

    /// A page of logs matching `filter`, newest first, and how many rows match.
    ///
    /// The total is exact whenever an index or the hourly counts serve the filter: with no filter
    /// or only `request_type` / `is_success` / `status_code` / a time range it is summed from
    /// `request_log_counts` (kept by the log writer and a delete trigger; a few thousand rows for a month of logs) plus
    /// an indexed count of the partial hours at the edges of the time range; with a key filter
    /// the (key_hash, timestamp) index is counted up to [`KEY_COUNT_AHEAD`] rows past the page.
    /// Substring and client-address filters no index serves are counted exactly up to
    /// [`LOG_COUNT_AHEAD`] rows past the page, and beyond that the total is a lower bound
    /// ([`LogTotal::AtLeast`]): an exact `COUNT(*)` over 10 million rows costs ~170 ms on SQLite
    /// and ~400 ms on PostgreSQL on every page view (bench/logs_page.sh).
    pub async fn logs_page(
        &self,
        filter: &LogFilter,
        page: i64,
        page_size: i64,
    ) -> Result<(Vec<LogRow>, LogTotal), DbError> {
        let ahead = if filter.key_hash.is_some() {
            KEY_COUNT_AHEAD
        } else {
            LOG_COUNT_AHEAD
        };
        self.logs_page_counting_ahead(filter, page, page_size, ahead)
            .await
    }

    /// [`Repo::logs_page`] with the counting horizon of unindexed filters as a parameter (tests
    /// use a small one).
    pub async fn logs_page_counting_ahead(
        &self,
        filter: &LogFilter,
        page: i64,
        page_size: i64,
        count_ahead: i64,
    ) -> Result<(Vec<LogRow>, LogTotal), DbError> {
        let offset = (page - 1).max(0) * page_size;
        let rows = with_conn!(&self.db, conn => {
            filtered!(request_logs::table.into_boxed(), filter)
                .select(LogRow::as_select())
                .order((request_logs::timestamp.desc(), request_logs::id.desc()))
                .limit(page_size)
                .offset(offset)
                .load(conn)
                .await?
        });
        let total = if filter.counted_by_hour() {
            LogTotal::Exact(self.counted_total(filter).await?)
        } else {
            self.bounded_total(filter, offset + page_size + count_ahead.max(0))
                .await?
        };
        Ok((rows, total))
    }

    /// The exact number of rows matching a filter the hourly counts hold: whole hours from
    /// `request_log_counts`, the partial hours at the edges of the time range from the table.
    async fn counted_total(&self, filter: &LogFilter) -> Result<i64, DbError> {
        let dims = LogFilter {
            start: None,
            end: None,
            ..filter.clone()
        };
        // Whole hours h with start <= h and h + 1 h <= end.
        let first = filter.start.map(ceil_hour);
        let past = filter.end.map(floor_hour);
        if let (Some(start), Some(end), Some(first), Some(past)) =
            (filter.start, filter.end, first, past)
        {
            if first >= past {
                return self.count_between(&dims, start, Bound::Included(end)).await;
            }
        }
        // Summed in SQL: with retention off the table grows by a few dozen rows an hour.
        let sum = if matches!(self.db, Database::Mysql(_)) {
            "CAST(COALESCE(SUM(log_count), 0) AS SIGNED)"
        } else {
            "CAST(COALESCE(SUM(log_count), 0) AS BIGINT)"
        };
        let mut total: i64 = with_conn!(&self.db, conn => {
            let mut q = request_log_counts::table
                .select(diesel::dsl::sql::<BigInt>(sum))
                .into_boxed();
            if let Some(v) = &dims.request_type {
                q = q.filter(request_log_counts::request_type.eq(v.clone()));
            }
            if let Some(v) = dims.is_success {
                q = q.filter(request_log_counts::is_success.eq(v));
            }
            if let Some(v) = dims.status_code {
                q = q.filter(request_log_counts::status_code.eq(v));
            }
            if let Some(v) = first {
                q = q.filter(request_log_counts::hour.ge(v));
            }
            if let Some(v) = past {
                q = q.filter(request_log_counts::hour.lt(v));
            }
            q.get_result(conn).await?
        });
        if let (Some(start), Some(first)) = (filter.start, first) {
            if start < first {
                total += self
                    .count_between(&dims, start, Bound::Excluded(first))
                    .await?;
            }
        }
        if let (Some(end), Some(past)) = (filter.end, past) {
            total += self
                .count_between(&dims, past, Bound::Included(end))
                .await?;
        }
        Ok(total)
    }

    /// Rows matching `dims` with `from <= timestamp` and `timestamp` below or at `to`.
    async fn count_between(
        &self,
        dims: &LogFilter,
        from: NaiveDateTime,
        to: Bound<NaiveDateTime>,
    ) -> Result<i64, DbError> {
        Ok(with_conn!(&self.db, conn => {
            let mut q = filtered!(request_logs::table.into_boxed(), dims)
                .filter(request_logs::timestamp.ge(from));
            q = match to {
                Bound::Included(to) => q.filter(request_logs::timestamp.le(to)),
                Bound::Excluded(to) => q.filter(request_logs::timestamp.lt(to)),
                Bound::Unbounded => q,
            };
            q.count().get_result(conn).await?
        }))
    }

    /// The number of matching rows when it is below `horizon`, else "at least `horizon + 1`":
    /// asking for the row `horizon` positions in reads at most that many rows.
    async fn bounded_total(&self, filter: &LogFilter, horizon: i64) -> Result<LogTotal, DbError> {
        Ok(with_conn!(&self.db, conn => {
            // `timestamp` rather than `id`: the filter indexes hold it, so the walk stays in
            // the index.
            let beyond: Option<NaiveDateTime> = filtered!(request_logs::table.into_boxed(), filter)
                .select(request_logs::timestamp)
                .offset(horizon)
                .limit(1)
                .first(conn)
                .await
                .optional()?;
            if beyond.is_some() {
                LogTotal::AtLeast(horizon + 1)
            } else {
                let n: i64 = filtered!(request_logs::table.into_boxed(), filter)
                    .count()
                    .get_result(conn)
                    .await?;
                LogTotal::Exact(n)
            }
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
        type Tokens = (
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<(String, TextOrEmpty, TextOrEmpty, Int32, Tokens)> = with_conn!(&self.db, conn => {
            filtered!(request_logs::table.into_boxed(), filter)
                .filter(request_logs::key_hash.ne(""))
                .select((
                    request_logs::key_hash,
                    request_logs::key_value,
                    request_logs::group_name,
                    request_logs::status_code,
                    (
                        request_logs::input_tokens,
                        request_logs::output_tokens,
                        request_logs::total_tokens,
                        request_logs::cached_tokens,
                        request_logs::cache_write_tokens,
                        request_logs::reasoning_tokens,
                    ),
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
                |(key_hash, key_value, group_name, status_code, t)| ExportedKey {
                    key_hash,
                    key_value: key_value.0,
                    group_name: group_name.0,
                    status_code: status_code.0,
                    tokens: [t.0, t.1, t.2, t.3, t.4, t.5],
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
    fn hours_round_both_ways() {
        let t = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        assert_eq!(
            floor_hour(t("2026-01-02 10:30:00")),
            t("2026-01-02 10:00:00")
        );
        assert_eq!(
            ceil_hour(t("2026-01-02 10:30:00")),
            t("2026-01-02 11:00:00")
        );
        assert_eq!(
            ceil_hour(t("2026-01-02 10:00:00")),
            t("2026-01-02 10:00:00")
        );
        assert_eq!(
            ceil_hour(t("2026-01-02 10:00:00.001")),
            t("2026-01-02 11:00:00")
        );
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like("a%b_c!"), "%a!%b!_c!!%");
    }
}
