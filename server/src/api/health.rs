//! `GET /healthz`: 200 when the database answers, 503 otherwise.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use trellis_api_types::Health;

use crate::startup::AppState;

/// Reports whether the server can reach its database.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let db = state.services.db();
    let (status, text) = match db.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(error) => {
            tracing::warn!(error = %error, "health check: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    };
    let body = Health {
        status: text.to_owned(),
        database: db.backend().as_str().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    (status, Json(body))
}
