//! The admin REST API under `/api`, with GPT-Load's paths, fields and envelopes. One file per
//! resource; [`routes`] holds the one route table that both the router and the OpenAPI check
//! read; this file holds the auth extractor and small shared helpers.

pub mod dashboard;
pub mod error;
pub mod group_model;
pub mod group_ops;
pub mod groups;
pub mod i18n;
pub mod integration;
pub mod key_ops;
pub mod keys;
pub mod logs;
pub mod openapi;
pub mod prometheus;
pub mod response;
pub mod routes;
pub mod security;
pub mod settings;
pub mod state;
pub mod subgroups;
pub mod system;
pub mod tasks;
pub mod usage;

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use chrono::{Duration as ChronoDuration, DurationRound, NaiveDateTime, Utc};
use futures_util::future::LocalBoxFuture;

use crate::admin::error::AdminError;
use crate::http::admission::Slot;
use crate::http::credentials;
use crate::http::throttle::{client_addr, Outcome};
use i18n::{t, Msg};
use state::AdminState;

pub use routes::configure;

/// Proof that a request carries the admin key (`AUTH_KEY`), taken from the same places a proxy
/// key may be and compared in constant time, through the login throttle. Every protected handler
/// takes it as its first argument, so unknown paths still answer 404 without asking for
/// credentials and a missing credential is reported before any body error. It holds one of the
/// node's concurrency slots while the handler runs: only authenticated admin work takes one.
pub struct Admin {
    _slot: Slot,
}

impl FromRequest for Admin {
    type Error = AdminError;
    type Future = LocalBoxFuture<'static, Result<Self, AdminError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let outcome = match req.app_data::<web::Data<AdminState>>() {
            Some(state) => weigh_admin_key(
                state,
                req,
                credentials::extract(req.headers(), req.query_string()).as_deref(),
            ),
            None => Outcome::Denied {
                delay: Duration::ZERO,
            },
        };
        let admission = req
            .app_data::<web::Data<AdminState>>()
            .map(|state| state.admission.clone());
        Box::pin(async move {
            settle(outcome).await?;
            let admission = admission.ok_or(AdminError::Unauthorized)?;
            Ok(Admin {
                _slot: admission.slot()?,
            })
        })
    }
}

/// Weighs an admin key a request offers, through the login throttle of its client address. A
/// missing key is refused at once and not counted: it guesses nothing.
pub fn weigh_admin_key(state: &AdminState, req: &HttpRequest, given: Option<&str>) -> Outcome {
    let Some(given) = given.filter(|g| !g.is_empty()) else {
        return Outcome::Denied {
            delay: Duration::ZERO,
        };
    };
    let addr = client_addr(
        req.peer_addr().map(|a| a.ip()),
        req.headers(),
        &state.config.trusted_proxies,
    );
    let expected = [state.config.auth_key.expose().to_string()];
    state
        .login_throttle
        .attempt(addr, given, || credentials::matches_any(given, &expected))
}

/// The start of the current UTC hour.
pub fn current_hour() -> NaiveDateTime {
    let now = Utc::now();
    now.duration_trunc(ChronoDuration::hours(1))
        .unwrap_or(now)
        .naive_utc()
}

/// The answer an outcome calls for: a wrong key waits out its delay before its 401; a locked-out
/// address gets 429 with the seconds left (rounded up).
pub async fn settle(outcome: Outcome) -> Result<(), AdminError> {
    match outcome {
        Outcome::Granted => Ok(()),
        Outcome::Denied { delay } => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Err(AdminError::Unauthorized)
        }
        Outcome::Locked { retry_after } => Err(AdminError::TooManyAttempts {
            retry_after_secs: (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
                .max(1),
        }),
    }
}

/// A stored UTC time as RFC 3339 with a zone.
pub use crate::db::models::rfc3339 as timestamp;

/// An optional stored time.
pub fn timestamp_opt(t: &Option<NaiveDateTime>) -> Option<String> {
    t.as_ref().map(timestamp)
}

/// `Content-Disposition: attachment; filename=NAME` with the name unquoted, byte for byte what
/// GPT-Load sends. Our file names are `[A-Za-z0-9._-]` (group names are restricted to that);
/// anything else is quoted to keep the header valid.
pub fn attachment(filename: &str) -> (actix_web::http::header::HeaderName, String) {
    let plain = filename
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let value = if plain {
        format!("attachment; filename={filename}")
    } else {
        format!(
            "attachment; filename=\"{}\"",
            filename.replace(['"', '\\'], "_")
        )
    };
    (actix_web::http::header::CONTENT_DISPOSITION, value)
}

/// A positive integer id from a path segment, or 400 with `msg`.
pub fn parse_id(raw: &str, msg: Msg) -> Result<i64, AdminError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| AdminError::BadRequest(t(msg)))
}

/// The group with this id, or 404 "Group not found".
pub async fn require_group(
    state: &AdminState,
    id: i64,
) -> Result<crate::db::models::GroupRow, AdminError> {
    state
        .repo
        .group(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(t(Msg::GroupNotFound)))
}
