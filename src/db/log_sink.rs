//! The request-log writer: one transaction per batch with the rows, successful keys' usage
//! counters and the hourly statistics, on every backend.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{NaiveDateTime, Timelike};
use diesel::{ExpressionMethods, Insertable, QueryDsl};
use diesel_async::AsyncConnection;
use gpt_load_actors::domain::{GroupId, KeyId, RequestRecord, RequestType};
use gpt_load_actors::ports::{LogSink, PortError};

use super::repo::{now, Repo};
use super::schema::{api_keys, group_hourly_stats, request_logs};
use super::{Database, DbError};
use crate::with_conn;

/// A `request_logs` row to insert.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = request_logs)]
struct NewRequestLog {
    id: String,
    timestamp: NaiveDateTime,
    group_id: i64,
    group_name: String,
    parent_group_id: i64,
    parent_group_name: String,
    key_value: String,
    key_hash: String,
    model: String,
    is_success: bool,
    source_ip: String,
    status_code: i32,
    request_path: String,
    duration: i64,
    error_message: String,
    user_agent: String,
    request_type: String,
    upstream_addr: String,
    is_stream: bool,
    request_body: String,
}

/// Successes and failures of one group in one hour.
#[derive(Default)]
struct HourCount {
    success: i64,
    failure: i64,
}

fn hour_of(t: NaiveDateTime) -> NaiveDateTime {
    t.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

impl Repo {
    /// The row of a record; with `ENCRYPTION_KEY` its key is encrypted (fresh nonce per row) and
    /// hashed with the keyed hash, like `api_keys`.
    fn log_row(&self, r: &RequestRecord) -> Result<NewRequestLog, crate::crypto::EncodeError> {
        let (key_value, key_hash) = match &r.key {
            Some(key) => (
                self.codec.encode(key.expose())?,
                self.codec.hash(key.expose()),
            ),
            None => (String::new(), String::new()),
        };
        Ok(NewRequestLog {
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
        let rows: Vec<NewRequestLog> = records
            .iter()
            .map(|r| self.log_row(r))
            .collect::<Result<_, _>>()
            .map_err(|e| PortError(e.to_string()))?;
        let mut usage: HashMap<KeyId, (i64, NaiveDateTime)> = HashMap::new();
        let mut hours: HashMap<(NaiveDateTime, GroupId), HourCount> = HashMap::new();
        for r in records {
            if r.is_success {
                if let Some(id) = r.key_id {
                    let entry = usage.entry(id).or_insert((0, r.timestamp));
                    entry.0 += 1;
                    entry.1 = entry.1.max(r.timestamp);
                }
            }
            if r.request_type == RequestType::Retry {
                continue;
            }
            let hour = hour_of(r.timestamp);
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
            ($conn:ident, $($aw:tt)*) => {{
                for chunk in rows.chunks(100) {
                    diesel::insert_into(request_logs::table).values(chunk.to_vec()).execute($conn) $($aw)* ?;
                }
                for (id, (n, last)) in &usage {
                    diesel::update(api_keys::table.find(*id))
                        .set((api_keys::request_count.eq(api_keys::request_count + *n), api_keys::last_used_at.eq(*last)))
                        .execute($conn) $($aw)* ?;
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
                        diesel::Connection::transaction(c, |c| statements!(c,))
                    })
                    .await?;
                }
                Database::Postgres(pool) => {
                    use diesel_async::RunQueryDsl;
                    let mut conn = crate::db::checkout(pool).await?;
                    conn.transaction(async |c| statements!(c, .await)).await?;
                }
                Database::Mysql(pool) => {
                    use diesel_async::RunQueryDsl;
                    let mut conn = crate::db::checkout(pool).await?;
                    conn.transaction(async |c| statements!(c, .await)).await?;
                }
            }
            Ok(())
        }
        .await;
        result.map_err(|e| PortError(e.to_string()))
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
