//! Token usage reads: the hourly sums by group, model and proxy key (`usage_hourly_stats`), hourly
//! sums per upstream key computed from the retained request logs, and retention of the sums.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel_async::RunQueryDsl;
use gpt_load_actors::domain::GroupId;

use super::repo::Repo;
use super::schema::{api_keys, usage_hourly_stats};
use super::{Database, DbError};
use crate::with_conn;

/// Token sums of a set of final requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TokenSums {
    /// Final requests counted.
    pub requests: i64,
    /// Those whose upstream reported usage.
    pub known_requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub cached_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
}

impl TokenSums {
    /// Adds `other` to these sums.
    pub fn add(&mut self, other: &TokenSums) {
        self.requests += other.requests;
        self.known_requests += other.known_requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.total_tokens += other.total_tokens;
        self.cached_tokens += other.cached_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
    }
}

/// One `usage_hourly_stats` bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageHour {
    pub time: NaiveDateTime,
    pub group_id: GroupId,
    pub model: String,
    pub proxy_key: String,
    pub sums: TokenSums,
}

type UsageTuple = (
    NaiveDateTime,
    i64,
    String,
    String,
    (i64, i64, i64, i64, i64, i64, i64, i64),
);

impl From<UsageTuple> for UsageHour {
    fn from((time, group_id, model, proxy_key, s): UsageTuple) -> Self {
        UsageHour {
            time,
            group_id,
            model,
            proxy_key,
            sums: TokenSums {
                requests: s.0,
                known_requests: s.1,
                input_tokens: s.2,
                output_tokens: s.3,
                total_tokens: s.4,
                cached_tokens: s.5,
                cache_write_tokens: s.6,
                reasoning_tokens: s.7,
            },
        }
    }
}

/// Hourly sums of one upstream key, from the request logs.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct KeyUsageHour {
    /// `YYYY-MM-DD HH:00:00`, UTC.
    #[diesel(sql_type = Text)]
    pub hour: String,
    #[diesel(sql_type = Text)]
    pub key_hash: String,
    #[diesel(sql_type = BigInt)]
    pub group_id: i64,
    #[diesel(sql_type = BigInt)]
    pub requests: i64,
    #[diesel(sql_type = BigInt)]
    pub known_requests: i64,
    #[diesel(sql_type = BigInt)]
    pub input_tokens: i64,
    #[diesel(sql_type = BigInt)]
    pub output_tokens: i64,
    #[diesel(sql_type = BigInt)]
    pub total_tokens: i64,
    #[diesel(sql_type = BigInt)]
    pub cached_tokens: i64,
    #[diesel(sql_type = BigInt)]
    pub cache_write_tokens: i64,
    #[diesel(sql_type = BigInt)]
    pub reasoning_tokens: i64,
}

impl KeyUsageHour {
    /// The sums of this bucket.
    pub fn sums(&self) -> TokenSums {
        TokenSums {
            requests: self.requests,
            known_requests: self.known_requests,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            total_tokens: self.total_tokens,
            cached_tokens: self.cached_tokens,
            cache_write_tokens: self.cache_write_tokens,
            reasoning_tokens: self.reasoning_tokens,
        }
    }
}

/// The per-key query: the hour expression, placeholders and integer cast differ per dialect.
fn key_usage_sql(hour: &str, int: &str, from: &str, to: &str, ts: &str) -> String {
    let sum = |c: &str| format!("CAST(COALESCE(SUM({c}), 0) AS {int}) AS {c}");
    format!(
        "SELECT {hour} AS hour, key_hash, CAST(MAX(group_id) AS {int}) AS group_id, \
         CAST(COUNT(*) AS {int}) AS requests, CAST(COUNT(total_tokens) AS {int}) AS known_requests, \
         {}, {}, {}, {}, {}, {} FROM request_logs \
         WHERE {ts} >= {from} AND {ts} < {to} AND request_type = 'final' AND key_hash <> '' \
         GROUP BY {hour}, key_hash",
        sum("input_tokens"),
        sum("output_tokens"),
        sum("total_tokens"),
        sum("cached_tokens"),
        sum("cache_write_tokens"),
        sum("reasoning_tokens"),
    )
}

impl Repo {
    /// Hourly buckets with `from <= time < to`, of the listed groups or of all.
    pub async fn usage_hours(
        &self,
        from: NaiveDateTime,
        to: NaiveDateTime,
        group_ids: Option<&[GroupId]>,
    ) -> Result<Vec<UsageHour>, DbError> {
        use usage_hourly_stats as u;
        let rows: Vec<UsageTuple> = with_conn!(&self.db, conn => {
            let mut query = u::table
                .filter(u::time.ge(from))
                .filter(u::time.lt(to))
                .select((u::time, u::group_id, u::model, u::proxy_key, (
                    u::requests, u::known_requests, u::input_tokens, u::output_tokens,
                    u::total_tokens, u::cached_tokens, u::cache_write_tokens, u::reasoning_tokens,
                )))
                .into_boxed();
            if let Some(ids) = group_ids {
                query = query.filter(u::group_id.eq_any(ids));
            }
            query.load(conn).await?
        });
        Ok(rows.into_iter().map(UsageHour::from).collect())
    }

    /// Hourly sums per upstream key of the final requests logged with `from <= timestamp < to`
    /// (only as far back as request logs are kept).
    pub async fn key_usage_hours(
        &self,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> Result<Vec<KeyUsageHour>, DbError> {
        Ok(match &self.db {
            Database::Sqlite(_) => {
                let sql = key_usage_sql(
                    "strftime('%Y-%m-%d %H:00:00', \"timestamp\")",
                    "BIGINT",
                    "?",
                    "?",
                    "\"timestamp\"",
                );
                with_conn!(&self.db, conn => {
                    diesel::sql_query(sql).bind::<Timestamp, _>(from).bind::<Timestamp, _>(to).load(conn).await?
                })
            }
            Database::Postgres(_) => {
                let sql = key_usage_sql(
                    "to_char(date_trunc('hour', \"timestamp\"), 'YYYY-MM-DD HH24:00:00')",
                    "BIGINT",
                    "$1",
                    "$2",
                    "\"timestamp\"",
                );
                with_conn!(&self.db, conn => {
                    diesel::sql_query(sql).bind::<Timestamp, _>(from).bind::<Timestamp, _>(to).load(conn).await?
                })
            }
            Database::Mysql(_) => {
                let sql = key_usage_sql(
                    "DATE_FORMAT(`timestamp`, '%Y-%m-%d %H:00:00')",
                    "SIGNED",
                    "?",
                    "?",
                    "`timestamp`",
                );
                with_conn!(&self.db, conn => {
                    diesel::sql_query(sql).bind::<Timestamp, _>(from).bind::<Timestamp, _>(to).load(conn).await?
                })
            }
        })
    }

    /// `(id, key_hash, stored key_value)` of the keys with these hashes.
    pub async fn keys_by_hash(
        &self,
        hashes: &[String],
    ) -> Result<Vec<(i64, String, String)>, DbError> {
        let mut found = Vec::new();
        for chunk in hashes.chunks(500) {
            let rows: Vec<(i64, String, String)> = with_conn!(&self.db, conn => {
                api_keys::table
                    .filter(api_keys::key_hash.eq_any(chunk))
                    .select((api_keys::id, api_keys::key_hash, api_keys::key_value))
                    .load(conn)
                    .await?
            });
            found.extend(rows);
        }
        Ok(found)
    }

    /// Deletes hourly token sums older than `cutoff`; returns how many.
    pub async fn delete_usage_before(&self, cutoff: NaiveDateTime) -> Result<usize, DbError> {
        Ok(with_conn!(&self.db, conn => {
            diesel::delete(usage_hourly_stats::table.filter(usage_hourly_stats::time.lt(cutoff))).execute(conn).await?
        }))
    }
}
