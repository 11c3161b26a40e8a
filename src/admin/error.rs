//! The admin API's error: what a handler under `/api` answers with, and the one mapping of the
//! service and database layers' failures to HTTP statuses.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use gpt_load_actors::key_pool::PoolError;
use gpt_load_actors::ports::PortError;

use crate::db::DbError;
use crate::http::error::{respond, EdgeError, Envelope};
use crate::service::ServiceError;

/// Every error an admin handler can answer with.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    BadRequest(String),
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
    /// Too many failed admin-key attempts from this address; retry after this many seconds.
    #[error("Too many failed authentication attempts; retry later")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("{0}")]
    Internal(String),
    #[error("Database operation failed")]
    Database(#[source] DbError),
    /// The database (or the cluster store) is out of reach: worth a retry.
    #[error("The database is unavailable; try again shortly")]
    DatabaseUnavailable(#[source] DbError),
    #[error(transparent)]
    Edge(#[from] EdgeError),
}

impl From<DbError> for AdminError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Duplicate => AdminError::Duplicate("Resource already exists".into()),
            DbError::NotFound => AdminError::NotFound("Resource not found".into()),
            other if other.is_unavailable() => AdminError::DatabaseUnavailable(other),
            other => AdminError::Database(other),
        }
    }
}

/// The one mapping of service failures to HTTP: an unavailable store is a 503 worth a retry
/// (as an unavailable database is), a conflict a 409, the rest a 500 whose text says which part
/// failed.
impl From<ServiceError> for AdminError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Database(err) => err.into(),
            ServiceError::Store(err) | ServiceError::KeyPool(PoolError::Store(err)) => err.into(),
            other @ (ServiceError::KeyPool(_) | ServiceError::Registry(_)) => {
                AdminError::Internal(other.to_string())
            }
        }
    }
}

impl From<PortError> for AdminError {
    fn from(err: PortError) -> Self {
        match err {
            PortError::Unavailable(reason) => {
                AdminError::DatabaseUnavailable(DbError::Unavailable(reason))
            }
            PortError::NotFound(_) => AdminError::NotFound("Resource not found".into()),
            PortError::Conflict(_) => AdminError::Duplicate("Resource already exists".into()),
            PortError::Other(reason) => AdminError::Internal(reason),
        }
    }
}

/// Handlers talk to the key pool directly for views; its failures map as a service's do.
impl From<PoolError> for AdminError {
    fn from(err: PoolError) -> Self {
        ServiceError::from(err).into()
    }
}

impl Envelope for AdminError {
    fn status(&self) -> StatusCode {
        match self {
            AdminError::BadRequest(_) | AdminError::Validation(_) => StatusCode::BAD_REQUEST,
            AdminError::Duplicate(_) | AdminError::TaskInProgress(_) => StatusCode::CONFLICT,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            AdminError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Internal(_) | AdminError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AdminError::Edge(edge) => edge.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AdminError::BadRequest(_) => "BAD_REQUEST",
            AdminError::Validation(_) => "VALIDATION_FAILED",
            AdminError::Duplicate(_) => "DUPLICATE_RESOURCE",
            AdminError::NotFound(_) => "NOT_FOUND",
            AdminError::Unauthorized => "UNAUTHORIZED",
            AdminError::TaskInProgress(_) => "TASK_IN_PROGRESS",
            AdminError::TooManyAttempts { .. } => "TOO_MANY_REQUESTS",
            AdminError::Internal(_) => "INTERNAL_SERVER_ERROR",
            AdminError::Database(_) => "DATABASE_ERROR",
            AdminError::DatabaseUnavailable(_) => "DATABASE_UNAVAILABLE",
            AdminError::Edge(edge) => edge.code(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            AdminError::DatabaseUnavailable(_) => Some(1),
            AdminError::TooManyAttempts { retry_after_secs } => Some(*retry_after_secs),
            AdminError::Edge(edge) => edge.retry_after(),
            _ => None,
        }
    }

    fn closes_connection(&self) -> bool {
        matches!(self, AdminError::Edge(edge) if edge.closes_connection())
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        // The cause goes to the log; the client gets the generic text (it may name tables).
        match self {
            AdminError::Database(err) => {
                tracing::error!(error = %err, "Database operation failed.")
            }
            AdminError::DatabaseUnavailable(err) => {
                tracing::warn!(error = %err, "The database is unavailable.")
            }
            _ => {}
        }
        respond(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edge_error_keeps_its_status_code_and_headers() {
        let err = AdminError::from(EdgeError::Overloaded);
        let res = err.error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.code(), "TOO_MANY_REQUESTS");
        assert_eq!(res.headers().get("retry-after").unwrap(), "1");
    }

    #[test]
    fn a_cluster_store_out_of_reach_is_a_503_worth_a_retry_not_a_500() {
        use gpt_load_actors::cluster::StoreError;
        let down = AdminError::from(PortError::from(StoreError::Unavailable("refused".into())));
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.retry_after(), Some(1));
        let refused = AdminError::from(PortError::from(StoreError::Command("WRONGTYPE".into())));
        assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn a_locked_out_address_is_told_when_to_retry() {
        let res = AdminError::TooManyAttempts {
            retry_after_secs: 42,
        }
        .error_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers().get("retry-after").unwrap(), "42");
    }
}
