//! The workspace proxy: `/services/v1/...` and `/rewrite-services/v1/...`
//! relay requests, streamed bodies and WebSocket upgrades to the service a
//! run serves, wherever its executor runs it.
//!
//! What is decided (which run and port a path names, which headers pass,
//! how `Location` and cookies are rewritten, when an idle service is
//! culled) lives in [`trellis_domain::proxy`]; where a port is served comes
//! from [`trellis_services::workspaces::Workspaces::target`]. This module
//! moves bytes: bodies stream in both directions without buffering, and an
//! upgraded connection is relayed byte for byte (every WebSocket frame
//! kind, close codes included) until either side closes.
//!
//! Every proxied request passes one middleware layer, `guard`: it parses
//! and checks the path before any lookup. It is where access control sits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::any;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::broadcast::error::RecvError;
use trellis_domain::proxy::{self as rules, PrefixMode, ServicePath};
use trellis_events::Event;
use trellis_services::Services;
use trellis_services::workspaces::{Activity, Target};
use uuid::Uuid;

use crate::api::error::ApiError;
use crate::startup::AppState;

/// How long a looked-up address is reused without asking the database.
/// Status events clear it sooner; this bounds a missed event.
const CACHE_TTL: Duration = Duration::from_secs(5);

/// How long the proxy waits for a service to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The proxy's routes, behind `guard`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/services/v1/{*rest}", any(relay))
        .route("/rewrite-services/v1/{*rest}", any(relay))
        .route_layer(middleware::from_fn(guard))
}

/// The HTTP client and address cache the proxy shares across requests.
#[derive(Clone)]
pub struct Proxy {
    client: Client<HttpConnector, Body>,
    cache: Arc<TargetCache>,
}

impl Default for Proxy {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            cache: Arc::default(),
        }
    }
}

/// Looked-up addresses by run and declared port.
#[derive(Default)]
struct TargetCache {
    entries: Mutex<HashMap<(Uuid, u16), Cached>>,
    /// The task that clears entries on status events, started on first use
    /// (the router is built before the runtime serves).
    watcher: OnceLock<()>,
}

struct Cached {
    owner: String,
    project: String,
    authority: String,
    /// The run's traffic record, kept here so a cached request takes one
    /// lock, not two.
    activity: Arc<Activity>,
    at: Instant,
}

impl TargetCache {
    fn get(&self, path: &ServicePath) -> Option<(String, Arc<Activity>)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&(path.uuid, path.port))
            .filter(|c| {
                c.at.elapsed() < CACHE_TTL && c.owner == path.owner && c.project == path.project
            })
            .map(|c| (c.authority.clone(), c.activity.clone()))
    }

    fn put(&self, path: &ServicePath, authority: &str, activity: Arc<Activity>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, c| c.at.elapsed() < CACHE_TTL);
        entries.insert(
            (path.uuid, path.port),
            Cached {
                owner: path.owner.clone(),
                project: path.project.clone(),
                authority: authority.to_owned(),
                activity,
                at: Instant::now(),
            },
        );
    }

    fn forget(&self, run: Uuid) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|(uuid, _), _| *uuid != run);
    }

    fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Any status change of a run may move or end its service: its entries
    /// go. A lagged receiver may have missed one: everything goes.
    fn watch(self: &Arc<Self>, services: &Services) {
        self.watcher.get_or_init(|| {
            let mut events = services.events().subscribe();
            let cache = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    let event = events.recv().await;
                    let Some(cache) = cache.upgrade() else { return };
                    match event {
                        Ok(Event::Status { run, .. }) => cache.forget(run),
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => cache.clear(),
                        Err(RecvError::Closed) => return,
                    }
                }
            });
        });
    }
}

/// The one layer every proxied request passes: the path must name a run's
/// port, with no dot segments or encoded tricks, before anything is looked
/// up. The parsed [`ServicePath`] travels on as an extension.
async fn guard(mut request: Request, next: Next) -> Response {
    let mode = if request
        .uri()
        .path()
        .starts_with(PrefixMode::Stripped.root())
    {
        PrefixMode::Stripped
    } else {
        PrefixMode::Kept
    };
    match ServicePath::parse(mode, request.uri().path()) {
        Ok(path) => {
            request.extensions_mut().insert(path);
            next.run(request).await
        }
        Err(error) => ApiError::invalid(Some("path"), error).into_response(),
    }
}

/// Relays one request to the service `path` names.
async fn relay(State(state): State<AppState>, mut request: Request) -> Response {
    let Some(path) = request.extensions_mut().remove::<ServicePath>() else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the proxy's path check did not run",
        )
        .into_response();
    };
    let proxy = &state.proxy;
    proxy.cache.watch(&state.services);
    let (authority, activity) = match proxy.cache.get(&path) {
        Some(found) => found,
        None => match lookup(
            &state,
            &path,
            request.headers().get(header::ACCEPT).cloned(),
        )
        .await
        {
            Ok(found) => found,
            Err(response) => return *response,
        },
    };
    activity.touch();
    let client_upgrade = is_upgrade(request.headers()).then(|| hyper::upgrade::on(&mut request));
    let public_host = public_host(request.headers());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (parts, body) = request.into_parts();
    let upstream_request = match upstream_request(
        &path,
        &authority,
        &parts.uri,
        parts.method,
        &parts.headers,
        public_host.as_deref(),
        peer,
        body,
    ) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let mut response = match proxy.client.request(upstream_request).await {
        Ok(response) => response,
        Err(error) => {
            // The service may have just ended: say so if it did.
            proxy.cache.forget(path.uuid);
            tracing::debug!(error = ?error, "proxying to run {} failed", path.uuid);
            if error.is_connect()
                && let Err(answer) =
                    lookup_fresh(&state, &path, parts.headers.get(header::ACCEPT)).await
            {
                return *answer;
            }
            return ApiError::new(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                format!(
                    "the service of run {} did not answer on its port {}: {}",
                    path.uuid.simple(),
                    path.port,
                    describe(&error)
                ),
            )
            .into_response();
        }
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return ApiError::new(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the service switched protocols without being asked to",
            )
            .into_response();
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let (mut parts, _) = response.into_parts();
        let upgrade = parts.headers.get(header::UPGRADE).cloned();
        rewrite_response_headers(
            &mut parts.headers,
            &path,
            &authority,
            public_host.as_deref(),
        );
        if let Some(upgrade) = upgrade {
            parts.headers.insert(header::UPGRADE, upgrade);
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        tokio::spawn(tunnel(
            client_upgrade,
            upstream_upgrade,
            activity,
            path.uuid,
        ));
        return Response::from_parts(parts, Body::empty());
    }
    let (mut parts, body) = response.into_parts();
    rewrite_response_headers(
        &mut parts.headers,
        &path,
        &authority,
        public_host.as_deref(),
    );
    let touching = activity.clone();
    let body = body.map_frame(move |frame| {
        touching.touch();
        frame
    });
    Response::from_parts(parts, Body::new(body))
}

/// Where `path` is served, from the database; caches it. The error is the
/// answer: 404 for an unknown run or port, 503 for a run not serving.
async fn lookup(
    state: &AppState,
    path: &ServicePath,
    accept: Option<HeaderValue>,
) -> Result<(String, Arc<Activity>), Box<Response>> {
    let authority = lookup_fresh(state, path, accept.as_ref()).await?;
    let activity = state.services.activity().of(path.uuid);
    state.proxy.cache.put(path, &authority, activity.clone());
    Ok((authority, activity))
}

async fn lookup_fresh(
    state: &AppState,
    path: &ServicePath,
    accept: Option<&HeaderValue>,
) -> Result<String, Box<Response>> {
    match state.services.workspaces().target(path).await {
        Ok(Target::Serving { authority }) => Ok(authority),
        Ok(Target::NotServing { run }) => Err(Box::new(not_serving(&run, path, accept))),
        Err(error) => Err(Box::new(ApiError::from(error).into_response())),
    }
}

/// A run that is not serving: a page for browsers (with a link to the run
/// and a reload while it starts), the error envelope for API clients.
fn not_serving(
    run: &trellis_api_types::Run,
    path: &ServicePath,
    accept: Option<&HeaderValue>,
) -> Response {
    let status = run.status;
    let run_link = format!("/{}/{}/runs/{}", run.owner, run.project, run.uuid.simple());
    let pending = status.is_pending() || status.is_active();
    let message = if pending {
        format!(
            "Run {} is {status}; its service on port {} is not answering yet.",
            run.uuid.simple(),
            path.port
        )
    } else {
        format!(
            "Run {} is {status}; its service on port {} is no longer served.",
            run.uuid.simple(),
            path.port
        )
    };
    let wants_html = accept
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let mut response = if wants_html {
        let title = run.name.as_deref().unwrap_or("workspace");
        let refresh = if pending {
            r#"<meta http-equiv="refresh" content="2">"#
        } else {
            ""
        };
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\">{refresh}<title>{title} · Trellis</title></head>\
             <body style=\"font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;color:#1e293b\">\
             <h1 style=\"font-size:1.25rem\">{title}</h1><p data-status=\"{status}\">{message}</p>\
             <p><a href=\"{run_link}\">Open the run</a> to see its status and logs{}.</p></body></html>",
            if pending { "; this page reloads until the service answers" } else { " or resume it" },
            title = html_escape(title),
            message = html_escape(&message),
        ))
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "error": {
                    "code": "not_serving",
                    "message": message,
                    "details": { "status": status.as_str(), "run": run_link },
                }
            })),
        )
            .into_response()
    };
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    if pending {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    response
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// The host the browser addressed: `X-Forwarded-Host` from a proxy in
/// front of Trellis, else `Host`.
fn public_host(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(',').next().unwrap_or(h).trim().to_owned())
}

/// Header names a `Connection` header lists: hop-by-hop for this message.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

#[allow(clippy::too_many_arguments, reason = "one request's parts, named")]
fn upstream_request(
    path: &ServicePath,
    authority: &str,
    uri: &Uri,
    method: axum::http::Method,
    headers: &HeaderMap,
    public_host: Option<&str>,
    peer: Option<std::net::IpAddr>,
    body: Body,
) -> Result<axum::http::Request<Body>, Box<Response>> {
    let target = path.upstream_target(uri.query());
    let upstream_uri: Uri = format!("http://{authority}{target}").parse().map_err(|e| {
        Box::new(
            ApiError::invalid(Some("path"), format!("the path cannot be forwarded: {e}"))
                .into_response(),
        )
    })?;
    let listed = connection_listed(headers);
    let mut forwarded = HeaderMap::with_capacity(headers.len() + 6);
    for (name, value) in headers {
        let text = name.as_str();
        if rules::is_hop_by_hop(text)
            || listed.iter().any(|l| l == text)
            || text.starts_with("x-forwarded-")
        {
            continue;
        }
        forwarded.append(name.clone(), value.clone());
    }
    if is_upgrade(headers)
        && let Some(upgrade) = headers.get(header::UPGRADE)
    {
        forwarded.insert(header::UPGRADE, upgrade.clone());
        forwarded.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // `Host` and `Origin` pass unchanged, as nginx and JupyterHub's proxy
    // pass them: the apps' origin checks compare the two (Jupyter,
    // Streamlit) or `Origin` with `X-Forwarded-Host` (code-server), and a
    // browser's own requests agree on all of them, while a foreign origin
    // still differs and is refused by the app.
    if !forwarded.contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(authority)
    {
        forwarded.insert(header::HOST, host);
    }
    let mut chain: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    if let Some(peer) = peer {
        chain.push(peer.to_string());
    }
    let set = |map: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.insert(HeaderName::from_static(name), value);
        }
    };
    if !chain.is_empty() {
        set(&mut forwarded, "x-forwarded-for", &chain.join(", "));
    }
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http");
    set(&mut forwarded, "x-forwarded-proto", proto);
    if let Some(host) = public_host {
        set(&mut forwarded, "x-forwarded-host", host);
    }
    set(&mut forwarded, "x-forwarded-prefix", &path.prefix);
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri(upstream_uri)
        .body(body)
        .map_err(|e| {
            Box::new(
                ApiError::invalid(None, format!("the request cannot be forwarded: {e}"))
                    .into_response(),
            )
        })?;
    *request.headers_mut() = forwarded;
    Ok(request)
}

fn rewrite_response_headers(
    headers: &mut HeaderMap,
    path: &ServicePath,
    authority: &str,
    public_host: Option<&str>,
) {
    for name in connection_listed(headers) {
        headers.remove(name.as_str());
    }
    for name in rules::HOP_BY_HOP {
        headers.remove(*name);
    }
    if let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) {
        let rewritten =
            rules::rewrite_location(location, path, authority, public_host.unwrap_or(""));
        if let Ok(value) = HeaderValue::from_str(&rewritten) {
            headers.insert(header::LOCATION, value);
        }
    }
    let cookies: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| HeaderValue::from_str(&rules::rewrite_set_cookie(v, path)).ok())
        .collect();
    if !cookies.is_empty() {
        headers.remove(header::SET_COOKIE);
        for cookie in cookies {
            headers.append(header::SET_COOKIE, cookie);
        }
    }
}

/// Relays an upgraded connection (a WebSocket) byte for byte in both
/// directions until either side closes; traffic marks the run active.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    activity: Arc<Activity>,
    run: Uuid,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(error) => {
            tracing::debug!(error = ?error, "upgrading a proxied connection of run {run} failed");
            return;
        }
    };
    let _open = activity.socket();
    let mut client = Touching {
        io: TokioIo::new(client),
        activity: activity.clone(),
    };
    let mut upstream = Touching {
        io: TokioIo::new(upstream),
        activity,
    };
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = ?error, "a proxied connection of run {run} ended: {error}");
    }
}

/// A stream that marks its run active whenever it reads data.
struct Touching<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Touching<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Touching<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The innermost cause of a client error: hyper's outer message says only
/// "client error (Connect)".
fn describe(error: &hyper_util::client::legacy::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

/// Stops idle services until `shutdown`: every `settings.every`, each
/// running service with a culling timeout (its own, or the server's for
/// built-in workspaces) that relayed no traffic for that long, and whose
/// app reports no work in progress, is stopped with reason `Culled`.
pub async fn cull_idle(
    services: Services,
    settings: crate::config::CullingSettings,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let client: Client<HttpConnector, Body> = Proxy::default().client;
    let mut every = tokio::time::interval(settings.every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = cull_once(&services, &settings, &client).await {
            tracing::warn!(error = ?error, "checking for idle services failed: {error}");
        }
    }
}

async fn cull_once(
    services: &Services,
    settings: &crate::config::CullingSettings,
    client: &Client<HttpConnector, Body>,
) -> trellis_services::ServiceResult<()> {
    let now = chrono::Utc::now();
    for service in services.workspaces().running().await? {
        let is_hub = service
            .component()
            .is_some_and(|c| trellis_domain::spec::hub::find(c).is_ok());
        let timeout = service.culling().or_else(|| {
            is_hub
                .then_some(settings.hub_default)
                .flatten()
                .map(|d| d.as_secs())
        });
        let (Some(timeout_secs), Some(idle_secs)) =
            (timeout, service.idle_secs(services.activity(), now))
        else {
            continue;
        };
        let mut idle = rules::Idleness {
            idle_secs,
            timeout_secs,
            busy: false,
        };
        if matches!(rules::culling(idle), rules::Culling::Keep) {
            continue;
        }
        // Only now ask the app, and only apps that can say.
        idle.busy = is_jupyter(&service) && jupyter_busy(client, &service).await;
        if let rules::Culling::Cull { message } = rules::culling(idle) {
            match services.workspaces().cull(&service, &message).await {
                Ok(true) => tracing::info!("culled run {}: {message}", service.run.uuid),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(error = ?error, "culling run {} failed: {error}", service.run.uuid)
                }
            }
        }
    }
    Ok(())
}

fn is_jupyter(service: &trellis_services::workspaces::Service) -> bool {
    matches!(service.component(), Some("jupyterlab" | "notebook"))
}

/// Whether a Jupyter server has a busy kernel (a long cell with no browser
/// open is work, not idleness). Read through the same address the proxy
/// uses; a server that does not answer is not busy.
async fn jupyter_busy(
    client: &Client<HttpConnector, Body>,
    service: &trellis_services::workspaces::Service,
) -> bool {
    let Some((port, authority)) = service.endpoints.iter().next() else {
        return false;
    };
    let prefix = service.prefix(*port);
    let Ok(uri) = format!("http://{authority}{prefix}/api/kernels").parse::<Uri>() else {
        return false;
    };
    let request = axum::http::Request::get(uri)
        .header(header::HOST, authority.as_str())
        .body(Body::empty());
    let Ok(request) = request else { return false };
    let reading = async {
        let response = client.request(request).await.ok()?;
        let bytes = response.into_body().collect().await.ok()?.to_bytes();
        let kernels: Vec<serde_json::Value> = serde_json::from_slice(&bytes).ok()?;
        Some(
            kernels
                .iter()
                .any(|k| k["execution_state"] == "busy" || k["execution_state"] == "starting"),
        )
    };
    tokio::time::timeout(Duration::from_secs(5), reading)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
