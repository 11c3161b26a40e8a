//! Group operations beyond CRUD: config options, bulk reordering, request statistics and
//! copying a group with its keys.

use std::collections::HashSet;

use actix_web::web;
use chrono::Duration;
use gpt_load_actors::domain::KeyStatus;
use gpt_load_actors::settings::{typed_value, SETTINGS};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::current_hour;
use super::groups::{app_url, name_conflict, values_of, GroupResponse};
use super::i18n::{t, tf, Msg};
use super::response::{done, ok, Envelope, ErrorBody, NoData, Reply};
use super::settings::setting_label;
use super::state::AdminState;
use super::{parse_id, require_group};
use crate::admin::error::AdminError;
use crate::db::repo::now;
use crate::db::repo_groups::CopyKeys;
use crate::db::repo_usage::TokenSums;
use crate::key_sync;
use crate::tasks::{self, StartTaskError, TaskKind, TaskRun};

/// A setting a group may override, with the current system value as its default.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigOption {
    pub key: String,
    /// Localised name.
    pub name: String,
    /// Localised description.
    pub description: String,
    /// The current system value (typed), used when the group sets none.
    #[schema(value_type = super::settings::SettingValue)]
    pub default_value: Value,
}

/// The settings a group's `config` may override (those marked `group_overridable`, 24 today).
#[utoipa::path(get, path = "/api/groups/config-options", tag = "groups",
    responses((status = 200, body = Envelope<Vec<ConfigOption>>), (status = 401, body = ErrorBody)))]
pub async fn config_options(
    _admin: super::Admin,
    state: web::Data<AdminState>,
) -> Reply<Vec<ConfigOption>> {
    let snapshot = state.snapshot.load();
    ok(SETTINGS
        .iter()
        .filter(|def| def.group_overridable)
        .map(|def| {
            let (name, description) = setting_label(def);
            let current = snapshot.settings.get(def.id).clone();
            ConfigOption {
                key: def.key.to_string(),
                name,
                description,
                default_value: if current.is_null() {
                    typed_value(def, def.default)
                } else {
                    current
                },
            }
        })
        .collect())
}

/// One entry of a reorder request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReorderItem {
    #[serde(deserialize_with = "super::response::whole")]
    pub id: i64,
    #[schema(minimum = 0, maximum = 2147483647)]
    #[serde(deserialize_with = "super::response::whole")]
    pub sort: i64,
}

/// Body of `PUT /api/groups/reorder`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReorderRequest {
    /// Each group once.
    #[schema(min_items = 1)]
    pub items: Vec<ReorderItem>,
}

/// Set `sort` of several groups in one transaction (all ids must exist, else 400).
#[utoipa::path(put, path = "/api/groups/reorder", tag = "groups", request_body = ReorderRequest,
    responses((status = 200, body = Envelope<NoData>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn reorder(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    body: web::Json<ReorderRequest>,
) -> Reply<NoData> {
    if body.items.is_empty() {
        return Err(AdminError::Validation(t(Msg::ReorderEmpty)));
    }
    let mut seen = HashSet::new();
    let mut items = Vec::with_capacity(body.items.len());
    for (index, item) in body.items.iter().enumerate() {
        if item.id <= 0 {
            return Err(AdminError::Validation(tf(
                Msg::ReorderInvalidId,
                &[("index", &index)],
            )));
        }
        let sort = i32::try_from(item.sort)
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| {
                AdminError::Validation(tf(Msg::ReorderNegativeSort, &[("index", &index)]))
            })?;
        if !seen.insert(item.id) {
            return Err(AdminError::Validation(tf(
                Msg::ReorderDuplicateId,
                &[("id", &item.id)],
            )));
        }
        items.push((item.id, sort));
    }
    if let Some(missing) = state.repo.reorder_groups(&items).await? {
        // An unknown id is a fault of the request as a whole: 400, as GPT-Load answers.
        return Err(AdminError::Validation(tf(
            Msg::GroupIdNotFound,
            &[("id", &missing)],
        )));
    }
    state.reload_config().await?;
    done(t(Msg::GroupOrderSaved))
}

/// Key counts of a group.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct KeyStats {
    pub total_keys: i64,
    /// Stored as active (cooling keys included).
    pub active_keys: i64,
    pub invalid_keys: i64,
    /// Disabled by an operator.
    pub disabled_keys: i64,
    /// Active keys resting in a cooldown right now (live, from this node's key pool).
    pub cooling_keys: i64,
}

/// Requests of a group over one period.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct RequestStats {
    pub total_requests: i64,
    pub failed_requests: i64,
    /// failed / total, a fraction rounded to 4 decimals (0 without requests).
    #[serde(serialize_with = "super::response::go_float")]
    pub failure_rate: f64,
}

/// `GET /api/groups/{id}/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupStats {
    pub key_stats: KeyStats,
    pub stats_24_hour: RequestStats,
    pub stats_7_day: RequestStats,
    pub stats_30_day: RequestStats,
    /// Token sums of the group's answered requests over the same periods. Token sums are kept
    /// per serving group, so for an aggregate these are the sums of its current members (their
    /// requests through any route), while its request counts above are only the requests that
    /// came through the aggregate.
    pub tokens_24_hour: TokenSums,
    pub tokens_7_day: TokenSums,
    pub tokens_30_day: TokenSums,
}

/// Key counts (stored statuses, plus the keys cooling down right now) and request counts over the
/// last 24 hours, 7 days and 30 days (from the hourly statistics, current hour included), with
/// token sums over the same periods. Aggregate groups own no keys; their token sums are their
/// members'.
#[utoipa::path(get, path = "/api/groups/{id}/stats", tag = "groups",
    params(("id" = i64, Path, description = "Group id")),
    responses((status = 200, body = Envelope<GroupStats>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn stats(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Reply<GroupStats> {
    let id = parse_id(&id, Msg::InvalidGroupId)?;
    let group = require_group(&state, id).await?;
    let key_stats = if group.group_type == "aggregate" {
        KeyStats::default()
    } else {
        let counts = state
            .repo
            .key_counts(Some(&[id]))
            .await?
            .remove(&id)
            .unwrap_or_default();
        let live = state.pool.count(id).await?;
        KeyStats {
            total_keys: counts.total,
            active_keys: counts.active,
            invalid_keys: counts.invalid,
            disabled_keys: counts.disabled,
            cooling_keys: live.cooling as i64,
        }
    };
    let end = current_hour() + Duration::hours(1);
    let rows = state
        .repo
        .hourly_stats(end - Duration::days(30), end, Some(&[id]))
        .await?;
    let period = |hours: i64| {
        let from = end - Duration::hours(hours);
        let (mut total, mut failed) = (0i64, 0i64);
        for row in rows.iter().filter(|r| r.time >= from) {
            total += row.success_count + row.failure_count;
            failed += row.failure_count;
        }
        RequestStats {
            total_requests: total,
            failed_requests: failed,
            failure_rate: if total > 0 {
                ((failed as f64 / total as f64) * 10_000.0).round() / 10_000.0
            } else {
                0.0
            },
        }
    };
    // Token sums are keyed by the member that served, so an aggregate adds up its members.
    let usage_ids = super::usage::serving_groups(&state, id).await?;
    let usage = if usage_ids.is_empty() {
        Vec::new()
    } else {
        state
            .repo
            .usage_hours(end - Duration::days(30), end, Some(&usage_ids))
            .await?
    };
    let tokens = |hours: i64| {
        let from = end - Duration::hours(hours);
        let mut sums = TokenSums::default();
        for row in usage.iter().filter(|r| r.time >= from) {
            sums.add(&row.sums);
        }
        sums
    };
    ok(GroupStats {
        key_stats,
        stats_24_hour: period(24),
        stats_7_day: period(24 * 7),
        stats_30_day: period(24 * 30),
        tokens_24_hour: tokens(24),
        tokens_7_day: tokens(24 * 7),
        tokens_30_day: tokens(24 * 30),
    })
}

/// Body of `POST /api/groups/{id}/copy`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CopyRequest {
    /// `all` (default), `valid_only` or `none`.
    #[serde(default)]
    #[schema(pattern = "^\\s*(all|valid_only|none)?\\s*$")]
    pub copy_keys: Option<String>,
}

/// `data` of a copy.
#[derive(Debug, Serialize, ToSchema)]
pub struct CopyResponse {
    pub group: GroupResponse,
}

/// Duplicate a group: every setting (not aggregate memberships) under `{name}_copy` (or
/// `_copy_2` … `_copy_1000` when taken), with all, only active, or none of its keys. As in
/// GPT-Load the keys are imported into the copy by a background import task (follow it with
/// `GET /api/tasks/status`); when another task holds the slot, GPT-Load drops the keys, while
/// here they are copied at once in the same transaction (see docs/compatibility.md).
#[utoipa::path(post, path = "/api/groups/{id}/copy", tag = "groups", request_body = CopyRequest,
    params(("id" = i64, Path, description = "Group id")),
    responses((status = 200, body = Envelope<CopyResponse>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn copy(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
    body: web::Json<CopyRequest>,
) -> Reply<CopyResponse> {
    let id = parse_id(&id, Msg::InvalidGroupId)?;
    let mode = match body.copy_keys.as_deref().map(str::trim) {
        None | Some("") | Some("all") => CopyKeys::All,
        Some("valid_only") => CopyKeys::ValidOnly,
        Some("none") => CopyKeys::None,
        Some(_) => return Err(AdminError::Validation(t(Msg::CopyModeInvalid))),
    };
    let source = require_group(&state, id).await?;
    let taken: HashSet<String> = state.repo.group_names().await?.into_iter().collect();
    let name = copy_name(&source.name, &taken)
        .ok_or_else(|| AdminError::Duplicate(t(Msg::CopyNameExhausted)))?;
    let keys = source_keys(&state, id, mode).await?;
    let import = claim_import(&state, &name, keys.len()).await?;
    let mut values = values_of(&source);
    values.name = name;
    if !values.display_name.is_empty() {
        values.display_name = format!("{} Copy", values.display_name);
    }
    values.updated_at = now();
    // With the task slot ours the keys go through the import task; without it they are copied
    // in the group's own transaction rather than lost.
    let in_transaction = if import.is_some() {
        CopyKeys::None
    } else {
        mode
    };
    let (row, copied) = state
        .repo
        .copy_group(id, values, in_transaction)
        .await
        .map_err(name_conflict)?;
    if copied > 0 {
        let keys = state.repo.group_keys(row.id, None).await?;
        key_sync::add(&state.key_sync(), state.repo.pool_keys(&keys)).await?;
    }
    state.reload_config().await?;
    if let Some(task) = import {
        let task_state = state.key_jobs();
        let group_id = row.id;
        state
            .tasks
            .spawn(move || tasks::import::run(task_state, task, group_id, keys));
    }
    tracing::info!(source = %source.name, copy = %row.name, keys = copied, "Copied a group.");
    ok(CopyResponse {
        group: GroupResponse::from_row(&row, &app_url(&state)),
    })
}

/// The plain text of the source keys a copy takes (undecryptable ones are skipped).
async fn source_keys(
    state: &AdminState,
    id: i64,
    mode: CopyKeys,
) -> Result<Vec<String>, AdminError> {
    let status = match mode {
        CopyKeys::None => return Ok(Vec::new()),
        CopyKeys::All => None,
        CopyKeys::ValidOnly => Some(KeyStatus::Active),
    };
    let rows = state.repo.group_keys(id, status).await?;
    Ok(rows
        .iter()
        .filter_map(|k| state.repo.codec.decode(&k.key_value).ok())
        .map(|plain| plain.expose().to_string())
        .collect())
}

/// The import task for a copy's keys, or `None` when there are none or another task runs.
async fn claim_import(
    state: &AdminState,
    name: &str,
    keys: usize,
) -> Result<Option<TaskRun>, AdminError> {
    if keys == 0 {
        return Ok(None);
    }
    match state
        .tasks
        .start_task(TaskKind::KeyImport, name, keys)
        .await
    {
        Ok(task) => Ok(Some(task)),
        Err(StartTaskError::Busy(_)) => Ok(None),
        Err(StartTaskError::Store(err)) => Err(gpt_load_actors::ports::PortError::from(err).into()),
    }
}

/// `{name}_copy`, else `{name}_copy_2` … `{name}_copy_1000`, the first not in `taken`. The base
/// is shortened so the result still fits the 100-character name limit.
fn copy_name(name: &str, taken: &HashSet<String>) -> Option<String> {
    (1..=1000).find_map(|n| {
        let suffix = if n == 1 {
            "_copy".to_string()
        } else {
            format!("_copy_{n}")
        };
        let base: String = name.chars().take(100 - suffix.len()).collect();
        let candidate = format!("{base}{suffix}");
        (!taken.contains(&candidate)).then_some(candidate)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_names_count_up_and_fit() {
        let mut taken = HashSet::new();
        assert_eq!(copy_name("g", &taken).unwrap(), "g_copy");
        taken.insert("g_copy".to_string());
        taken.insert("g_copy_2".to_string());
        assert_eq!(copy_name("g", &taken).unwrap(), "g_copy_3");
        let long = "a".repeat(100);
        assert_eq!(copy_name(&long, &HashSet::new()).unwrap().len(), 100);
        let all: HashSet<String> = (1..=1000)
            .map(|n| {
                if n == 1 {
                    "g_copy".into()
                } else {
                    format!("g_copy_{n}")
                }
            })
            .collect();
        assert!(copy_name("g", &all).is_none());
    }
}
