//! The admin REST API under `/api`, with GPT-Load's paths, fields and envelopes. One file per
//! resource; [`routes`] holds the one route table that both the router and the OpenAPI check
//! read; this file holds the auth extractor and small shared helpers.

pub mod dashboard;
pub mod group_ops;
pub mod groups;
pub mod i18n;
pub mod integration;
pub mod key_ops;
pub mod keys;
pub mod logs;
pub mod openapi;
pub mod response;
pub mod routes;
pub mod security;
pub mod settings;
pub mod subgroups;
pub mod system;
pub mod tasks;
pub mod usage;

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use chrono::{NaiveDateTime, SecondsFormat, TimeZone, Utc};

use crate::http::credentials;
use crate::http::error::ApiError;
use crate::state::AppState;
use i18n::{t, Msg};

pub use routes::configure;

/// Proof that a request carries the admin key (`AUTH_KEY`), taken from the same places a proxy
/// key may be and compared in constant time. Every protected handler takes it as its first
/// argument, so unknown paths still answer 404 without asking for credentials and a missing
/// credential is reported before any body error.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let authorized = match (
            req.app_data::<web::Data<AppState>>(),
            credentials::extract(req.headers(), req.query_string()),
        ) {
            (Some(state), Some(given)) => credentials::matches_any(
                &given,
                std::slice::from_ref(&state.config.auth_key.expose().to_string()),
            ),
            _ => false,
        };
        ready(if authorized {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        })
    }
}

/// A stored UTC time as RFC 3339 with a zone.
pub fn timestamp(t: &NaiveDateTime) -> String {
    Utc.from_utc_datetime(t)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An optional stored time.
pub fn timestamp_opt(t: &Option<NaiveDateTime>) -> Option<String> {
    t.as_ref().map(timestamp)
}

/// A positive integer id from a path segment, or 400 with `msg`.
pub fn parse_id(raw: &str, msg: Msg) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest(t(msg)))
}

/// The group with this id, or 404 "Group not found".
pub async fn require_group(
    state: &AppState,
    id: i64,
) -> Result<crate::db::models::GroupRow, ApiError> {
    state
        .repo
        .group(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(t(Msg::GroupNotFound)))
}
