//! WebSocket streams under `/streams/v1`: a run's logs, resumable from a
//! cursor, and a project's status changes.
//!
//! Handlers resolve the run or project before upgrading, so an unknown id
//! or a bad cursor is a plain 4xx with the API's error envelope; after the
//! upgrade they only copy a service follower's messages to the socket.

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use trellis_services::runs::RunRef;
use trellis_services::streams::{LogFollower, StatusFollower};

use crate::api::error::{self, ApiError, ApiResult};
use crate::api::extract::ApiQuery;
use crate::startup::AppState;

/// The `/streams/v1` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{owner}/{project}/runs/statuses", get(project_statuses))
        .route("/{owner}/{project}/runs/{uuid}/logs", get(run_logs))
        .fallback(error::not_found)
}

/// The upgrade, taken as a result so that an unknown run or a bad cursor is
/// reported before a missing upgrade.
type Upgrade = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

fn upgrade(ws: Upgrade) -> Result<WebSocketUpgrade, ApiError> {
    ws.map_err(|rejection| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            format!("this is a WebSocket stream: {}", rejection.body_text()),
        )
    })
}

/// Query of the log stream.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogStreamParams {
    /// Resume after this line (the `next_cursor` last received); 0 or
    /// absent: from the first line.
    pub cursor: Option<i64>,
}

/// `GET /streams/v1/{owner}/{project}/runs/{uuid}/logs?cursor=N`: a
/// WebSocket of `RunLogs` messages; the last has `done: true`, then the
/// server closes the socket.
pub async fn run_logs(
    State(state): State<AppState>,
    Path((owner, project, uuid)): Path<(String, String, String)>,
    ApiQuery(params): ApiQuery<LogStreamParams>,
    ws: Upgrade,
) -> ApiResult<Response> {
    let at = RunRef {
        owner: &owner,
        project: &project,
        uuid: &uuid,
    };
    let follower = LogFollower::new(&state.services, at, params.cursor.unwrap_or(0)).await?;
    Ok(upgrade(ws)?.on_upgrade(move |socket| pump_logs(socket, follower)))
}

async fn pump_logs(mut socket: WebSocket, mut follower: LogFollower) {
    loop {
        tokio::select! {
            next = follower.next() => match next {
                Ok(Some(message)) => {
                    if send_json(&mut socket, &message).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(error = ?error, "log stream failed: {error}");
                    let _ = socket.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1011,
                        reason: Utf8Bytes::from("the log stream failed; reconnect with your cursor"),
                    }))).await;
                    return;
                }
            },
            incoming = socket.recv() => {
                // The client says nothing but pings and goodbye.
                if matches!(incoming, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                    return;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

/// `GET /streams/v1/{owner}/{project}/runs/statuses`: a WebSocket of
/// `StatusStreamMessage`s for the project's runs, from the moment it opens.
pub async fn project_statuses(
    State(state): State<AppState>,
    Path((owner, project)): Path<(String, String)>,
    ws: Upgrade,
) -> ApiResult<Response> {
    let follower = StatusFollower::new(&state.services, &owner, &project).await?;
    Ok(upgrade(ws)?.on_upgrade(move |socket| pump_statuses(socket, follower)))
}

async fn pump_statuses(mut socket: WebSocket, mut follower: StatusFollower) {
    loop {
        tokio::select! {
            next = follower.next() => match next {
                Some(message) => {
                    if send_json(&mut socket, &message).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            incoming = socket.recv() => {
                if matches!(incoming, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                    return;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

async fn send_json<T: Serialize>(socket: &mut WebSocket, message: &T) -> Result<(), axum::Error> {
    let text = serde_json::to_string(message).map_err(axum::Error::new)?;
    socket.send(Message::Text(Utf8Bytes::from(text))).await
}
