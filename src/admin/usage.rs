//! `GET /api/usage`: token totals and an hourly series for a time range, grouped by model, group,
//! proxy-key identity (from the hourly sums) or upstream key (from the retained request logs).

use std::collections::{BTreeMap, HashMap};

use actix_web::web;
use chrono::{Duration, NaiveDateTime};
use gpt_load_actors::domain::mask_secret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::current_hour;
use super::response::{ok, Envelope, ErrorBody, Reply};
use super::state::AdminState;
use super::timestamp;
use crate::admin::error::AdminError;
use crate::db::repo_usage::TokenSums;

/// Longest range one call may cover.
const MAX_RANGE_DAYS: i64 = 31;

/// Parameters of `GET /api/usage`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// `model` (default), `group`, `proxy_key` or `key`.
    #[param(pattern = "^(model|group|proxy_key|key)$")]
    pub group_by: Option<String>,
    /// RFC 3339; default 24 hours before `end_time`. Counted by whole hours.
    pub start_time: Option<String>,
    /// RFC 3339; default the end of the current hour. At most 31 days after `start_time`.
    pub end_time: Option<String>,
    /// Only this group's requests; for an aggregate, its members' (sums are kept per group that
    /// served).
    pub group_id: Option<i64>,
}

/// The sums of one value of the grouping.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageItem {
    /// The model, group name, proxy-key identity or masked upstream key.
    pub name: String,
    /// The group (group_by=group or key), else null.
    pub group_id: Option<i64>,
    /// The upstream key (group_by=key), else null.
    pub key_id: Option<i64>,
    #[serde(flatten)]
    pub sums: TokenSums,
}

/// One hour of one value of the grouping.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsagePoint {
    /// Start of the hour, RFC 3339.
    pub time: String,
    pub name: String,
    #[serde(flatten)]
    pub sums: TokenSums,
}

/// Body of `GET /api/usage`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub group_by: String,
    pub start_time: String,
    pub end_time: String,
    pub totals: TokenSums,
    /// Largest total first.
    pub items: Vec<UsageItem>,
    /// Hour by hour, oldest first.
    pub series: Vec<UsagePoint>,
}

fn parse_time(field: &str, raw: Option<&str>) -> Result<Option<NaiveDateTime>, AdminError> {
    raw.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.naive_utc())
                .map_err(|_| AdminError::BadRequest(format!("{field} must be an RFC 3339 time")))
        })
        .transpose()
}

/// Grouped sums: `(name, group_id, key_id)` → totals and hour → sums.
#[derive(Default)]
struct Buckets {
    items: HashMap<(String, Option<i64>, Option<i64>), TokenSums>,
    series: BTreeMap<(NaiveDateTime, String), TokenSums>,
}

impl Buckets {
    fn add(
        &mut self,
        time: NaiveDateTime,
        id: (String, Option<i64>, Option<i64>),
        sums: &TokenSums,
    ) {
        self.series
            .entry((time, id.0.clone()))
            .or_default()
            .add(sums);
        self.items.entry(id).or_default().add(sums);
    }
}

/// Token usage for a time range, grouped by model, group, proxy key or upstream key. Counts final
/// requests only (a retried request counts the attempt that was answered). Grouping by key reads
/// the request logs, so it reaches back only as far as they are kept.
#[utoipa::path(get, path = "/api/usage", tag = "logs", params(UsageQuery),
    responses((status = 200, body = Envelope<UsageReport>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn report(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    query: web::Query<UsageQuery>,
) -> Reply<UsageReport> {
    let group_by = query.group_by.as_deref().unwrap_or("model").to_string();
    if query.group_id.is_some_and(|id| id < 1) {
        return Err(AdminError::BadRequest(
            "group_id must be a positive integer".into(),
        ));
    }
    let end = parse_time("end_time", query.end_time.as_deref())?
        .unwrap_or_else(|| current_hour() + Duration::hours(1));
    let start =
        parse_time("start_time", query.start_time.as_deref())?.unwrap_or(end - Duration::hours(24));
    if start >= end || end - start > Duration::days(MAX_RANGE_DAYS) {
        return Err(AdminError::BadRequest(format!(
            "start_time must be before end_time, at most {MAX_RANGE_DAYS} days apart"
        )));
    }
    let groups = match query.group_id {
        Some(id) => Some(serving_groups(&state, id).await?),
        None => None,
    };
    let buckets = match group_by.as_str() {
        "model" | "group" | "proxy_key" => {
            hourly_buckets(&state, &group_by, start, end, groups.as_deref()).await?
        }
        "key" => key_buckets(&state, start, end, groups.as_deref()).await?,
        _ => {
            return Err(AdminError::BadRequest(
                "group_by must be model, group, proxy_key or key".into(),
            ))
        }
    };
    let mut totals = TokenSums::default();
    let mut items: Vec<UsageItem> = buckets
        .items
        .into_iter()
        .map(|((name, group_id, key_id), sums)| {
            totals.add(&sums);
            UsageItem {
                name,
                group_id,
                key_id,
                sums,
            }
        })
        .collect();
    items.sort_by(|a, b| {
        b.sums
            .total_tokens
            .cmp(&a.sums.total_tokens)
            .then_with(|| a.name.cmp(&b.name))
    });
    let series = buckets
        .series
        .into_iter()
        .map(|((time, name), sums)| UsagePoint {
            time: timestamp(&time),
            name,
            sums,
        })
        .collect();
    ok(UsageReport {
        group_by,
        start_time: timestamp(&start),
        end_time: timestamp(&end),
        totals,
        items,
        series,
    })
}

/// The groups whose sums answer for `id`: the group itself, or an aggregate's members (none
/// serve as the aggregate itself).
pub(super) async fn serving_groups(state: &AdminState, id: i64) -> Result<Vec<i64>, AdminError> {
    let aggregate = state
        .snapshot
        .load()
        .by_id
        .get(&id)
        .is_some_and(|g| g.record.is_aggregate());
    if !aggregate {
        return Ok(vec![id]);
    }
    Ok(state
        .repo
        .sub_group_links(id)
        .await?
        .into_iter()
        .map(|(member, _)| member)
        .collect())
}

async fn hourly_buckets(
    state: &AdminState,
    group_by: &str,
    start: NaiveDateTime,
    end: NaiveDateTime,
    groups: Option<&[i64]>,
) -> Result<Buckets, AdminError> {
    // An aggregate without members has no sums (an empty list would mean "every group").
    if groups.is_some_and(<[i64]>::is_empty) {
        return Ok(Buckets::default());
    }
    let rows = state.repo.usage_hours(start, end, groups).await?;
    let names: HashMap<i64, String> = state
        .snapshot
        .load()
        .by_id
        .iter()
        .map(|(id, g)| (*id, g.record.name.clone()))
        .collect();
    let mut buckets = Buckets::default();
    for row in rows {
        let id = match group_by {
            "group" => (
                names
                    .get(&row.group_id)
                    .cloned()
                    .unwrap_or_else(|| format!("#{}", row.group_id)),
                Some(row.group_id),
                None,
            ),
            "proxy_key" => (row.proxy_key, None, None),
            _ => (row.model, None, None),
        };
        buckets.add(row.time, id, &row.sums);
    }
    Ok(buckets)
}

async fn key_buckets(
    state: &AdminState,
    start: NaiveDateTime,
    end: NaiveDateTime,
    groups: Option<&[i64]>,
) -> Result<Buckets, AdminError> {
    let rows = state.repo.key_usage_hours(start, end).await?;
    let hashes: Vec<String> = {
        let mut h: Vec<String> = rows.iter().map(|r| r.key_hash.clone()).collect();
        h.sort();
        h.dedup();
        h
    };
    let keys: HashMap<String, (i64, String)> = state
        .repo
        .keys_by_hash(&hashes)
        .await?
        .into_iter()
        .map(|(id, hash, stored)| {
            let masked = state
                .repo
                .codec
                .decode(&stored)
                .map(|plain| mask_secret(plain.expose()))
                .unwrap_or_else(|_| "failed-to-decrypt".into());
            (hash, (id, masked))
        })
        .collect();
    let mut buckets = Buckets::default();
    for row in rows
        .iter()
        .filter(|r| groups.is_none_or(|g| g.contains(&r.group_id)))
    {
        let Ok(hour) = NaiveDateTime::parse_from_str(&row.hour, "%Y-%m-%d %H:%M:%S") else {
            continue;
        };
        let (key_id, name) = match keys.get(&row.key_hash) {
            Some((id, masked)) => (Some(*id), masked.clone()),
            // A deleted key: its hash prefix still tells rows apart.
            None => (
                None,
                format!(
                    "deleted {}",
                    &row.key_hash.chars().take(8).collect::<String>()
                ),
            ),
        };
        buckets.add(hour, (name, Some(row.group_id), key_id), &row.sums());
    }
    Ok(buckets)
}
