//! The error of the dashboard's server functions.
//!
//! It carries only what a user may read: internal failures become
//! [`AppError::Internal`] (the cause is logged on the server).

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// What went wrong, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// The project or run does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Input that breaks a rule; shown next to the form.
    #[error("{0}")]
    Invalid(String),
    /// A name that is taken, or a change that conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The server failed; details are in its log.
    #[error("the server failed to handle this request; the failure has been logged")]
    Internal,
    /// The request did not reach the server or its answer did not arrive.
    #[error("could not reach the server: {0}")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(message) => AppError::Invalid(message),
            other => AppError::Transport(other.to_string()),
        }
    }
}

/// Maps a service failure to what the user may read, and sets the HTTP
/// status of the response it leaves with: 404, 400 or 409 rather than the
/// 500 server functions answer by default (during server rendering, the
/// page's own status).
#[cfg(feature = "ssr")]
impl From<trellis_services::ServiceError> for AppError {
    fn from(error: trellis_services::ServiceError) -> Self {
        use http::StatusCode;
        use trellis_services::ServiceError;
        let (status, app_error) = match error {
            ServiceError::NotFound { .. } => {
                (StatusCode::NOT_FOUND, AppError::NotFound(error.to_string()))
            }
            ServiceError::Invalid { .. } => (
                StatusCode::BAD_REQUEST,
                AppError::Invalid(error.to_string()),
            ),
            ServiceError::Conflict(_) | ServiceError::Transition(_) => {
                (StatusCode::CONFLICT, AppError::Conflict(error.to_string()))
            }
            ServiceError::Unexpected(_) | ServiceError::Dependency(_) => {
                tracing::error!(error = ?error, "dashboard request failed: {error}");
                (StatusCode::INTERNAL_SERVER_ERROR, AppError::Internal)
            }
        };
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(status);
        }
        app_error
    }
}

/// The services, as provided to every server function by the server.
#[cfg(feature = "ssr")]
pub fn services() -> Result<trellis_services::Services, AppError> {
    leptos::prelude::use_context::<trellis_services::Services>().ok_or(AppError::Internal)
}
