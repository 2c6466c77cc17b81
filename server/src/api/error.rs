//! The API's one error envelope: `{"error": {"code", "message", "details"}}`.
//!
//! Client errors (4xx) name the problem and are not logged as errors.
//! Server errors (5xx) are logged here, once, with their cause; the client
//! gets an opaque message, never internal text.

use std::any::Any;

use axum::Json;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use trellis_api_types::{ErrorBody, ErrorDetail};
use trellis_services::ServiceError;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<serde_json::Value>,
}

impl ApiError {
    /// A 400 naming the offending input.
    pub fn invalid(field: Option<&str>, error: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            message: error.to_string(),
            details: field.map(|f| json!({ "field": f })),
        }
    }

    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// The HTTP status this error leaves with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::NotFound { entity, ref id } => Self {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: error.to_string(),
                details: Some(json!({ "entity": entity, "id": id })),
            },
            ServiceError::Invalid { field, message } => Self::invalid(field, message),
            ServiceError::Conflict(message) => Self::new(StatusCode::CONFLICT, "conflict", message),
            ServiceError::Transition(transition) => Self::new(
                StatusCode::CONFLICT,
                "invalid_transition",
                transition.to_string(),
            ),
            ServiceError::Unexpected(_) | ServiceError::Dependency(_) => {
                tracing::error!(error = ?error, "request failed: {error}");
                Self::internal()
            }
        }
    }
}

impl ApiError {
    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle this request; the failure has been logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// Unknown routes under `/api/v1`.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no API route matches `{}`", uri.path()),
    )
}

/// A known route called with the wrong method.
pub async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("`{}` does not accept this method", uri.path()),
    )
}

/// Turns a panic in a handler into the 500 envelope (and logs it) instead of
/// a dropped connection.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "a request handler panicked");
    ApiError::internal().into_response()
}
