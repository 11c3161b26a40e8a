//! The one error type of the HTTP edge and its mapping to GPT-Load's JSON envelope
//! `{"code": "STRING", "message": "..."}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use gpt_load_actors::key_pool::PoolError;
use gpt_load_actors::ports::PortError;

use crate::db::DbError;
use crate::service::ServiceError;

/// Every error an HTTP handler can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Duplicate(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Authentication failed")]
    Unauthorized,
    #[error("{0}")]
    TaskInProgress(String),
    #[error("Request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    NoKeysAvailable(String),
    #[error("Too many concurrent requests")]
    Overloaded,
    /// Request bodies in memory fill `REQUEST_BODY_MEMORY_MB`.
    #[error("Too much request body data in flight; retry shortly")]
    BodyBudget,
    /// The body did not arrive within `SERVER_READ_TIMEOUT`; the connection is closed.
    #[error("Request body not received in time")]
    RequestTimeout,
    /// The graceful stop deadline passed before the answer was complete.
    #[error("Server stopped before the response was complete")]
    Stopping,
    /// Too many failed admin-key attempts from this address; retry after this many seconds.
    #[error("Too many failed authentication attempts; retry later")]
    TooManyAttempts { retry_after_secs: u64 },
    /// A failure talking to the upstream, answered with the status it implies.
    #[error("{message}")]
    Upstream { status: StatusCode, message: String },
    #[error("{0}")]
    Internal(String),
    #[error("Database operation failed")]
    Database(#[source] DbError),
    /// The database is out of reach (down, hung, locked past `DB_TIMEOUT_MS`): worth a retry.
    #[error("The database is unavailable; try again shortly")]
    DatabaseUnavailable(#[source] DbError),
}

impl ApiError {
    /// The envelope's string code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BAD_REQUEST",
            ApiError::InvalidJson(_) => "INVALID_JSON",
            ApiError::Validation(_) => "VALIDATION_FAILED",
            ApiError::Duplicate(_) => "DUPLICATE_RESOURCE",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Unauthorized => "UNAUTHORIZED",
            ApiError::TaskInProgress(_) => "TASK_IN_PROGRESS",
            ApiError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            ApiError::NoKeysAvailable(_) => "NO_KEYS_AVAILABLE",
            ApiError::Overloaded | ApiError::BodyBudget | ApiError::TooManyAttempts { .. } => {
                "TOO_MANY_REQUESTS"
            }
            ApiError::RequestTimeout => "REQUEST_TIMEOUT",
            ApiError::Stopping => "SERVICE_UNAVAILABLE",
            ApiError::Upstream { .. } => "UPSTREAM_ERROR",
            ApiError::Internal(_) => "INTERNAL_SERVER_ERROR",
            ApiError::Database(_) => "DATABASE_ERROR",
            ApiError::DatabaseUnavailable(_) => "DATABASE_UNAVAILABLE",
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Duplicate => ApiError::Duplicate("Resource already exists".into()),
            DbError::NotFound => ApiError::NotFound("Resource not found".into()),
            other if other.is_unavailable() => ApiError::DatabaseUnavailable(other),
            other => ApiError::Database(other),
        }
    }
}

/// The one mapping of service failures to HTTP: an unavailable store is a 503 worth a retry
/// (as an unavailable database is), a conflict a 409, the rest a 500 whose text says which part
/// failed.
impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Database(err) => err.into(),
            ServiceError::Store(err) | ServiceError::KeyPool(PoolError::Store(err)) => match err {
                PortError::Unavailable(reason) => {
                    ApiError::DatabaseUnavailable(DbError::Unavailable(reason))
                }
                PortError::NotFound(_) => ApiError::NotFound("Resource not found".into()),
                PortError::Conflict(_) => ApiError::Duplicate("Resource already exists".into()),
                PortError::Other(reason) => ApiError::Internal(reason),
            },
            other @ (ServiceError::KeyPool(_) | ServiceError::Registry(_)) => {
                ApiError::Internal(other.to_string())
            }
        }
    }
}

/// Handlers talk to the key pool directly for views; its failures map as a service's do.
impl From<PoolError> for ApiError {
    fn from(err: PoolError) -> Self {
        ServiceError::from(err).into()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidJson(_) | ApiError::Validation(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Duplicate(_) | ApiError::TaskInProgress(_) => StatusCode::CONFLICT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NoKeysAvailable(_)
            | ApiError::Overloaded
            | ApiError::BodyBudget
            | ApiError::Stopping
            | ApiError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Upstream { status, .. } => *status,
            ApiError::Internal(_) | ApiError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            // The cause goes to the log; the client gets the generic text (it may name tables).
            ApiError::Database(err) => tracing::error!(error = %err, "Database operation failed."),
            ApiError::DatabaseUnavailable(err) => {
                tracing::warn!(error = %err, "The database is unavailable.")
            }
            _ => {}
        }
        let mut builder = HttpResponse::build(self.status_code());
        match self {
            ApiError::Overloaded | ApiError::BodyBudget | ApiError::DatabaseUnavailable(_) => {
                builder.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::TooManyAttempts { retry_after_secs } => {
                builder.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        if matches!(self, ApiError::RequestTimeout) {
            // The rest of the body may still come: the connection cannot carry another request.
            builder.force_close();
        }
        builder.json(json!({"code": self.code(), "message": self.to_string()}))
    }
}

/// `{"error": "Not Found"}`: GPT-Load's answer for unknown `/api` and `/proxy` paths.
pub fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": "Not Found"}))
}
