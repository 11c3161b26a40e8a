//! Aggregate membership (`group_sub_groups`): which standard groups an aggregate forwards to,
//! with what weight. (Adding members lives in `repo.rs`, next to the registry's loader.)

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use gpt_load_actors::domain::GroupId;

use super::compat::Int32;
use super::models::GroupRow;
use super::repo::{now, Repo};
use super::schema::{group_sub_groups, groups};
use super::DbError;
use crate::with_conn;

impl Repo {
    /// `(member id, weight)` of an aggregate, in insertion order.
    pub async fn sub_group_links(
        &self,
        aggregate: GroupId,
    ) -> Result<Vec<(GroupId, i32)>, DbError> {
        let rows: Vec<(GroupId, Int32)> = with_conn!(&self.db, conn => {
            group_sub_groups::table
                .filter(group_sub_groups::group_id.eq(aggregate))
                .select((group_sub_groups::sub_group_id, group_sub_groups::weight))
                .order(group_sub_groups::id.asc())
                .load(conn)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, weight)| (id, weight.0))
            .collect())
    }

    /// `(aggregate id, weight)` of every aggregate that lists this group.
    pub async fn parent_links(&self, member: GroupId) -> Result<Vec<(GroupId, i32)>, DbError> {
        let rows: Vec<(GroupId, Int32)> = with_conn!(&self.db, conn => {
            group_sub_groups::table
                .filter(group_sub_groups::sub_group_id.eq(member))
                .select((group_sub_groups::group_id, group_sub_groups::weight))
                .order(group_sub_groups::id.asc())
                .load(conn)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, weight)| (id, weight.0))
            .collect())
    }

    /// Groups by id, in the order of `ids` (unknown ids are skipped).
    pub async fn groups_by_ids(&self, ids: &[GroupId]) -> Result<Vec<GroupRow>, DbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<GroupRow> = with_conn!(&self.db, conn => {
            groups::table
                .filter(groups::id.eq_any(ids))
                .select(GroupRow::as_select())
                .load(conn)
                .await?
        });
        Ok(ids
            .iter()
            .filter_map(|id| rows.iter().find(|r| r.id == *id).cloned())
            .collect())
    }

    /// Changes a member's weight; false when it is not a member.
    pub async fn set_sub_group_weight(
        &self,
        aggregate: GroupId,
        member: GroupId,
        weight: i32,
    ) -> Result<bool, DbError> {
        let n = with_conn!(&self.db, conn => {
            diesel::update(
                group_sub_groups::table
                    .filter(group_sub_groups::group_id.eq(aggregate))
                    .filter(group_sub_groups::sub_group_id.eq(member)),
            )
            .set((group_sub_groups::weight.eq(weight), group_sub_groups::updated_at.eq(now())))
            .execute(conn)
            .await?
        });
        Ok(n > 0)
    }

    /// Removes a member; false when it is not a member.
    pub async fn remove_sub_group(
        &self,
        aggregate: GroupId,
        member: GroupId,
    ) -> Result<bool, DbError> {
        let n = with_conn!(&self.db, conn => {
            diesel::delete(
                group_sub_groups::table
                    .filter(group_sub_groups::group_id.eq(aggregate))
                    .filter(group_sub_groups::sub_group_id.eq(member)),
            )
            .execute(conn)
            .await?
        });
        Ok(n > 0)
    }
}
