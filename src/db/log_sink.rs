//! The request-log writer: one transaction per batch with the rows, successful keys' usage
//! counters and the hourly statistics, on every backend.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{NaiveDateTime, Timelike};
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::AsyncConnection;
use gpt_load_actors::domain::{GroupId, KeyId, RequestRecord, RequestType, TokenUsage};
use gpt_load_actors::ports::{LogSink, PortError};

use super::log_row::LogRow;
use super::repo::{now, Repo};
use super::schema::{api_keys, group_hourly_stats, request_logs, usage_hourly_stats};
use super::{Database, DbError};
use crate::with_conn;

/// Token sums of one (hour, group, model, proxy key).
#[derive(Default)]
struct UsageSum {
    requests: i64,
    known: i64,
    input: i64,
    output: i64,
    total: i64,
    cached: i64,
    cache_write: i64,
    reasoning: i64,
}

impl UsageSum {
    fn add(&mut self, u: &TokenUsage) {
        self.requests += 1;
        if !u.is_known() {
            return;
        }
        self.known += 1;
        self.input += u.input.unwrap_or(0);
        self.output += u.output.unwrap_or(0);
        self.total += u.total.unwrap_or(0);
        self.cached += u.cached.unwrap_or(0);
        self.cache_write += u.cache_write.unwrap_or(0);
        self.reasoning += u.reasoning.unwrap_or(0);
    }
}

/// What one batch adds to a key: requests, latest use, and tokens (input, output, total).
struct KeyUse {
    requests: i64,
    last: NaiveDateTime,
    tokens: [i64; 3],
}

type UsageKey = (NaiveDateTime, GroupId, String, String);

/// `request_log_counts` increments: hour, request type, success, status code, rows.
pub(crate) type LogCounts = Vec<(NaiveDateTime, String, bool, i32, i64)>;

/// The counter increments for rows given as (timestamp, request type, success, status code),
/// sorted so that concurrent writers take the counter rows in the same order.
pub(crate) fn log_counts<'a>(
    rows: impl Iterator<Item = (NaiveDateTime, &'a str, bool, i32)>,
) -> LogCounts {
    let mut counts: HashMap<(NaiveDateTime, &str, bool, i32), i64> = HashMap::new();
    for (t, request_type, ok, status) in rows {
        *counts
            .entry((hour_of(t), request_type, ok, status))
            .or_default() += 1;
    }
    let mut sorted: LogCounts = counts
        .into_iter()
        .map(|((hour, kind, ok, status), n)| (hour, kind.to_string(), ok, status, n))
        .collect();
    sorted.sort();
    sorted
}

/// The statement adding one increment, on the backends whose insert trigger is gone.
pub(crate) fn counts_sql(db: &Database) -> Option<&'static str> {
    match db {
        Database::Sqlite(_) => Some(SQLITE_COUNTS),
        Database::Mysql(_) => Some(MYSQL_COUNTS),
        Database::Postgres(_) => None,
    }
}

/// Adds a batch's rows to `request_log_counts` where no insert trigger does (SQLite, MySQL: the
/// per-row trigger cost more than the row itself); the hour is computed as the delete trigger
/// computes it, so both address the same counter. PostgreSQL's statement-level trigger counts
/// each insert statement itself.
const SQLITE_COUNTS: &str =
    "INSERT INTO request_log_counts (hour, request_type, is_success, status_code, log_count) \
     VALUES (strftime('%Y-%m-%d %H:00:00', ?), ?, ?, ?, ?) \
     ON CONFLICT (hour, request_type, is_success, status_code) \
     DO UPDATE SET log_count = log_count + excluded.log_count";
const MYSQL_COUNTS: &str =
    "INSERT INTO request_log_counts (hour, request_type, is_success, status_code, log_count) \
     VALUES (DATE_FORMAT(?, '%Y-%m-%d %H:00:00'), ?, ?, ?, ?) \
     ON DUPLICATE KEY UPDATE log_count = log_count + VALUES(log_count)";

/// Successes and failures of one group in one hour.
#[derive(Default)]
struct HourCount {
    success: i64,
    failure: i64,
}

/// One `request_log_counts` increment as a query (a macro: diesel does not name the type of a
/// bound `sql_query`).
#[macro_export]
macro_rules! count_query {
    ($sql:expr, $hour:expr, $request_type:expr, $ok:expr, $status:expr, $n:expr) => {
        diesel::sql_query($sql)
            .bind::<diesel::sql_types::Timestamp, _>($hour)
            .bind::<diesel::sql_types::Text, _>($request_type)
            .bind::<diesel::sql_types::Bool, _>($ok)
            .bind::<diesel::sql_types::Integer, _>($status)
            .bind::<diesel::sql_types::BigInt, _>($n)
    };
}

fn hour_of(t: NaiveDateTime) -> NaiveDateTime {
    t.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

/// A key as request-log rows store it: (encoded value, hash).
type SealedKey = (String, String);

impl Repo {
    /// The row of a record; with `ENCRYPTION_KEY` its key is encrypted and hashed with the keyed
    /// hash, like `api_keys`. `sealed` keeps each key's encoded value and hash for the rest of
    /// the batch: a batch of 500 rows usually names a handful of keys, and each is an AES and an
    /// HMAC pass (rows of one key share a ciphertext then; their equal `key_hash` says as much).
    fn log_row(
        &self,
        r: &RequestRecord,
        sealed: &mut HashMap<KeyId, SealedKey>,
    ) -> Result<LogRow, crate::crypto::EncodeError> {
        let (key_value, key_hash) = match (&r.key, r.key_id) {
            (Some(key), Some(id)) => match sealed.get(&id) {
                Some(known) => known.clone(),
                None => {
                    let fresh = (
                        self.codec.encode(key.expose())?,
                        self.codec.hash(key.expose()),
                    );
                    sealed.insert(id, fresh.clone());
                    fresh
                }
            },
            (Some(key), None) => (
                self.codec.encode(key.expose())?,
                self.codec.hash(key.expose()),
            ),
            (None, _) => (String::new(), String::new()),
        };
        Ok(LogRow {
            id: r.id.clone(),
            timestamp: r.timestamp,
            group_id: r.group_id,
            group_name: r.group_name.clone(),
            parent_group_id: r.parent_group_id,
            parent_group_name: r.parent_group_name.clone(),
            key_value,
            key_hash,
            model: truncate(&r.model, 255),
            is_success: r.is_success,
            source_ip: truncate(&r.source_ip, 64),
            status_code: r.status_code,
            request_path: truncate(&r.request_path, 500),
            duration: r.duration_ms,
            error_message: r.error_message.clone(),
            user_agent: truncate(&r.user_agent, 512),
            request_type: r.request_type.as_str().to_string(),
            upstream_addr: truncate(&r.upstream_addr, 500),
            is_stream: r.is_stream,
            request_body: r.request_body.clone(),
            input_tokens: r.usage.input,
            output_tokens: r.usage.output,
            total_tokens: r.usage.total,
            cached_tokens: r.usage.cached,
            cache_write_tokens: r.usage.cache_write,
            reasoning_tokens: r.usage.reasoning,
            proxy_key: truncate(&r.proxy_key, 64),
        })
    }
}

/// Cuts a string to at most `max` characters, for bounded columns.
fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[async_trait]
impl LogSink for Repo {
    async fn write_batch(&self, records: &[RequestRecord]) -> Result<(), PortError> {
        let mut sealed = HashMap::new();
        let rows: Vec<LogRow> = records
            .iter()
            .map(|r| self.log_row(r, &mut sealed))
            .collect::<Result<_, _>>()
            .map_err(|e| PortError::Other(e.to_string()))?;
        let mut usage: HashMap<KeyId, KeyUse> = HashMap::new();
        let mut hours: HashMap<(NaiveDateTime, GroupId), HourCount> = HashMap::new();
        let mut tokens: HashMap<UsageKey, UsageSum> = HashMap::new();
        let counts = log_counts(records.iter().map(|r| {
            (
                r.timestamp,
                r.request_type.as_str(),
                r.is_success,
                r.status_code,
            )
        }));
        let counts_sql = counts_sql(&self.db);
        for r in records {
            if r.is_success {
                if let Some(id) = r.key_id {
                    let entry = usage.entry(id).or_insert(KeyUse {
                        requests: 0,
                        last: r.timestamp,
                        tokens: [0; 3],
                    });
                    entry.requests += 1;
                    entry.last = entry.last.max(r.timestamp);
                    entry.tokens[0] += r.usage.input.unwrap_or(0);
                    entry.tokens[1] += r.usage.output.unwrap_or(0);
                    entry.tokens[2] += r.usage.total.unwrap_or(0);
                }
            }
            if r.request_type == RequestType::Retry {
                continue;
            }
            let hour = hour_of(r.timestamp);
            tokens
                .entry((
                    hour,
                    r.group_id,
                    truncate(&r.model, 255),
                    truncate(&r.proxy_key, 64),
                ))
                .or_default()
                .add(&r.usage);
            let mut groups = vec![r.group_id];
            if r.parent_group_id > 0 {
                groups.push(r.parent_group_id);
            }
            for gid in groups {
                let count = hours.entry((hour, gid)).or_default();
                if r.is_success {
                    count.success += 1;
                } else {
                    count.failure += 1;
                }
            }
        }
        let ts = now();
        // SQLite's multi-row insert exists only on diesel's sync connection, so that backend runs
        // the same statements in a sync transaction on the wrapper's blocking thread.
        macro_rules! statements {
            ($conn:ident, $rows_per_insert:expr, $($aw:tt)*) => {{
                if $rows_per_insert == 1 {
                    // One cached statement, bound and stepped per row: a multi-row INSERT is new
                    // SQL for diesel to build and SQLite to parse on every batch.
                    for row in &rows {
                        diesel::insert_into(request_logs::table).values(row).execute($conn) $($aw)* ?;
                    }
                } else {
                    for chunk in rows.chunks($rows_per_insert) {
                        diesel::insert_into(request_logs::table).values(chunk).execute($conn) $($aw)* ?;
                    }
                }
                if let Some(sql) = counts_sql {
                    for (hour, request_type, ok, status, n) in &counts {
                        crate::count_query!(sql, *hour, request_type, *ok, *status, *n).execute($conn) $($aw)* ?;
                    }
                }
                for (id, u) in &usage {
                    diesel::update(api_keys::table.find(*id))
                        .set((
                            api_keys::request_count.eq(api_keys::request_count + u.requests),
                            api_keys::last_used_at.eq(u.last),
                            api_keys::input_tokens.eq(api_keys::input_tokens + u.tokens[0]),
                            api_keys::output_tokens.eq(api_keys::output_tokens + u.tokens[1]),
                            api_keys::total_tokens.eq(api_keys::total_tokens + u.tokens[2]),
                        ))
                        .execute($conn) $($aw)* ?;
                }
                for ((hour, gid, model, proxy_key), sum) in &tokens {
                    let target = usage_hourly_stats::table
                        .filter(usage_hourly_stats::time.eq(*hour))
                        .filter(usage_hourly_stats::group_id.eq(*gid))
                        .filter(usage_hourly_stats::model.eq(model))
                        .filter(usage_hourly_stats::proxy_key.eq(proxy_key));
                    let updated = diesel::update(target)
                        .set((
                            usage_hourly_stats::requests.eq(usage_hourly_stats::requests + sum.requests),
                            usage_hourly_stats::known_requests.eq(usage_hourly_stats::known_requests + sum.known),
                            usage_hourly_stats::input_tokens.eq(usage_hourly_stats::input_tokens + sum.input),
                            usage_hourly_stats::output_tokens.eq(usage_hourly_stats::output_tokens + sum.output),
                            usage_hourly_stats::total_tokens.eq(usage_hourly_stats::total_tokens + sum.total),
                            usage_hourly_stats::cached_tokens.eq(usage_hourly_stats::cached_tokens + sum.cached),
                            usage_hourly_stats::cache_write_tokens.eq(usage_hourly_stats::cache_write_tokens + sum.cache_write),
                            usage_hourly_stats::reasoning_tokens.eq(usage_hourly_stats::reasoning_tokens + sum.reasoning),
                            usage_hourly_stats::updated_at.eq(ts),
                        ))
                        .execute($conn) $($aw)* ?;
                    if updated == 0 {
                        diesel::insert_into(usage_hourly_stats::table)
                            .values((
                                usage_hourly_stats::time.eq(*hour),
                                usage_hourly_stats::group_id.eq(*gid),
                                usage_hourly_stats::model.eq(model),
                                usage_hourly_stats::proxy_key.eq(proxy_key),
                                usage_hourly_stats::requests.eq(sum.requests),
                                usage_hourly_stats::known_requests.eq(sum.known),
                                usage_hourly_stats::input_tokens.eq(sum.input),
                                usage_hourly_stats::output_tokens.eq(sum.output),
                                usage_hourly_stats::total_tokens.eq(sum.total),
                                usage_hourly_stats::cached_tokens.eq(sum.cached),
                                usage_hourly_stats::cache_write_tokens.eq(sum.cache_write),
                                usage_hourly_stats::reasoning_tokens.eq(sum.reasoning),
                                usage_hourly_stats::created_at.eq(ts),
                                usage_hourly_stats::updated_at.eq(ts),
                            ))
                            .execute($conn) $($aw)* ?;
                    }
                }
                for ((hour, gid), count) in &hours {
                    let target = group_hourly_stats::table
                        .filter(group_hourly_stats::time.eq(*hour))
                        .filter(group_hourly_stats::group_id.eq(*gid));
                    let updated = diesel::update(target)
                        .set((
                            group_hourly_stats::success_count.eq(group_hourly_stats::success_count + count.success),
                            group_hourly_stats::failure_count.eq(group_hourly_stats::failure_count + count.failure),
                            group_hourly_stats::updated_at.eq(ts),
                        ))
                        .execute($conn) $($aw)* ?;
                    if updated == 0 {
                        diesel::insert_into(group_hourly_stats::table)
                            .values((
                                group_hourly_stats::time.eq(*hour),
                                group_hourly_stats::group_id.eq(*gid),
                                group_hourly_stats::success_count.eq(count.success),
                                group_hourly_stats::failure_count.eq(count.failure),
                                group_hourly_stats::created_at.eq(ts),
                                group_hourly_stats::updated_at.eq(ts),
                            ))
                            .execute($conn) $($aw)* ?;
                    }
                }
                Ok::<_, diesel::result::Error>(())
            }};
        }
        let result: Result<(), DbError> = async {
            match &self.db {
                Database::Sqlite(pool) => {
                    let mut conn = crate::db::checkout(pool).await?;
                    conn.spawn_blocking(move |c| {
                        use diesel::RunQueryDsl;
                        diesel::Connection::transaction(c, |c| statements!(c, 1,))
                    })
                    .await?;
                }
                Database::Postgres(pool) => {
                    use diesel_async::RunQueryDsl;
                    let mut conn = crate::db::checkout(pool).await?;
                    conn.transaction(async |c| statements!(c, 100, .await))
                        .await?;
                }
                Database::Mysql(pool) => {
                    use diesel_async::RunQueryDsl;
                    let mut conn = crate::db::checkout(pool).await?;
                    conn.transaction(async |c| statements!(c, 100, .await))
                        .await?;
                }
            }
            Ok(())
        }
        .await;
        result.map_err(PortError::from)
    }
}

impl Repo {
    /// Deletes request logs older than `cutoff`; returns how many.
    pub async fn delete_logs_before(&self, cutoff: NaiveDateTime) -> Result<usize, DbError> {
        use diesel_async::RunQueryDsl;
        Ok(with_conn!(&self.db, conn => {
            diesel::delete(request_logs::table.filter(request_logs::timestamp.lt(cutoff))).execute(conn).await?
        }))
    }
}
