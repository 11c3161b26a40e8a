//! Key queries of the admin API beyond add/list/delete: lookups by hash, notes, restore, clear,
//! export batches, operator status changes and counts.

use std::collections::{HashMap, HashSet};

use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use gpt_load_actors::domain::{GroupId, KeyId, KeySecret, KeyStatus, PoolKey};

use super::models::{KeyRow, NewKey};
use super::repo::{now, Repo};
use super::schema::api_keys;
use super::Database;
use super::DbError;
use crate::{with_conn, with_write_tx};

/// Rows per `IN (…)` list: far below every backend's parameter limit.
const BATCH: usize = 500;

/// Key counts of one group by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyCounts {
    pub total: i64,
    pub active: i64,
    pub invalid: i64,
    pub disabled: i64,
}

impl KeyCounts {
    fn add(&mut self, status: &str, n: i64) {
        self.total += n;
        match KeyStatus::parse(status) {
            KeyStatus::Active => self.active += n,
            KeyStatus::Invalid => self.invalid += n,
            KeyStatus::Disabled => self.disabled += n,
        }
    }
}

/// The SQLite arm of [`Repo::import_keys`], on diesel's synchronous API (kept in its own module
/// so its `RunQueryDsl` does not clash with diesel-async's).
mod sqlite_import {
    use std::collections::HashSet;

    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use gpt_load_actors::domain::{GroupId, KeyId};

    use super::BATCH;
    use crate::db::models::NewKey;
    use crate::db::schema::api_keys;

    /// Existing hashes, insert of the rest, read-back of their ids: one import chunk, written with
    /// diesel's synchronous API because SQLite's multi-row insert only exists there.
    pub(super) fn import_sync(
        conn: &mut diesel::SqliteConnection,
        group_id: GroupId,
        rows: Vec<NewKey>,
    ) -> QueryResult<Vec<(KeyId, String)>> {
        // A bulk insert into five indexes touches far more pages than SQLite's default 2,000-page
        // cache holds; re-reading them from the OS dominated import time. Enlarged for the chunk
        // only, so idle pooled connections keep the default footprint.
        conn.batch_execute("PRAGMA cache_size = -65536")?;
        let result = conn.immediate_transaction(|conn| {
            let hashes: Vec<String> = rows.iter().map(|r| r.key_hash.clone()).collect();
            let mut existing = HashSet::new();
            for chunk in hashes.chunks(BATCH) {
                let found: Vec<String> = api_keys::table
                    .filter(api_keys::group_id.eq(group_id))
                    .filter(api_keys::key_hash.eq_any(chunk))
                    .select(api_keys::key_hash)
                    .load(conn)?;
                existing.extend(found);
            }
            let fresh: Vec<NewKey> = rows
                .into_iter()
                .filter(|r| !existing.contains(&r.key_hash))
                .collect();
            let mut ids = Vec::with_capacity(fresh.len());
            for chunk in fresh.chunks(BATCH) {
                diesel::insert_into(api_keys::table)
                    .values(chunk)
                    .execute(conn)?;
                let hashes: Vec<&str> = chunk.iter().map(|r| r.key_hash.as_str()).collect();
                let inserted: Vec<(KeyId, String)> = api_keys::table
                    .filter(api_keys::group_id.eq(group_id))
                    .filter(api_keys::key_hash.eq_any(hashes))
                    .select((api_keys::id, api_keys::key_hash))
                    .load(conn)?;
                ids.extend(inserted);
            }
            Ok(ids)
        });
        conn.batch_execute("PRAGMA cache_size = -2000")?;
        result
    }
}

/// The same chunk on the asynchronous backends.
macro_rules! import_async {
    ($conn:expr, $group_id:expr, $rows:expr) => {{
        let group_id = $group_id;
        let rows: Vec<NewKey> = $rows;
        $conn
            .transaction(async |conn| {
                let hashes: Vec<String> = rows.iter().map(|r| r.key_hash.clone()).collect();
                let mut existing = HashSet::new();
                // Looked up by hash alone, the group checked here: with `group_id = ?` in the
                // query, PostgreSQL planned a fresh table's lookups through the group index and
                // compared every key of the group against the whole array, which made a
                // 100k-key import quadratic (over 120 s).
                for chunk in hashes.chunks(BATCH) {
                    let found: Vec<(GroupId, String)> = api_keys::table
                        .filter(api_keys::key_hash.eq_any(chunk))
                        .select((api_keys::group_id, api_keys::key_hash))
                        .load(conn)
                        .await?;
                    existing.extend(
                        found
                            .into_iter()
                            .filter(|(g, _)| *g == group_id)
                            .map(|(_, h)| h),
                    );
                }
                let fresh: Vec<NewKey> = rows
                    .into_iter()
                    .filter(|r| !existing.contains(&r.key_hash))
                    .collect();
                let mut ids = Vec::with_capacity(fresh.len());
                for chunk in fresh.chunks(BATCH) {
                    diesel::insert_into(api_keys::table)
                        .values(chunk)
                        .execute(conn)
                        .await?;
                    let hashes: Vec<&str> = chunk.iter().map(|r| r.key_hash.as_str()).collect();
                    let inserted: Vec<(GroupId, KeyId, String)> = api_keys::table
                        .filter(api_keys::key_hash.eq_any(hashes))
                        .select((api_keys::group_id, api_keys::id, api_keys::key_hash))
                        .load(conn)
                        .await?;
                    ids.extend(
                        inserted
                            .into_iter()
                            .filter(|(g, _, _)| *g == group_id)
                            .map(|(_, id, hash)| (id, hash)),
                    );
                }
                Ok::<_, DbError>(ids)
            })
            .await
    }};
}

impl Repo {
    /// Adds the keys (plain text, already unique) the group does not hold yet, in ONE
    /// transaction: either all of them are stored or none. Returns the added keys, in id order,
    /// ready for the pool.
    ///
    /// One transaction per few thousand keys is also what makes bulk imports fast on SQLite:
    /// every commit rewrites each index page it touched, and random key hashes touch a different
    /// page per key, so many small commits write the same pages over and over.
    pub async fn import_keys(
        &self,
        group_id: GroupId,
        plain: Vec<String>,
    ) -> Result<Vec<PoolKey>, DbError> {
        let ts = now();
        let hashed: Vec<(String, String)> = plain
            .into_iter()
            .map(|key| {
                let hash = self.codec.hash(&key);
                (key, hash)
            })
            .collect();
        let rows: Vec<NewKey> = hashed
            .iter()
            .map(|(key, hash)| -> Result<NewKey, DbError> {
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
            .collect::<Result<_, _>>()?;
        let ids: Vec<(KeyId, String)> = match &self.db {
            Database::Sqlite(pool) => {
                let mut conn = crate::db::checkout(pool).await?;
                conn.spawn_blocking(move |c| sqlite_import::import_sync(c, group_id, rows))
                    .await
                    .map_err(DbError::from)?
            }
            Database::Postgres(pool) => {
                let mut conn = crate::db::checkout(pool).await?;
                let ids = import_async!(conn, group_id, rows)?;
                // A bulk import grows the table faster than autovacuum re-reads its statistics;
                // planned on an "empty" table, the next chunk's hash lookups became sequential
                // scans (a 100k-key import took a minute instead of seconds). PostgreSQL's own
                // advice after a bulk load: ANALYZE.
                diesel::sql_query("ANALYZE api_keys")
                    .execute(&mut conn)
                    .await?;
                ids
            }
            Database::Mysql(pool) => {
                let mut conn = crate::db::checkout(pool).await?;
                import_async!(conn, group_id, rows)?
            }
        };
        let by_hash: HashMap<String, String> =
            hashed.into_iter().map(|(key, hash)| (hash, key)).collect();
        let mut keys: Vec<PoolKey> = ids
            .into_iter()
            .filter_map(|(id, hash)| {
                by_hash.get(&hash).map(|plain| PoolKey {
                    id,
                    group_id,
                    secret: KeySecret::new(plain.clone()),
                    status: KeyStatus::Active,
                    failure_count: 0,
                })
            })
            .collect();
        keys.sort_by_key(|k| k.id);
        Ok(keys)
    }

    /// The group's keys whose hash is one of `hashes`.
    pub async fn keys_by_hashes(
        &self,
        group_id: GroupId,
        hashes: &[String],
    ) -> Result<Vec<KeyRow>, DbError> {
        let mut out = Vec::new();
        for chunk in hashes.chunks(BATCH) {
            let rows: Vec<KeyRow> = with_conn!(&self.db, conn => {
                api_keys::table
                    .filter(api_keys::group_id.eq(group_id))
                    .filter(api_keys::key_hash.eq_any(chunk))
                    .select(KeyRow::as_select())
                    .load(conn)
                    .await?
            });
            out.extend(rows);
        }
        Ok(out)
    }

    /// One key by id.
    pub async fn key(&self, id: KeyId) -> Result<Option<KeyRow>, DbError> {
        Ok(with_conn!(&self.db, conn => {
            api_keys::table
                .find(id)
                .select(KeyRow::as_select())
                .first(conn)
                .await
                .optional()?
        }))
    }

    /// An operator's status change: `disabled` keeps the failure count, anything else starts the
    /// key over with a zero count. Returns the updated row, or `None` for an unknown key.
    pub async fn set_key_status(
        &self,
        id: KeyId,
        status: KeyStatus,
    ) -> Result<Option<KeyRow>, DbError> {
        let ts = now();
        let n = with_conn!(&self.db, conn => {
            if status == KeyStatus::Disabled {
                diesel::update(api_keys::table.find(id))
                    .set((api_keys::status.eq(status.as_str()), api_keys::updated_at.eq(ts)))
                    .execute(conn)
                    .await?
            } else {
                diesel::update(api_keys::table.find(id))
                    .set((
                        api_keys::status.eq(status.as_str()),
                        api_keys::failure_count.eq(0i64),
                        api_keys::updated_at.eq(ts),
                    ))
                    .execute(conn)
                    .await?
            }
        });
        if n == 0 {
            return Ok(None);
        }
        self.key(id).await
    }

    /// Sets a key's notes; false when the key does not exist.
    pub async fn update_notes(&self, id: KeyId, notes: &str) -> Result<bool, DbError> {
        let n = with_conn!(&self.db, conn => {
            diesel::update(api_keys::table.find(id))
                .set((api_keys::notes.eq(notes), api_keys::updated_at.eq(now())))
                .execute(conn)
                .await?
        });
        Ok(n > 0)
    }

    /// Reactivates the group's `invalid` keys with these hashes (or all of them when `hashes`
    /// is `None`) with a zero failure count, in one transaction. Returns the restored rows.
    pub async fn restore_keys(
        &self,
        group_id: GroupId,
        hashes: Option<&[String]>,
    ) -> Result<Vec<KeyRow>, DbError> {
        let ts = now();
        with_write_tx!(&self.db, conn => {
                let mut rows: Vec<KeyRow> = Vec::new();
                match hashes {
                    Some(hashes) => {
                        for chunk in hashes.chunks(BATCH) {
                            let found: Vec<KeyRow> = api_keys::table
                                .filter(api_keys::group_id.eq(group_id))
                                .filter(api_keys::status.eq(KeyStatus::Invalid.as_str()))
                                .filter(api_keys::key_hash.eq_any(chunk))
                                .select(KeyRow::as_select())
                                .load(conn)
                                .await?;
                            rows.extend(found);
                        }
                    }
                    None => {
                        rows = api_keys::table
                            .filter(api_keys::group_id.eq(group_id))
                            .filter(api_keys::status.eq(KeyStatus::Invalid.as_str()))
                            .select(KeyRow::as_select())
                            .load(conn)
                            .await?;
                    }
                }
                let ids: Vec<KeyId> = rows.iter().map(|r| r.id).collect();
                for chunk in ids.chunks(BATCH) {
                    diesel::update(api_keys::table.filter(api_keys::id.eq_any(chunk)))
                        .set((
                            api_keys::status.eq(KeyStatus::Active.as_str()),
                            api_keys::failure_count.eq(0i64),
                            api_keys::updated_at.eq(ts),
                        ))
                        .execute(conn)
                        .await?;
                }
                for row in &mut rows {
                    row.status = KeyStatus::Active.as_str().to_string();
                    row.failure_count = 0;
                    row.updated_at = ts;
                }
                Ok::<_, DbError>(rows)
        })
    }

    /// Deletes the group's keys with these hashes in ONE transaction (all or none); returns the
    /// ids removed.
    pub async fn delete_keys_atomically(
        &self,
        group_id: GroupId,
        hashes: &[String],
    ) -> Result<Vec<KeyId>, DbError> {
        with_write_tx!(&self.db, conn => {
                let mut removed = Vec::new();
                for chunk in hashes.chunks(BATCH) {
                    let ids: Vec<KeyId> = api_keys::table
                        .filter(api_keys::group_id.eq(group_id))
                        .filter(api_keys::key_hash.eq_any(chunk))
                        .select(api_keys::id)
                        .load(conn)
                        .await?;
                    diesel::delete(api_keys::table.filter(api_keys::id.eq_any(&ids)))
                        .execute(conn)
                        .await?;
                    removed.extend(ids);
                }
                Ok::<_, DbError>(removed)
        })
    }

    /// Deletes the group's keys with `status` (all keys when `None`) in one transaction and
    /// returns the ids removed.
    pub async fn delete_keys_with_status(
        &self,
        group_id: GroupId,
        status: Option<KeyStatus>,
    ) -> Result<Vec<KeyId>, DbError> {
        with_write_tx!(&self.db, conn => {
                let mut query = api_keys::table
                    .filter(api_keys::group_id.eq(group_id))
                    .select(api_keys::id)
                    .into_boxed();
                if let Some(status) = status {
                    query = query.filter(api_keys::status.eq(status.as_str()));
                }
                let ids: Vec<KeyId> = query.load(conn).await?;
                for chunk in ids.chunks(BATCH) {
                    diesel::delete(api_keys::table.filter(api_keys::id.eq_any(chunk)))
                        .execute(conn)
                        .await?;
                }
                Ok::<_, DbError>(ids)
        })
    }

    /// Up to `limit` stored key values of a group with ids above `after_id`, in id order: the
    /// batches of a streamed export.
    pub async fn key_values_after(
        &self,
        group_id: GroupId,
        status: Option<KeyStatus>,
        after_id: KeyId,
        limit: i64,
    ) -> Result<Vec<(KeyId, String)>, DbError> {
        Ok(with_conn!(&self.db, conn => {
            let mut query = api_keys::table
                .filter(api_keys::group_id.eq(group_id))
                .filter(api_keys::id.gt(after_id))
                .select((api_keys::id, api_keys::key_value))
                .order(api_keys::id.asc())
                .limit(limit)
                .into_boxed();
            if let Some(status) = status {
                query = query.filter(api_keys::status.eq(status.as_str()));
            }
            query.load(conn).await?
        }))
    }

    /// Every key of a group (optionally of one status), in id order.
    pub async fn group_keys(
        &self,
        group_id: GroupId,
        status: Option<KeyStatus>,
    ) -> Result<Vec<KeyRow>, DbError> {
        Ok(with_conn!(&self.db, conn => {
            let mut query = api_keys::table
                .filter(api_keys::group_id.eq(group_id))
                .select(KeyRow::as_select())
                .order(api_keys::id.asc())
                .into_boxed();
            if let Some(status) = status {
                query = query.filter(api_keys::status.eq(status.as_str()));
            }
            query.load(conn).await?
        }))
    }

    /// Key counts by status for each group (all groups when `group_ids` is `None`).
    pub async fn key_counts(
        &self,
        group_ids: Option<&[GroupId]>,
    ) -> Result<HashMap<GroupId, KeyCounts>, DbError> {
        let rows: Vec<(GroupId, String, i64)> = with_conn!(&self.db, conn => {
            let mut query = api_keys::table
                .group_by((api_keys::group_id, api_keys::status))
                .select((api_keys::group_id, api_keys::status, count_star()))
                .into_boxed();
            if let Some(ids) = group_ids {
                query = query.filter(api_keys::group_id.eq_any(ids));
            }
            query.load(conn).await?
        });
        let mut out: HashMap<GroupId, KeyCounts> = HashMap::new();
        for (gid, status, n) in rows {
            out.entry(gid).or_default().add(&status, n);
        }
        Ok(out)
    }

    /// The pool form of stored keys; keys that cannot be decoded are skipped (and logged).
    pub fn pool_keys(&self, rows: &[KeyRow]) -> Vec<PoolKey> {
        rows.iter()
            .filter_map(|row| match self.codec.decode(&row.key_value) {
                Ok(plain) => Some(PoolKey {
                    id: row.id,
                    group_id: row.group_id,
                    secret: plain,
                    status: KeyStatus::parse(&row.status),
                    failure_count: row.failure_count,
                }),
                Err(_) => {
                    tracing::warn!(key_id = row.id, "Skipping a key that cannot be decrypted.");
                    None
                }
            })
            .collect()
    }

    /// Stored value and hash of up to `limit` keys that have a hash (for the encryption check).
    pub async fn key_sample(&self, limit: i64) -> Result<Vec<(String, String)>, DbError> {
        Ok(with_conn!(&self.db, conn => {
            api_keys::table
                .filter(api_keys::key_hash.ne(""))
                .select((api_keys::key_value, api_keys::key_hash))
                .order(api_keys::id.asc())
                .limit(limit)
                .load(conn)
                .await?
        }))
    }
}
