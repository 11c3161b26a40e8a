//! Queries, written once in diesel's DSL and run on whichever backend is configured. Implements
//! the actors' ports ([`KeyRepo`], [`ConfigRepo`]) and the admin API's reads and writes.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use gpt_load_actors::domain::{
    GroupId, GroupRecord, HeaderRule, KeyId, KeySecret, KeyStatus, PoolKey, SubGroupLink,
};
use gpt_load_actors::ports::{ConfigRepo, KeyRepo, KeyWrite, PortError};

use super::models::{GroupRow, GroupValues, KeyRow, NewKey, NewSetting};
use super::schema::{api_keys, group_sub_groups, groups, system_settings};
use super::{Database, DbError};
use crate::crypto::KeyCodec;
use crate::{insert_batch, with_conn};

/// Rows per multi-row INSERT and per `IN (…)` list: far below every backend's parameter limit.
const CHUNK: usize = 500;

/// The current time as stored (UTC, no zone).
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

/// Data access for the whole service.
#[derive(Clone)]
pub struct Repo {
    pub db: Database,
    pub codec: KeyCodec,
}

/// Filters of a key listing.
#[derive(Clone, Debug, Default)]
pub struct KeyFilter {
    pub group_id: GroupId,
    pub status: Option<KeyStatus>,
    pub key_hash: Option<String>,
}

impl Repo {
    /// A repository over `db`.
    pub fn new(db: Database, codec: KeyCodec) -> Self {
        Self { db, codec }
    }

    // ---- settings -------------------------------------------------------------------------

    /// Stored settings as `key -> value`.
    pub async fn settings(&self) -> Result<HashMap<String, String>, DbError> {
        let rows: Vec<(String, String)> = with_conn!(&self.db, conn => {
            system_settings::table
                .select((system_settings::setting_key, system_settings::setting_value))
                .load(conn)
                .await?
        });
        Ok(rows.into_iter().collect())
    }

    /// Inserts the settings that have no row yet; existing values are never touched.
    pub async fn ensure_settings(
        &self,
        defaults: &[(String, String, String)],
    ) -> Result<usize, DbError> {
        let existing: HashSet<String> = self.settings().await?.into_keys().collect();
        let ts = now();
        let missing: Vec<NewSetting> = defaults
            .iter()
            .filter(|(key, _, _)| !existing.contains(key))
            .map(|(key, value, description)| NewSetting {
                setting_key: key.clone(),
                setting_value: value.clone(),
                description: description.clone(),
                created_at: ts,
                updated_at: ts,
            })
            .collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let count = missing.len();
        insert_batch!(&self.db, system_settings::table, missing)?;
        Ok(count)
    }

    /// Writes settings in one transaction (update, or insert when the row is missing).
    pub async fn update_settings(&self, values: Vec<(String, String)>) -> Result<(), DbError> {
        let ts = now();
        with_conn!(&self.db, conn => {
            conn.transaction(async |conn| {
                for (key, value) in &values {
                    let updated = diesel::update(system_settings::table.filter(system_settings::setting_key.eq(key)))
                        .set((system_settings::setting_value.eq(value), system_settings::updated_at.eq(ts)))
                        .execute(conn)
                        .await?;
                    if updated == 0 {
                        diesel::insert_into(system_settings::table)
                            .values(NewSetting {
                                setting_key: key.clone(),
                                setting_value: value.clone(),
                                description: String::new(),
                                created_at: ts,
                                updated_at: ts,
                            })
                            .execute(conn)
                            .await?;
                    }
                }
                Ok::<_, DbError>(())
            })
            .await
        })
    }

    // ---- groups ---------------------------------------------------------------------------

    /// All groups, `sort` ascending then newest first.
    pub async fn groups(&self) -> Result<Vec<GroupRow>, DbError> {
        Ok(with_conn!(&self.db, conn => {
            groups::table
                .select(GroupRow::as_select())
                .order((groups::sort.asc(), groups::id.desc()))
                .load(conn)
                .await?
        }))
    }

    /// One group by id.
    pub async fn group(&self, id: GroupId) -> Result<Option<GroupRow>, DbError> {
        Ok(with_conn!(&self.db, conn => {
            groups::table
                .find(id)
                .select(GroupRow::as_select())
                .first(conn)
                .await
                .optional()?
        }))
    }

    /// Inserts a group and returns it as stored. Name conflicts are [`DbError::Duplicate`].
    pub async fn insert_group(&self, values: GroupValues) -> Result<GroupRow, DbError> {
        let name = values.name.clone();
        let ts = values.updated_at;
        Ok(with_conn!(&self.db, conn => {
            diesel::insert_into(groups::table)
                .values((values, groups::created_at.eq(ts)))
                .execute(conn)
                .await?;
            groups::table
                .filter(groups::name.eq(&name))
                .select(GroupRow::as_select())
                .first(conn)
                .await?
        }))
    }

    /// Overwrites a group's writable columns.
    pub async fn update_group(
        &self,
        id: GroupId,
        values: GroupValues,
    ) -> Result<GroupRow, DbError> {
        Ok(with_conn!(&self.db, conn => {
            let n = diesel::update(groups::table.find(id)).set(values).execute(conn).await?;
            if n == 0 {
                return Err(DbError::NotFound);
            }
            groups::table.find(id).select(GroupRow::as_select()).first(conn).await?
        }))
    }

    /// Deletes a group, its keys and its aggregate memberships in one transaction. Request logs
    /// and hourly stats are kept.
    pub async fn delete_group(&self, id: GroupId) -> Result<(), DbError> {
        with_conn!(&self.db, conn => {
            conn.transaction(async |conn| {
                diesel::delete(
                    group_sub_groups::table
                        .filter(group_sub_groups::group_id.eq(id).or(group_sub_groups::sub_group_id.eq(id))),
                )
                .execute(conn)
                .await?;
                diesel::delete(api_keys::table.filter(api_keys::group_id.eq(id))).execute(conn).await?;
                let n = diesel::delete(groups::table.find(id)).execute(conn).await?;
                if n == 0 {
                    return Err(DbError::NotFound);
                }
                Ok::<_, DbError>(())
            })
            .await
        })
    }

    // ---- keys -----------------------------------------------------------------------------

    /// A page of keys, most recently used first (never-used keys last), and the total count.
    pub async fn keys_page(
        &self,
        filter: &KeyFilter,
        page: i64,
        page_size: i64,
    ) -> Result<(Vec<KeyRow>, i64), DbError> {
        let offset = (page - 1).max(0) * page_size;
        Ok(with_conn!(&self.db, conn => {
            let mut count = api_keys::table.filter(api_keys::group_id.eq(filter.group_id)).into_boxed();
            let mut list = api_keys::table.filter(api_keys::group_id.eq(filter.group_id)).into_boxed();
            if let Some(status) = filter.status {
                count = count.filter(api_keys::status.eq(status.as_str()));
                list = list.filter(api_keys::status.eq(status.as_str()));
            }
            if let Some(hash) = &filter.key_hash {
                count = count.filter(api_keys::key_hash.eq(hash.clone()));
                list = list.filter(api_keys::key_hash.eq(hash.clone()));
            }
            let total: i64 = count.count().get_result(conn).await?;
            // `IS NULL` first makes never-used keys sort last on every backend (PostgreSQL
            // would otherwise put NULLs first in a descending order).
            let rows = list
                .select(KeyRow::as_select())
                .order((api_keys::last_used_at.is_null().asc(), api_keys::last_used_at.desc(), api_keys::id.desc()))
                .limit(page_size)
                .offset(offset)
                .load(conn)
                .await?;
            (rows, total)
        }))
    }

    /// How many keys a group has.
    pub async fn count_keys(&self, group_id: GroupId) -> Result<i64, DbError> {
        Ok(with_conn!(&self.db, conn => {
            api_keys::table.filter(api_keys::group_id.eq(group_id)).count().get_result(conn).await?
        }))
    }

    /// Which of these hashes a group already holds.
    pub async fn existing_hashes(
        &self,
        group_id: GroupId,
        hashes: &[String],
    ) -> Result<HashSet<String>, DbError> {
        let mut found = HashSet::new();
        for chunk in hashes.chunks(CHUNK) {
            let rows: Vec<String> = with_conn!(&self.db, conn => {
                api_keys::table
                    .filter(api_keys::group_id.eq(group_id))
                    .filter(api_keys::key_hash.eq_any(chunk))
                    .select(api_keys::key_hash)
                    .load(conn)
                    .await?
            });
            found.extend(rows);
        }
        Ok(found)
    }

    /// Inserts new active keys (already deduplicated) and returns them with their ids.
    pub async fn insert_keys(
        &self,
        group_id: GroupId,
        plain: &[String],
    ) -> Result<Vec<PoolKey>, DbError> {
        let mut out = Vec::with_capacity(plain.len());
        for chunk in plain.chunks(CHUNK) {
            let ts = now();
            let hashes: Vec<String> = chunk.iter().map(|k| self.codec.hash(k)).collect();
            let rows: Vec<NewKey> = chunk
                .iter()
                .zip(&hashes)
                .map(|(key, hash)| {
                    Ok(NewKey {
                        key_value: self.codec.encode(key)?,
                        key_hash: hash.clone(),
                        group_id,
                        status: KeyStatus::Active.as_str().to_string(),
                        notes: String::new(),
                        request_count: 0,
                        failure_count: 0,
                        created_at: ts,
                        updated_at: ts,
                    })
                })
                .collect::<Result<_, DbError>>()?;
            insert_batch!(&self.db, api_keys::table, rows)?;
            let ids: Vec<(i64, String)> = with_conn!(&self.db, conn => {
                api_keys::table
                    .filter(api_keys::group_id.eq(group_id))
                    .filter(api_keys::key_hash.eq_any(&hashes))
                    .select((api_keys::id, api_keys::key_hash))
                    .load(conn)
                    .await?
            });
            let by_hash: HashMap<&str, &String> =
                hashes.iter().map(String::as_str).zip(chunk).collect();
            for (id, hash) in ids {
                if let Some(plain) = by_hash.get(hash.as_str()) {
                    out.push(PoolKey {
                        id,
                        group_id,
                        secret: KeySecret::new((*plain).clone()),
                        status: KeyStatus::Active,
                        failure_count: 0,
                    });
                }
            }
        }
        // Pool rings follow id order, so keys rotate in the order they were imported.
        out.sort_by_key(|k| k.id);
        Ok(out)
    }

    /// Deletes a group's keys with these hashes; returns the ids removed.
    pub async fn delete_keys_by_hash(
        &self,
        group_id: GroupId,
        hashes: &[String],
    ) -> Result<Vec<KeyId>, DbError> {
        let mut removed = Vec::new();
        for chunk in hashes.chunks(CHUNK) {
            let ids: Vec<i64> = with_conn!(&self.db, conn => {
                conn.transaction(async |conn| {
                    let ids: Vec<i64> = api_keys::table
                        .filter(api_keys::group_id.eq(group_id))
                        .filter(api_keys::key_hash.eq_any(chunk))
                        .select(api_keys::id)
                        .load(conn)
                        .await?;
                    diesel::delete(api_keys::table.filter(api_keys::id.eq_any(&ids))).execute(conn).await?;
                    Ok::<_, DbError>(ids)
                })
                .await?
            });
            removed.extend(ids);
        }
        Ok(removed)
    }

    fn pool_key(&self, row: KeyRow) -> Option<PoolKey> {
        match self.codec.decode(&row.key_value) {
            Ok(secret) => Some(PoolKey {
                id: row.id,
                group_id: row.group_id,
                secret,
                status: KeyStatus::parse(&row.status),
                failure_count: row.failure_count,
            }),
            Err(_) => {
                tracing::warn!(key_id = row.id, "Skipping a key that cannot be decrypted.");
                None
            }
        }
    }
}

/// Parses a group row's JSON columns into the domain record.
pub fn group_record(row: &GroupRow) -> GroupRecord {
    let json = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text).unwrap_or(serde_json::Value::Null)
    };
    let object = |text: &str| match json(text) {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    GroupRecord {
        id: row.id,
        name: row.name.clone(),
        display_name: row.display_name.clone(),
        description: row.description.clone(),
        group_type: row.group_type.clone(),
        upstreams: match json(&row.upstreams) {
            serde_json::Value::Null => serde_json::Value::Array(Vec::new()),
            other => other,
        },
        channel_type: row.channel_type.clone(),
        sort: i64::from(row.sort),
        test_model: row.test_model.clone(),
        validation_endpoint: row.validation_endpoint.clone(),
        param_overrides: match json(&row.param_overrides) {
            serde_json::Value::Null => serde_json::Value::Object(serde_json::Map::new()),
            other => other,
        },
        config: object(&row.config),
        header_rules: serde_json::from_str::<Vec<HeaderRule>>(&row.header_rules)
            .unwrap_or_default(),
        model_redirect_rules: object(&row.model_redirect_rules),
        model_redirect_strict: row.model_redirect_strict,
        proxy_keys: row.proxy_keys.clone(),
        last_validated_at: row.last_validated_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

#[async_trait]
impl KeyRepo for Repo {
    async fn load_keys(&self, group_id: Option<GroupId>) -> Result<Vec<PoolKey>, PortError> {
        let rows: Vec<KeyRow> = async {
            Ok::<_, DbError>(with_conn!(&self.db, conn => {
                let mut query = api_keys::table.select(KeyRow::as_select()).into_boxed();
                if let Some(gid) = group_id {
                    query = query.filter(api_keys::group_id.eq(gid));
                }
                query.order(api_keys::id.asc()).load(conn).await?
            }))
        }
        .await
        .map_err(PortError::from)?;
        Ok(rows
            .into_iter()
            .filter_map(|row| self.pool_key(row))
            .collect())
    }

    async fn save_key_health(
        &self,
        key_id: KeyId,
        status: KeyStatus,
        failure_count: i64,
    ) -> Result<(), PortError> {
        async {
            with_conn!(&self.db, conn => {
                // A disabled key is the operator's: a pool write racing the change must not
                // undo it.
                diesel::update(
                    api_keys::table
                        .find(key_id)
                        .filter(api_keys::status.ne(KeyStatus::Disabled.as_str())),
                )
                    .set((
                        api_keys::status.eq(status.as_str()),
                        api_keys::failure_count.eq(failure_count),
                        api_keys::updated_at.eq(now()),
                    ))
                    .execute(conn)
                    .await?
            });
            Ok::<_, DbError>(())
        }
        .await
        .map_err(PortError::from)
    }

    async fn apply_key_write(&self, write: &KeyWrite) -> Result<Vec<KeyId>, PortError> {
        Repo::apply_key_write(self, write)
            .await
            .map_err(PortError::from)
    }
}

#[async_trait]
impl ConfigRepo for Repo {
    async fn load_groups(&self) -> Result<Vec<GroupRecord>, PortError> {
        let rows = self.groups().await.map_err(PortError::from)?;
        Ok(rows.iter().map(group_record).collect())
    }

    async fn load_settings(&self) -> Result<HashMap<String, String>, PortError> {
        self.settings().await.map_err(PortError::from)
    }

    async fn load_sub_groups(&self) -> Result<Vec<SubGroupLink>, PortError> {
        let rows: Vec<(i64, i64, super::compat::Int32)> = async {
            Ok::<_, DbError>(with_conn!(&self.db, conn => {
                group_sub_groups::table
                    .select((group_sub_groups::group_id, group_sub_groups::sub_group_id, group_sub_groups::weight))
                    .load(conn)
                    .await?
            }))
        }
        .await
        .map_err(PortError::from)?;
        Ok(rows
            .into_iter()
            .map(|(group_id, sub_group_id, weight)| SubGroupLink {
                group_id,
                sub_group_id,
                weight: i64::from(weight.0),
            })
            .collect())
    }
}

impl Repo {
    /// How many aggregate groups list this group as a member.
    pub async fn parent_aggregate_count(&self, group_id: GroupId) -> Result<i64, DbError> {
        Ok(with_conn!(&self.db, conn => {
            group_sub_groups::table
                .filter(group_sub_groups::sub_group_id.eq(group_id))
                .count()
                .get_result(conn)
                .await?
        }))
    }
}

impl Repo {
    /// Adds members to an aggregate group with their weights.
    pub async fn add_sub_groups(
        &self,
        aggregate: GroupId,
        members: &[(GroupId, i32)],
    ) -> Result<(), DbError> {
        let ts = now();
        let rows: Vec<_> = members
            .iter()
            .map(|&(sub, weight)| {
                (
                    group_sub_groups::group_id.eq(aggregate),
                    group_sub_groups::sub_group_id.eq(sub),
                    group_sub_groups::weight.eq(weight),
                    group_sub_groups::created_at.eq(ts),
                    group_sub_groups::updated_at.eq(ts),
                )
            })
            .collect();
        insert_batch!(&self.db, group_sub_groups::table, rows)?;
        Ok(())
    }
}
