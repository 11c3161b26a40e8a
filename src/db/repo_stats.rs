//! Hourly request statistics (`group_hourly_stats`): reads for group stats and the dashboard,
//! plus a batch insert (used by tests now and by the log writer).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use gpt_load_actors::domain::GroupId;

use super::repo::Repo;
use super::schema::group_hourly_stats;
use super::DbError;
use crate::{insert_batch, with_conn};

/// One hour bucket of one group.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Insertable)]
#[diesel(table_name = group_hourly_stats)]
pub struct HourlyStat {
    /// Start of the hour (UTC).
    pub time: NaiveDateTime,
    pub group_id: i64,
    pub success_count: i64,
    pub failure_count: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Repo {
    /// Inserts hour buckets (each `(time, group_id)` at most once).
    pub async fn insert_hourly_stats(&self, rows: Vec<HourlyStat>) -> Result<(), DbError> {
        for chunk in rows.chunks(500) {
            insert_batch!(&self.db, group_hourly_stats::table, chunk.to_vec())?;
        }
        Ok(())
    }

    /// Hour buckets with `from <= time < to`, of the listed groups or of all groups.
    pub async fn hourly_stats(
        &self,
        from: NaiveDateTime,
        to: NaiveDateTime,
        group_ids: Option<&[GroupId]>,
    ) -> Result<Vec<HourlyStat>, DbError> {
        Ok(with_conn!(&self.db, conn => {
            let mut query = group_hourly_stats::table
                .filter(group_hourly_stats::time.ge(from))
                .filter(group_hourly_stats::time.lt(to))
                .select((
                    group_hourly_stats::time,
                    group_hourly_stats::group_id,
                    group_hourly_stats::success_count,
                    group_hourly_stats::failure_count,
                    group_hourly_stats::created_at,
                    group_hourly_stats::updated_at,
                ))
                .into_boxed();
            if let Some(ids) = group_ids {
                query = query.filter(group_hourly_stats::group_id.eq_any(ids));
            }
            query.load(conn).await?
        }))
    }
}
