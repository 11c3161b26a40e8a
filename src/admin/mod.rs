//! The admin REST API under `/api`, with GPT-Load's paths, fields and envelopes. One file per
//! resource; this file holds the routing, the auth middleware and the success envelope.

pub mod encryption;
pub mod groups;
pub mod keys;
pub mod settings;
pub mod system;

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::{NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde::Serialize;
use serde_json::json;

use crate::http::credentials;
use crate::http::error::ApiError;
use crate::state::AppState;

/// Registers every `/api` route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .route("/auth/login", web::post().to(system::login))
            .route("/channel-types", web::get().to(system::channel_types))
            .route("/groups", web::get().to(groups::list))
            .route("/groups", web::post().to(groups::create))
            .route("/groups/list", web::get().to(groups::list_brief))
            .route("/groups/{id}", web::put().to(groups::update))
            .route("/groups/{id}", web::delete().to(groups::delete))
            .route("/keys", web::get().to(keys::list))
            .route("/keys/add-multiple", web::post().to(keys::add_multiple))
            .route(
                "/keys/delete-multiple",
                web::post().to(keys::delete_multiple),
            )
            .route(
                "/dashboard/encryption-status",
                web::get().to(encryption::status),
            )
            .route("/settings", web::get().to(settings::list))
            .route("/settings", web::put().to(settings::update))
            .default_service(web::to(|| async { crate::http::error::not_found() })),
    );
}

/// Proof that a request carries the admin key (`AUTH_KEY`), taken from the same places a proxy
/// key may be and compared in constant time. Every protected handler takes it as an argument,
/// so unknown paths still answer 404 without asking for credentials.
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

/// `{"code": 0, "message": "Success", "data": …}`.
pub fn ok(data: impl Serialize) -> HttpResponse {
    HttpResponse::Ok().json(json!({"code": 0, "message": "Success", "data": data}))
}

/// A success with a message and no data.
pub fn ok_message(message: impl Into<String>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"code": 0, "message": message.into()}))
}

/// A success with a message and data.
pub fn ok_with(message: impl Into<String>, data: impl Serialize) -> HttpResponse {
    HttpResponse::Ok().json(json!({"code": 0, "message": message.into(), "data": data}))
}

/// A stored UTC time as RFC 3339 with a zone.
pub fn timestamp(t: &NaiveDateTime) -> String {
    Utc.from_utc_datetime(t)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An optional stored time, `null` when unset.
pub fn timestamp_opt(t: &Option<NaiveDateTime>) -> serde_json::Value {
    t.as_ref()
        .map_or(serde_json::Value::Null, |t| json!(timestamp(t)))
}

/// A positive integer id from a path segment, or 400.
pub fn parse_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest(format!("Invalid {what} ID format")))
}
