//! Group operations beyond create/update/delete: bulk reordering and copying a group with its
//! keys, each in one transaction.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel::IntoSql;
use diesel_async::RunQueryDsl;
use gpt_load_actors::domain::{GroupId, KeyStatus};

use super::models::{GroupRow, GroupValues};
use super::repo::{now, Repo};
use super::schema::{api_keys, groups};
use super::DbError;
use crate::{with_conn, with_write_tx};

/// Which keys a group copy takes along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyKeys {
    None,
    ValidOnly,
    All,
}

impl Repo {
    /// Stores when a group's invalid keys were last validated in the background (leaves
    /// `updated_at` alone: validation is not an edit).
    pub async fn mark_group_validated(
        &self,
        group_id: GroupId,
        at: chrono::NaiveDateTime,
    ) -> Result<(), DbError> {
        with_conn!(&self.db, conn => {
            diesel::update(groups::table.find(group_id))
                .set(groups::last_validated_at.eq(Some(at)))
                .execute(conn)
                .await?
        });
        Ok(())
    }

    /// Sets `sort` of several groups at once. Nothing is written when an id does not exist;
    /// that id is returned instead.
    pub async fn reorder_groups(
        &self,
        items: &[(GroupId, i32)],
    ) -> Result<Option<GroupId>, DbError> {
        let ts = now();
        with_write_tx!(&self.db, conn => {
                let ids: Vec<GroupId> = items.iter().map(|(id, _)| *id).collect();
                let existing: Vec<GroupId> = groups::table
                    .filter(groups::id.eq_any(&ids))
                    .select(groups::id)
                    .load(conn)
                    .await?;
                if let Some(missing) = ids.iter().find(|id| !existing.contains(id)) {
                    return Ok::<_, DbError>(Some(*missing));
                }
                for (id, sort) in items {
                    diesel::update(groups::table.find(*id))
                        .set((groups::sort.eq(*sort), groups::updated_at.eq(ts)))
                        .execute(conn)
                        .await?;
                }
                Ok(None)
        })
    }

    /// Every group name, for picking a free copy name.
    pub async fn group_names(&self) -> Result<Vec<String>, DbError> {
        Ok(with_conn!(&self.db, conn => {
            groups::table.select(groups::name).load(conn).await?
        }))
    }

    /// Inserts `values` as a new group and copies the keys of `source` into it (fresh: active,
    /// no failures, no usage, no notes) in one transaction. Returns the new group and the number
    /// of keys copied.
    pub async fn copy_group(
        &self,
        source: GroupId,
        values: GroupValues,
        keys: CopyKeys,
    ) -> Result<(GroupRow, usize), DbError> {
        let name = values.name.clone();
        let ts = values.updated_at;
        with_write_tx!(&self.db, conn => {
                diesel::insert_into(groups::table)
                    .values((values, groups::created_at.eq(ts)))
                    .execute(conn)
                    .await?;
                let row: GroupRow = groups::table
                    .filter(groups::name.eq(&name))
                    .select(GroupRow::as_select())
                    .first(conn)
                    .await?;
                let columns = (
                    api_keys::key_value,
                    api_keys::key_hash,
                    api_keys::group_id,
                    api_keys::status,
                    api_keys::notes,
                    api_keys::request_count,
                    api_keys::failure_count,
                    api_keys::created_at,
                    api_keys::updated_at,
                );
                let select = (
                    api_keys::key_value,
                    api_keys::key_hash,
                    row.id.into_sql::<BigInt>(),
                    KeyStatus::Active.as_str().into_sql::<Text>(),
                    "".into_sql::<Text>(),
                    0i64.into_sql::<BigInt>(),
                    0i64.into_sql::<BigInt>(),
                    ts.into_sql::<Timestamp>(),
                    ts.into_sql::<Timestamp>(),
                );
                let copied = match keys {
                    CopyKeys::None => 0,
                    CopyKeys::All => {
                        diesel::insert_into(api_keys::table)
                            .values(api_keys::table.filter(api_keys::group_id.eq(source)).select(select))
                            .into_columns(columns)
                            .execute(conn)
                            .await?
                    }
                    CopyKeys::ValidOnly => {
                        diesel::insert_into(api_keys::table)
                            .values(
                                api_keys::table
                                    .filter(api_keys::group_id.eq(source))
                                    .filter(api_keys::status.eq(KeyStatus::Active.as_str()))
                                    .select(select),
                            )
                            .into_columns(columns)
                            .execute(conn)
                            .await?
                    }
                };
                Ok::<_, DbError>((row, copied))
        })
    }
}
