//! The proxy's error: what `/proxy/{group}/…` answers with when it does not relay an upstream
//! answer, in GPT-Load's envelope.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::http::error::{respond, EdgeError, Envelope};

/// Every error the proxy handler can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No credential, or one that is neither a global nor the group's proxy key.
    #[error("Authentication failed")]
    Unauthorized,
    /// A valid global key named a group that does not exist.
    #[error("Group '{0}' not found")]
    GroupNotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NoKeysAvailable(String),
    /// The graceful stop deadline passed before the answer was complete.
    #[error("Server stopped before the response was complete")]
    Stopping,
    /// A failure talking to the upstream, answered with the status it implies.
    #[error("{message}")]
    Upstream { status: StatusCode, message: String },
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Edge(#[from] EdgeError),
}

impl Envelope for ProxyError {
    fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unauthorized => StatusCode::UNAUTHORIZED,
            ProxyError::GroupNotFound(_) => StatusCode::NOT_FOUND,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoKeysAvailable(_) | ProxyError::Stopping => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Upstream { status, .. } => *status,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::Edge(edge) => edge.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ProxyError::Unauthorized => "UNAUTHORIZED",
            ProxyError::GroupNotFound(_) => "NOT_FOUND",
            ProxyError::BadRequest(_) => "BAD_REQUEST",
            ProxyError::NoKeysAvailable(_) => "NO_KEYS_AVAILABLE",
            ProxyError::Stopping => "SERVICE_UNAVAILABLE",
            ProxyError::Upstream { .. } => "UPSTREAM_ERROR",
            ProxyError::Internal(_) => "INTERNAL_SERVER_ERROR",
            ProxyError::Edge(edge) => edge.code(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ProxyError::Edge(edge) => edge.retry_after(),
            _ => None,
        }
    }

    fn closes_connection(&self) -> bool {
        matches!(self, ProxyError::Edge(edge) if edge.closes_connection())
    }
}

impl ResponseError for ProxyError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        respond(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_body_closes_the_connection() {
        let res = ProxyError::from(EdgeError::RequestTimeout).error_response();
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            res.head().connection_type(),
            actix_web::http::ConnectionType::Close
        );
    }

    #[test]
    fn an_upstream_failure_answers_with_its_status() {
        let err = ProxyError::Upstream {
            status: StatusCode::BAD_GATEWAY,
            message: "connection refused".into(),
        };
        assert_eq!(err.error_response().status(), StatusCode::BAD_GATEWAY);
        assert_eq!(err.code(), "UPSTREAM_ERROR");
    }
}
