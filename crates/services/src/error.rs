//! The services' error. Edges map each variant to a status once: not found
//! to 404, invalid to 400 (422 for semantic problems is not used, as
//! Polyaxon uses 400), conflicts to 409, the rest to 500.

use trellis_db::DbError;
use trellis_domain::lifecycle::TransitionError;

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// An owner, project or run that does not exist.
    #[error("{entity} `{id}` was not found")]
    NotFound { entity: &'static str, id: String },
    /// Input that breaks a rule; `field` names the offending input.
    #[error("{message}")]
    Invalid {
        field: Option<&'static str>,
        message: String,
    },
    /// A name that is already taken.
    #[error("{0}")]
    Conflict(String),
    /// A status change the lifecycle refuses.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// A failure of the database or another dependency; not the caller's fault.
    #[error("unexpected failure: {0}")]
    Unexpected(#[from] DbError),
    /// The work queue or another service outside the database failed.
    #[error("a dependency failed: {0}")]
    Dependency(String),
}

impl ServiceError {
    pub(crate) fn invalid(field: &'static str, error: impl std::fmt::Display) -> Self {
        ServiceError::Invalid {
            field: Some(field),
            message: error.to_string(),
        }
    }
}

/// Result of a use case.
pub type ServiceResult<T> = Result<T, ServiceError>;
