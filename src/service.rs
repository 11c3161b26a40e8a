//! The service layer's error: what goes wrong below HTTP (the database, the key pool, the group
//! registry, the stores behind the actors' ports), with the lower layer's kind kept. Key sync,
//! config reloads and probe results answer with it; `http::error` maps it to HTTP, once.

use gpt_load_actors::key_pool::PoolError;
use gpt_load_actors::ports::PortError;

use crate::db::DbError;

/// Why a service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Database(#[from] DbError),
    /// The key pool is gone or could not store a change; its message is the one place that says
    /// "key pool unavailable".
    #[error(transparent)]
    KeyPool(#[from] PoolError),
    /// The group registry actor did not answer.
    #[error("group registry unavailable: {0}")]
    Registry(#[from] actix::MailboxError),
    /// A store behind one of the actors' ports failed (loading groups, settings or keys).
    #[error(transparent)]
    Store(#[from] PortError),
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::ResponseError;

    use super::*;
    use crate::admin::error::AdminError;

    fn status(err: impl Into<ServiceError>) -> StatusCode {
        AdminError::from(err.into()).status_code()
    }

    #[test]
    fn the_database_error_kind_survives_the_port() {
        assert_eq!(
            PortError::from(DbError::Unavailable("down".into())),
            PortError::Unavailable("the database is unavailable: down".into())
        );
        assert!(matches!(
            PortError::from(DbError::Duplicate),
            PortError::Conflict(_)
        ));
        assert!(matches!(
            PortError::from(DbError::NotFound),
            PortError::NotFound(_)
        ));
        assert!(matches!(
            PortError::from(DbError::Corrupt("x".into())),
            PortError::Other(_)
        ));
    }

    #[test]
    fn one_mapping_to_http_keeps_the_kind() {
        let unavailable = PortError::from(DbError::Pool("timed out".into()));
        assert_eq!(status(unavailable.clone()), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            status(PoolError::Store(unavailable)),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(PortError::Conflict("taken".into())),
            StatusCode::CONFLICT
        );
        assert_eq!(status(DbError::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            status(PoolError::WriterGone),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            ServiceError::from(actix::MailboxError::Closed).to_string(),
            "group registry unavailable: Mailbox has closed"
        );
    }
}
