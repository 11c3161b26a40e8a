//! Login, health and channel types.

use actix_web::{web, HttpResponse};
use chrono::{SecondsFormat, Utc};
use serde_json::json;

use crate::channel::CHANNEL_TYPES;
use crate::http::credentials;
use crate::state::AppState;

/// `POST /api/auth/login` with `{"auth_key": "..."}`. Answers GPT-Load's `{success, message}`.
pub async fn login(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    #[derive(serde::Deserialize)]
    struct Login {
        auth_key: String,
    }
    let Ok(login) = serde_json::from_slice::<Login>(&body) else {
        return HttpResponse::BadRequest()
            .json(json!({"success": false, "message": "Invalid request format"}));
    };
    let expected = [state.config.auth_key.expose().to_string()];
    if !login.auth_key.is_empty() && credentials::matches_any(&login.auth_key, &expected) {
        HttpResponse::Ok().json(json!({"success": true, "message": "Authentication successful"}))
    } else {
        HttpResponse::Unauthorized()
            .json(json!({"success": false, "message": "Authentication failed"}))
    }
}

/// `GET /health`.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let uptime = state.started_at.elapsed();
    HttpResponse::Ok().json(json!({
        "status": "healthy",
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        "uptime": format_uptime(uptime),
    }))
}

/// `GET /api/channel-types`.
pub async fn channel_types(_admin: super::Admin) -> HttpResponse {
    super::ok(CHANNEL_TYPES)
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
