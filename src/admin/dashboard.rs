//! Dashboard: key counts, request rate and error rate cards, the 24-hour chart, and the
//! encryption mismatch detector. Request numbers come from `request_logs` (RPM) and
//! `group_hourly_stats` (everything else); aggregate groups are left out of totals because
//! their traffic is already counted under their members.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use actix_web::web;
use chrono::{Duration, Local, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::current_hour;
use super::i18n::{t, Msg};
use super::response::{go_float, ok, zero_or_none, Envelope, ErrorBody, Reply};
use super::security::{operational_warnings, warnings, SecurityWarning};
use super::state::AdminState;
use crate::db::repo_stats::HourlyStat;

/// One stat card.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatCard {
    #[serde(serialize_with = "go_float")]
    pub value: f64,
    /// Left out when zero, as GPT-Load does.
    #[serde(skip_serializing_if = "zero_or_none")]
    pub sub_value: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_value_tip: Option<String>,
    /// Change against the previous period: a percentage for counts and rates, percentage
    /// points for the error rate.
    #[serde(serialize_with = "go_float")]
    pub trend: f64,
    /// True when the change is good news.
    pub trend_is_growth: bool,
}

/// `GET /api/dashboard/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardStats {
    /// Active keys (value) and invalid keys (sub_value) across all groups.
    pub key_count: StatCard,
    /// Final requests per minute over the last 10 minutes.
    pub rpm: StatCard,
    /// Requests in the last 24 hours.
    pub request_count: StatCard,
    /// Failed share of the last 24 hours' requests, in percent.
    pub error_rate: StatCard,
    pub security_warnings: Vec<SecurityWarning>,
}

fn pct_change(current: f64, previous: f64) -> f64 {
    if previous > 0.0 {
        ((current - previous) / previous * 100.0 * 10.0).round() / 10.0
    } else if current > 0.0 {
        100.0
    } else {
        0.0
    }
}

fn totals(rows: &[HourlyStat], skip: &HashSet<i64>) -> (i64, i64) {
    rows.iter()
        .filter(|r| !skip.contains(&r.group_id))
        .fold((0, 0), |(s, f), r| {
            (s + r.success_count, f + r.failure_count)
        })
}

/// Dashboard cards and security warnings.
#[utoipa::path(get, path = "/api/dashboard/stats", tag = "dashboard",
    responses((status = 200, body = Envelope<DashboardStats>), (status = 401, body = ErrorBody)))]
pub async fn stats(_admin: super::Admin, state: web::Data<AdminState>) -> Reply<DashboardStats> {
    let counts = state.repo.key_counts(None).await?;
    let (active, invalid) = counts
        .values()
        .fold((0, 0), |(a, i), c| (a + c.active, i + c.invalid));

    let now = Utc::now().naive_utc();
    let recent = state
        .repo
        .count_final_logs(now - Duration::minutes(10), now)
        .await?;
    let before = state
        .repo
        .count_final_logs(now - Duration::minutes(20), now - Duration::minutes(10))
        .await?;
    let rpm = recent as f64 / 10.0;

    let snapshot = state.snapshot.load();
    let aggregates: HashSet<i64> = snapshot
        .by_id
        .values()
        .filter(|g| g.record.is_aggregate())
        .map(|g| g.record.id)
        .collect();
    let rows = state
        .repo
        .hourly_stats(now - Duration::hours(48), now, None)
        .await?;
    let split = now - Duration::hours(24);
    let (current, previous): (Vec<HourlyStat>, Vec<HourlyStat>) =
        rows.into_iter().partition(|r| r.time >= split);
    let (cur_ok, cur_fail) = totals(&current, &aggregates);
    let (prev_ok, prev_fail) = totals(&previous, &aggregates);
    let cur_total = cur_ok + cur_fail;
    let prev_total = prev_ok + prev_fail;
    let rate = |fail: i64, total: i64| {
        if total > 0 {
            (fail as f64 / total as f64 * 100.0 * 100.0).round() / 100.0
        } else {
            0.0
        }
    };
    let cur_rate = rate(cur_fail, cur_total);
    let prev_rate = rate(prev_fail, prev_total);
    let (rate_trend, rate_good) = if prev_total > 0 {
        (
            ((cur_rate - prev_rate) * 100.0).round() / 100.0,
            cur_rate < prev_rate,
        )
    } else {
        (cur_rate, cur_rate == 0.0)
    };

    let group_keys: Vec<(String, Vec<String>)> = snapshot
        .by_id
        .values()
        .filter(|g| !g.proxy_keys.is_empty())
        .map(|g| (g.record.name.clone(), g.proxy_keys.clone()))
        .collect();
    let mut group_keys = group_keys;
    group_keys.sort();
    let mut security_warnings = warnings(
        state.config.auth_key.expose(),
        state.config.encryption_key.expose(),
        &snapshot.global_proxy_keys,
        &group_keys,
    );
    security_warnings.extend(operational_warnings(
        state.log_counters.shed.load(Ordering::Relaxed),
        state.pool.floor_hits(),
    ));

    let rpm_trend = pct_change(recent as f64, before as f64);
    let count_trend = pct_change(cur_total as f64, prev_total as f64);
    ok(DashboardStats {
        key_count: StatCard {
            value: active as f64,
            sub_value: Some(invalid),
            sub_value_tip: Some(t(Msg::InvalidKeysTip)),
            trend: 0.0,
            trend_is_growth: true,
        },
        rpm: StatCard {
            value: rpm,
            sub_value: None,
            sub_value_tip: None,
            trend: rpm_trend,
            trend_is_growth: rpm_trend >= 0.0,
        },
        request_count: StatCard {
            value: cur_total as f64,
            sub_value: None,
            sub_value_tip: None,
            trend: count_trend,
            trend_is_growth: count_trend >= 0.0,
        },
        error_rate: StatCard {
            value: cur_rate,
            sub_value: None,
            sub_value_tip: None,
            trend: rate_trend,
            trend_is_growth: rate_good,
        },
        security_warnings,
    })
}

/// Query of `GET /api/dashboard/chart`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChartQuery {
    /// One group (camelCase, as GPT-Load); all non-aggregate groups when absent.
    #[serde(rename = "groupId")]
    #[param(rename = "groupId")]
    pub group_id: Option<String>,
}

/// One line of the chart.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChartDataset {
    /// Localised `Success` or `Failed`.
    pub label: String,
    pub data: Vec<i64>,
    pub color: String,
}

/// `GET /api/dashboard/chart`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChartData {
    /// The 24 hours, oldest first, RFC 3339 in the server's local time zone.
    pub labels: Vec<String>,
    pub datasets: Vec<ChartDataset>,
}

/// Successful and failed requests per hour over the last 24 hours (current hour included).
#[utoipa::path(get, path = "/api/dashboard/chart", tag = "dashboard", params(ChartQuery),
    responses((status = 200, body = Envelope<ChartData>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn chart(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    query: web::Query<ChartQuery>,
) -> Reply<ChartData> {
    let group = match query.group_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(super::parse_id(raw, Msg::InvalidGroupId)?),
    };
    let start = current_hour() - Duration::hours(23);
    let end = start + Duration::hours(24);
    let ids = group.map(|g| vec![g]);
    let rows = state.repo.hourly_stats(start, end, ids.as_deref()).await?;
    let aggregates: HashSet<i64> = if group.is_some() {
        HashSet::new()
    } else {
        state
            .snapshot
            .load()
            .by_id
            .values()
            .filter(|g| g.record.is_aggregate())
            .map(|g| g.record.id)
            .collect()
    };
    let mut buckets: HashMap<i64, (i64, i64)> = HashMap::new();
    for row in rows.iter().filter(|r| !aggregates.contains(&r.group_id)) {
        let hour = (row.time - start).num_hours();
        let entry = buckets.entry(hour).or_default();
        entry.0 += row.success_count;
        entry.1 += row.failure_count;
    }
    let mut labels = Vec::with_capacity(24);
    let mut success = Vec::with_capacity(24);
    let mut failed = Vec::with_capacity(24);
    for hour in 0..24 {
        let at = start + Duration::hours(hour);
        labels.push(Local.from_utc_datetime(&at).to_rfc3339());
        let (s, f) = buckets.get(&hour).copied().unwrap_or_default();
        success.push(s);
        failed.push(f);
    }
    ok(ChartData {
        labels,
        datasets: vec![
            ChartDataset {
                label: t(Msg::ChartSuccess),
                data: success,
                color: "rgba(10, 200, 110, 1)".into(),
            },
            ChartDataset {
                label: t(Msg::ChartFailed),
                data: failed,
                color: "rgba(255, 70, 70, 1)".into(),
            },
        ],
    })
}

/// `GET /api/dashboard/encryption-status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EncryptionStatus {
    pub has_mismatch: bool,
    /// Empty, `data_not_encrypted`, `key_not_configured` or `key_mismatch`.
    pub scenario_type: String,
    pub message: String,
    pub suggestion: String,
}

/// Detects a mismatch between `ENCRYPTION_KEY` and how the stored keys are encrypted, from a
/// sample of up to 20 keys: a key set over plain data, encrypted data without a key, or data
/// encrypted with another key.
#[utoipa::path(get, path = "/api/dashboard/encryption-status", tag = "dashboard",
    responses((status = 200, body = Envelope<EncryptionStatus>), (status = 401, body = ErrorBody)))]
pub async fn encryption_status(
    _admin: super::Admin,
    state: web::Data<AdminState>,
) -> Reply<EncryptionStatus> {
    // The detector lives with the codec, which knows every stored format; this route only
    // answers in the API's envelope and language.
    let report = crate::key_encryption::status::encryption_status(
        &state.repo.db,
        !state.config.encryption_key.is_empty(),
        &state.repo.codec,
    )
    .await?;
    let texts = match report.scenario_type.as_str() {
        "data_not_encrypted" => {
            Some((Msg::EncDataNotEncrypted, Msg::EncDataNotEncryptedSuggestion))
        }
        "key_not_configured" => {
            Some((Msg::EncKeyNotConfigured, Msg::EncKeyNotConfiguredSuggestion))
        }
        "key_mismatch" => Some((Msg::EncKeyMismatch, Msg::EncKeyMismatchSuggestion)),
        _ => None,
    };
    let (message, suggestion) = match texts {
        Some((m, s)) => (t(m), t(s)),
        None => (report.message, report.suggestion),
    };
    ok(EncryptionStatus {
        has_mismatch: report.has_mismatch,
        scenario_type: report.scenario_type,
        message,
        suggestion,
    })
}
