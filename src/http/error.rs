//! The one mapping of errors to GPT-Load's JSON envelope `{"code": "STRING", "message": "..."}`,
//! and the errors the edge itself raises before a handler has a say (admission, body limits and
//! deadlines, malformed extractor input). The admin API (`AdminError`) and the proxy
//! (`ProxyError`) each have their own error type; both answer through [`respond`].

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// What the envelope needs from an error of the HTTP edge. The message is its `Display`.
pub trait Envelope: std::fmt::Display {
    fn status(&self) -> StatusCode;
    /// The envelope's string code.
    fn code(&self) -> &'static str;
    /// Seconds for `Retry-After`, when a retry soon is worth it.
    fn retry_after(&self) -> Option<u64> {
        None
    }
    /// True when the connection cannot carry another request (the rest of a body may follow).
    fn closes_connection(&self) -> bool {
        false
    }
}

/// The response of any edge error: status, headers and the JSON envelope.
pub fn respond(err: &impl Envelope) -> HttpResponse {
    let mut builder = HttpResponse::build(err.status());
    if let Some(secs) = err.retry_after() {
        builder.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    if err.closes_connection() {
        builder.force_close();
    }
    builder.json(json!({"code": err.code(), "message": err.to_string()}))
}

/// Errors raised by the edge itself, shared by the admin API and the proxy.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// Every concurrency slot (`MAX_CONCURRENT_REQUESTS`) is taken.
    #[error("Too many concurrent requests")]
    Overloaded,
    /// Request bodies in memory fill `REQUEST_BODY_MEMORY_MB`.
    #[error("Too much request body data in flight; retry shortly")]
    BodyBudget,
    /// The body did not arrive within `SERVER_READ_TIMEOUT`; the connection is closed.
    #[error("Request body not received in time")]
    RequestTimeout,
    #[error("Request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A query string or path segment an extractor could not read.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidJson(String),
}

impl Envelope for EdgeError {
    fn status(&self) -> StatusCode {
        match self {
            EdgeError::Overloaded | EdgeError::BodyBudget => StatusCode::SERVICE_UNAVAILABLE,
            EdgeError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            EdgeError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            EdgeError::BadRequest(_) | EdgeError::InvalidJson(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            EdgeError::Overloaded | EdgeError::BodyBudget => "TOO_MANY_REQUESTS",
            EdgeError::RequestTimeout => "REQUEST_TIMEOUT",
            EdgeError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            EdgeError::BadRequest(_) => "BAD_REQUEST",
            EdgeError::InvalidJson(_) => "INVALID_JSON",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        matches!(self, EdgeError::Overloaded | EdgeError::BodyBudget).then_some(1)
    }

    fn closes_connection(&self) -> bool {
        matches!(self, EdgeError::RequestTimeout)
    }
}

impl ResponseError for EdgeError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        respond(self)
    }
}

/// `{"error": "Not Found"}`: GPT-Load's answer for unknown `/api` and `/proxy` paths.
pub fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": "Not Found"}))
}
