//! Login, health and channel types.

use actix_web::http::header::RETRY_AFTER;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::response::{ok, Envelope, ErrorBody, Reply};
use super::state::AdminState;
use crate::admin::error::AdminError;
use crate::channel::CHANNEL_TYPES;

/// Body of `POST /api/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub auth_key: String,
}

/// GPT-Load's login answer (not the usual envelope).
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub success: bool,
    pub message: String,
}

/// Answer of `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `healthy`, or `draining` (with status 503) once a graceful stop began.
    pub status: String,
    /// Now, RFC 3339 UTC.
    pub timestamp: String,
    /// Time since start in Go's duration style (`1h2m3.4s`).
    pub uptime: String,
    /// This node's part in the cluster: `leader`, `candidate` or `follower` (a single node is
    /// always `leader`).
    pub role: String,
    /// The leader's fencing epoch while this node leads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// This process's cluster node id.
    pub node_id: String,
    /// Whether the database answered just now (`ok` or `unreachable`).
    pub database: String,
    /// `ok` or `unreachable` for Redis; `disabled` without `REDIS_DSN`.
    pub redis: String,
}

/// How long `/health` waits for the database or Redis before calling it unreachable.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Check an admin key. Answers `{success, message}` rather than the envelope.
#[utoipa::path(post, path = "/api/auth/login", tag = "system", security(()),
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400, body = LoginResponse),
        (status = 401, body = LoginResponse),
        (status = 429, description = "Too many failed attempts from this address", body = LoginResponse)))]
pub async fn login(
    state: web::Data<AdminState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let reply = |success: bool, message: &str| LoginResponse {
        success,
        message: message.to_string(),
    };
    let Ok(login) = serde_json::from_slice::<LoginRequest>(&body) else {
        return HttpResponse::BadRequest().json(reply(false, "Invalid request format"));
    };
    let outcome = super::weigh_admin_key(&state, &req, Some(&login.auth_key));
    match super::settle(outcome).await {
        Ok(()) => HttpResponse::Ok().json(reply(true, "Authentication successful")),
        Err(AdminError::TooManyAttempts { retry_after_secs }) => HttpResponse::TooManyRequests()
            .insert_header((RETRY_AFTER, retry_after_secs.to_string()))
            .json(reply(
                false,
                "Too many failed authentication attempts; retry later",
            )),
        Err(_) => HttpResponse::Unauthorized().json(reply(false, "Authentication failed")),
    }
}

/// Liveness probe, with this node's cluster role and whether its database and Redis answer.
/// A failing dependency is reported, not turned into a 503: the node can still serve proxy
/// traffic from memory. Only a draining node answers 503.
#[utoipa::path(get, path = "/health", tag = "system", security(()),
    responses((status = 200, body = HealthResponse), (status = 503, body = HealthResponse)))]
pub async fn health(state: web::Data<AdminState>) -> HttpResponse {
    let uptime = state.started_at.elapsed();
    let reach = |ok: bool| if ok { "ok" } else { "unreachable" }.to_string();
    let db_probe = tokio::time::timeout(PROBE_TIMEOUT, state.repo.db.ping());
    let redis_probe = async {
        if state.sync.announcer.coordinator.kind() == "redis" {
            let answered =
                tokio::time::timeout(PROBE_TIMEOUT, state.sync.announcer.coordinator.ping()).await;
            reach(matches!(answered, Ok(Ok(()))))
        } else {
            "disabled".to_string()
        }
    };
    let (db, redis) = futures_util::join!(db_probe, redis_probe);
    let role = state.leadership.role();
    let draining = state.draining.load(std::sync::atomic::Ordering::SeqCst);
    let body = HealthResponse {
        status: if draining { "draining" } else { "healthy" }.into(),
        timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        uptime: format_uptime(uptime),
        role: role.as_str().to_string(),
        epoch: match role {
            gpt_load_actors::cluster::Role::Leader { epoch } => Some(epoch),
            _ => None,
        },
        node_id: state.sync.announcer.node_id.to_string(),
        database: reach(matches!(db, Ok(Ok(())))),
        redis,
    };
    if draining {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// The channel types a group may use.
#[utoipa::path(get, path = "/api/channel-types", tag = "system",
    responses((status = 200, body = Envelope<Vec<String>>), (status = 401, body = ErrorBody)))]
pub async fn channel_types(_admin: super::Admin) -> Reply<Vec<String>> {
    ok(CHANNEL_TYPES.iter().map(|c| c.to_string()).collect())
}

/// Go's duration style (`1h2m3.4s`), as GPT-Load prints uptime.
fn format_uptime(d: std::time::Duration) -> String {
    let total = d.as_secs_f64();
    let hours = (total / 3600.0).floor() as u64;
    let minutes = ((total % 3600.0) / 60.0).floor() as u64;
    let seconds = total % 60.0;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", (seconds * 10.0).floor() / 10.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn uptime_reads_like_go() {
        assert_eq!(format_uptime(Duration::from_millis(3_400)), "3.4s");
        assert_eq!(format_uptime(Duration::from_secs(3723)), "1h2m3s");
    }
}
