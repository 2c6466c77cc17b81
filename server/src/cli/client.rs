//! The CLI's HTTP client: JSON in, JSON out, and the API's error envelope
//! turned into one readable error.

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Why a command failed; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server refused the request (4xx): the message is the API's.
    #[error("{message} ({status})")]
    Refused { status: StatusCode, message: String },
    /// The server failed (5xx) or could not be reached.
    #[error("{0}")]
    Server(String),
    /// Bad input caught before any request (a missing file, a bad `-P`).
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    /// 1: refused by the server or invalid input; 3: server failure or
    /// unreachable. (clap exits with 2 for malformed command lines.)
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Refused { .. } | CliError::Usage(_) => 1,
            CliError::Server(_) => 3,
        }
    }
}

/// A client of one Trellis server's `/api/v1`.
pub struct ApiClient {
    http: reqwest::Client,
    /// `http://host:port`, without a trailing slash.
    base: String,
}

impl ApiClient {
    /// A client for the server at `host` (`http://127.0.0.1:8000`).
    pub fn new(host: &str) -> Result<Self, CliError> {
        // reqwest is built without a default TLS provider; use ring, which
        // the binary already has. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("trellis-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Server(format!("cannot create an HTTP client: {e}")))?;
        let base = host.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "--host must be a URL such as http://127.0.0.1:8000, got `{host}`"
            )));
        }
        Ok(Self { http, base })
    }

    /// The server's address, for dashboard links.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request to `path` (under the server's root) and returns the
    /// JSON answer (`Null` for an empty one).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            CliError::Server(format!(
                "cannot reach the Trellis server at {}: {e}",
                self.base
            ))
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CliError::Server(format!("the server's answer was cut off: {e}")))?;
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_success() {
            return Ok(json);
        }
        let message = json["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the server answered {status} to {url}"));
        if status.is_server_error() {
            Err(CliError::Server(format!("{message} ({status})")))
        } else {
            Err(CliError::Refused { status, message })
        }
    }

    /// `GET`.
    /// The WebSocket URL of stream `path` (under `/streams/v1`), when the
    /// server is plain HTTP; TLS streams are not built into the CLI, which
    /// then polls the REST API instead.
    pub fn stream_url(&self, path: &str) -> Option<String> {
        self.base
            .strip_prefix("http://")
            .map(|host| format!("ws://{host}/streams/v1{path}"))
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CliError> {
        self.call(Method::GET, path, query, None).await
    }

    /// `POST` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.call(Method::POST, path, &[], Some(body)).await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.call(Method::DELETE, path, &[], None).await
    }
}
