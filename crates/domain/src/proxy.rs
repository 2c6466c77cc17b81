//! The workspace proxy's rules: which service a path names, what the
//! upstream sees, and how the upstream's answers are rewritten so the
//! browser stays under the proxy's prefix. No IO: the server relays bytes,
//! these functions decide.
//!
//! Two address forms, as in Polyaxon:
//! - `/services/v1/{owner}/{project}/runs/{uuid}/{port}/{path}` keeps the
//!   prefix: the app was started with it as its base URL
//!   (`{{ globals.base_url }}`), so it expects to see it;
//! - `/rewrite-services/v1/...` strips it, for apps that have no base-path
//!   setting and serve relative links (code-server).
//!
//! `{port}` is the port the spec declares, never an address: the upstream
//! host and port come only from what the executor recorded for that run.

use std::fmt;

use thiserror::Error;
use uuid::Uuid;

use crate::run::RunId;

/// Whether the upstream sees the proxy's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixMode {
    /// `/services/v1/...`: forwarded as is.
    Kept,
    /// `/rewrite-services/v1/...`: the prefix is removed.
    Stripped,
}

impl PrefixMode {
    /// The route the mode is served under.
    pub fn root(self) -> &'static str {
        match self {
            Self::Kept => "/services/v1/",
            Self::Stripped => "/rewrite-services/v1/",
        }
    }
}

/// A parsed proxied request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePath {
    pub mode: PrefixMode,
    pub owner: String,
    pub project: String,
    pub uuid: Uuid,
    /// The port as the spec declares it.
    pub port: u16,
    /// `/services/v1/{owner}/{project}/runs/{uuid}/{port}`, no trailing slash.
    pub prefix: String,
    /// What follows the prefix, as received (still percent-encoded);
    /// empty or starting with `/`.
    pub rest: String,
}

/// Why a path does not name a service.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error(
        "a service address reads `{root}{{owner}}/{{project}}/runs/{{uuid}}/{{port}}/...`; `{path}` does not"
    )]
    Shape { root: &'static str, path: String },
    #[error("`{0}` is not a run uuid")]
    Uuid(String),
    #[error("`{0}` is not a port (1-65535)")]
    Port(String),
    #[error("the path may not contain `.` or `..` segments, written plainly or percent-encoded")]
    DotSegment,
    #[error(
        "the path may not contain a backslash or a NUL byte, written plainly or percent-encoded"
    )]
    Forbidden,
}

impl ServicePath {
    /// Parses the raw (percent-encoded) request path.
    pub fn parse(mode: PrefixMode, raw: &str) -> Result<Self, PathError> {
        let shape = || PathError::Shape {
            root: mode.root(),
            path: raw.chars().take(200).collect(),
        };
        let after = raw.strip_prefix(mode.root()).ok_or_else(shape)?;
        let mut parts = after.splitn(6, '/');
        let owner = parts.next().filter(|s| !s.is_empty()).ok_or_else(shape)?;
        let project = parts.next().filter(|s| !s.is_empty()).ok_or_else(shape)?;
        if parts.next() != Some("runs") {
            return Err(shape());
        }
        let uuid_text = parts.next().ok_or_else(shape)?;
        let port_text = parts.next().filter(|s| !s.is_empty()).ok_or_else(shape)?;
        let rest = parts.next().map(|r| format!("/{r}")).unwrap_or_default();
        let uuid: RunId = uuid_text
            .parse()
            .map_err(|_| PathError::Uuid(uuid_text.chars().take(64).collect()))?;
        let port: u16 = port_text
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| PathError::Port(port_text.chars().take(16).collect()))?;
        check_rest(&rest)?;
        Ok(Self {
            mode,
            prefix: format!(
                "{}{owner}/{project}/runs/{uuid_text}/{port_text}",
                mode.root()
            ),
            owner: owner.to_owned(),
            project: project.to_owned(),
            uuid: uuid.0,
            port,
            rest,
        })
    }

    /// The path and query the upstream receives.
    pub fn upstream_target(&self, query: Option<&str>) -> String {
        let path = match self.mode {
            PrefixMode::Kept => format!("{}{}", self.prefix, self.rest),
            PrefixMode::Stripped if self.rest.is_empty() => "/".to_owned(),
            PrefixMode::Stripped => self.rest.clone(),
        };
        match query {
            Some(query) => format!("{path}?{query}"),
            None => path,
        }
    }
}

/// Refuses paths an upstream could resolve outside what was asked: dot
/// segments (also `%2e%2e`, and `..` hidden behind an encoded slash), and
/// backslashes or NUL bytes, which some servers treat as separators.
fn check_rest(rest: &str) -> Result<(), PathError> {
    let decoded = percent_decode(rest);
    if decoded.contains(&b'\\') || decoded.contains(&0) {
        return Err(PathError::Forbidden);
    }
    // Decoding twice catches `%252e%252e`, which a second decoder upstream
    // would turn into `..`.
    let twice = percent_decode(&String::from_utf8_lossy(&decoded));
    for text in [&decoded, &twice] {
        if text
            .split(|b| *b == b'/')
            .any(|segment| segment == b"." || segment == b"..")
        {
            return Err(PathError::DotSegment);
        }
    }
    if twice.contains(&b'\\') || twice.contains(&0) {
        return Err(PathError::Forbidden);
    }
    Ok(())
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1):
/// never forwarded. `Upgrade` and `Connection: upgrade` are re-added for a
/// WebSocket hand-shake.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The hop-by-hop header names, lower case.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Rewrites a `Location` the app sent so that it points under the prefix:
/// absolute URLs on the upstream's (or the public) host become paths, and,
/// when the prefix was stripped, root-relative paths get it back. Other
/// hosts' URLs are left alone (an app may redirect to a login provider).
pub fn rewrite_location(
    location: &str,
    path: &ServicePath,
    upstream: &str,
    public_host: &str,
) -> String {
    let local = match location.split_once("://") {
        Some((scheme, after))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            let (authority, rest) = match after.find('/') {
                Some(i) => after.split_at(i),
                None => (after, "/"),
            };
            if authority.eq_ignore_ascii_case(upstream)
                || authority.eq_ignore_ascii_case(public_host)
                || is_loopback_authority(authority)
            {
                rest.to_owned()
            } else {
                return location.to_owned();
            }
        }
        Some(_) => return location.to_owned(),
        None => location.to_owned(),
    };
    if path.mode == PrefixMode::Stripped && local.starts_with('/') && !local.starts_with("//") {
        format!("{}{local}", path.prefix)
    } else {
        local
    }
}

fn is_loopback_authority(authority: &str) -> bool {
    let host = authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "0.0.0.0")
}

/// Rewrites a `Set-Cookie` so the browser keeps it for this service only:
/// its `Path` stays under the prefix (an app that does not know the prefix
/// writes `/`), and a `Domain` (the upstream's) is dropped.
pub fn rewrite_set_cookie(value: &str, path: &ServicePath) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut had_path = false;
    for (i, part) in value.split(';').enumerate() {
        let trimmed = part.trim();
        if i == 0 {
            parts.push(trimmed.to_owned());
            continue;
        }
        let (key, val) = trimmed.split_once('=').unwrap_or((trimmed, ""));
        if key.eq_ignore_ascii_case("domain") {
            continue;
        }
        if key.eq_ignore_ascii_case("path") {
            had_path = true;
            parts.push(format!("Path={}", cookie_path(val.trim(), path)));
            continue;
        }
        parts.push(trimmed.to_owned());
    }
    if !had_path {
        parts.push(format!("Path={}/", path.prefix));
    }
    parts.join("; ")
}

fn cookie_path(value: &str, path: &ServicePath) -> String {
    match path.mode {
        PrefixMode::Stripped => {
            let under = if value.starts_with('/') { value } else { "/" };
            format!("{}{under}", path.prefix)
        }
        PrefixMode::Kept if value.starts_with(&path.prefix) => value.to_owned(),
        PrefixMode::Kept => format!("{}/", path.prefix),
    }
}

/// Whether an idle service should be culled, and the message saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Culling {
    Keep,
    Cull { message: String },
}

/// What the culler knows about one running service.
#[derive(Debug, Clone, Copy)]
pub struct Idleness {
    /// Seconds since the last proxied request or WebSocket traffic, or since
    /// the service started when nothing was proxied yet.
    pub idle_secs: u64,
    /// `termination.culling.timeout`, or the server's default for hub
    /// workspaces.
    pub timeout_secs: u64,
    /// The app reports work in progress (a busy Jupyter kernel).
    pub busy: bool,
}

/// Decides whether a service is culled.
pub fn culling(idle: Idleness) -> Culling {
    if idle.busy || idle.idle_secs < idle.timeout_secs {
        return Culling::Keep;
    }
    Culling::Cull {
        message: format!(
            "Stopped after {} idle (culling timeout {})",
            human_duration(idle.idle_secs),
            human_duration(idle.timeout_secs)
        ),
    }
}

fn human_duration(secs: u64) -> String {
    struct D(u64);
    impl fmt::Display for D {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let (h, m, s) = (self.0 / 3600, self.0 / 60 % 60, self.0 % 60);
            match (h, m, s) {
                (0, 0, s) => write!(f, "{s}s"),
                (0, m, 0) => write!(f, "{m}m"),
                (0, m, s) => write!(f, "{m}m{s}s"),
                (h, 0, _) => write!(f, "{h}h"),
                (h, m, _) => write!(f, "{h}h{m}m"),
            }
        }
    }
    D(secs).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "0f8e3a0c2b6d4e1f9a7b5c3d1e2f4a6b";

    fn kept(rest: &str) -> Result<ServicePath, PathError> {
        ServicePath::parse(
            PrefixMode::Kept,
            &format!("/services/v1/acme/vision/runs/{UUID}/8888{rest}"),
        )
    }

    #[test]
    fn a_service_path_names_owner_project_run_port_and_the_rest() {
        let path = kept("/lab/tree?x").unwrap();
        assert_eq!(path.owner, "acme");
        assert_eq!(path.project, "vision");
        assert_eq!(path.uuid.simple().to_string(), UUID);
        assert_eq!(path.port, 8888);
        assert_eq!(path.rest, "/lab/tree?x");
        assert_eq!(
            path.prefix,
            format!("/services/v1/acme/vision/runs/{UUID}/8888")
        );
        assert_eq!(kept("").unwrap().rest, "");
        assert_eq!(kept("/").unwrap().rest, "/");
    }

    #[test]
    fn the_upstream_sees_the_prefix_only_when_it_is_kept() {
        let path = kept("/api/status").unwrap();
        assert_eq!(
            path.upstream_target(Some("a=1")),
            format!("/services/v1/acme/vision/runs/{UUID}/8888/api/status?a=1")
        );
        let stripped = ServicePath::parse(
            PrefixMode::Stripped,
            &format!("/rewrite-services/v1/acme/vision/runs/{UUID}/8080/static/x.js"),
        )
        .unwrap();
        assert_eq!(stripped.upstream_target(None), "/static/x.js");
        let root = ServicePath::parse(
            PrefixMode::Stripped,
            &format!("/rewrite-services/v1/acme/vision/runs/{UUID}/8080"),
        )
        .unwrap();
        assert_eq!(root.upstream_target(Some("folder=/w")), "/?folder=/w");
    }

    #[test]
    fn malformed_paths_are_refused_with_what_is_wrong() {
        assert!(matches!(
            ServicePath::parse(PrefixMode::Kept, "/services/v1/acme/vision"),
            Err(PathError::Shape { .. })
        ));
        assert!(matches!(
            ServicePath::parse(
                PrefixMode::Kept,
                &format!("/services/v1/acme/vision/jobs/{UUID}/80")
            ),
            Err(PathError::Shape { .. })
        ));
        assert_eq!(
            ServicePath::parse(PrefixMode::Kept, "/services/v1/a/b/runs/nope/80"),
            Err(PathError::Uuid("nope".into()))
        );
        for port in ["0", "65536", "80x", "-1"] {
            assert_eq!(
                ServicePath::parse(
                    PrefixMode::Kept,
                    &format!("/services/v1/a/b/runs/{UUID}/{port}/")
                ),
                Err(PathError::Port(port.into()))
            );
        }
    }

    #[test]
    fn dot_segments_and_encoded_tricks_are_refused() {
        for rest in [
            "/..",
            "/../../etc/passwd",
            "/a/../b",
            "/./x",
            "/%2e%2e/x",
            "/%2E%2E",
            "/.%2e/x",
            "/a%2f..%2fb",
            "/%252e%252e/x",
        ] {
            assert_eq!(kept(rest), Err(PathError::DotSegment), "{rest}");
        }
        for rest in ["/a\\b", "/a%5c..", "/x%00y", "/%255c"] {
            assert_eq!(kept(rest), Err(PathError::Forbidden), "{rest}");
        }
        // Dots inside names are ordinary.
        assert!(kept("/files/model..v2.pt").is_ok());
        assert!(kept("/api/contents/dir%2Ffile.ipynb").is_ok());
    }

    #[test]
    fn hop_by_hop_headers_are_recognised_in_any_case() {
        assert!(is_hop_by_hop("Connection"));
        assert!(is_hop_by_hop("transfer-encoding"));
        assert!(is_hop_by_hop("Keep-Alive"));
        assert!(!is_hop_by_hop("content-length"));
        assert!(!is_hop_by_hop("cookie"));
    }

    #[test]
    fn locations_stay_under_the_prefix() {
        let path = kept("/").unwrap();
        let up = "127.0.0.1:41234";
        let prefix = path.prefix.clone();
        assert_eq!(
            rewrite_location(
                &format!("http://127.0.0.1:41234{prefix}/lab"),
                &path,
                up,
                "t:8000"
            ),
            format!("{prefix}/lab")
        );
        assert_eq!(
            rewrite_location(&format!("http://t:8000{prefix}/"), &path, up, "t:8000"),
            format!("{prefix}/")
        );
        assert_eq!(
            rewrite_location("https://accounts.example/login", &path, up, "t:8000"),
            "https://accounts.example/login"
        );
        assert_eq!(
            rewrite_location("lab/tree", &path, up, "t:8000"),
            "lab/tree"
        );
        let stripped = ServicePath::parse(
            PrefixMode::Stripped,
            &format!("/rewrite-services/v1/acme/vision/runs/{UUID}/8080/"),
        )
        .unwrap();
        assert_eq!(
            rewrite_location("/login?to=%2F", &stripped, up, "t:8000"),
            format!("{}/login?to=%2F", stripped.prefix)
        );
        assert_eq!(
            rewrite_location("http://localhost:8080/x", &stripped, up, "t:8000"),
            format!("{}/x", stripped.prefix)
        );
        assert_eq!(rewrite_location("./x", &stripped, up, "t:8000"), "./x");
    }

    #[test]
    fn cookies_keep_to_the_prefix_and_lose_their_domain() {
        let path = kept("/").unwrap();
        let prefix = path.prefix.clone();
        assert_eq!(
            rewrite_set_cookie(&format!("_xsrf=abc; Path={prefix}/; HttpOnly"), &path),
            format!("_xsrf=abc; Path={prefix}/; HttpOnly")
        );
        assert_eq!(
            rewrite_set_cookie("sid=1; path=/; Domain=127.0.0.1; SameSite=Lax", &path),
            format!("sid=1; Path={prefix}/; SameSite=Lax")
        );
        assert_eq!(
            rewrite_set_cookie("a=b", &path),
            format!("a=b; Path={prefix}/")
        );
        let stripped = ServicePath::parse(
            PrefixMode::Stripped,
            &format!("/rewrite-services/v1/acme/vision/runs/{UUID}/8080/"),
        )
        .unwrap();
        assert_eq!(
            rewrite_set_cookie("key=v; Path=/static", &stripped),
            format!("key=v; Path={}/static", stripped.prefix)
        );
    }

    #[test]
    fn idle_services_are_culled_unless_busy() {
        let idle = Idleness {
            idle_secs: 90,
            timeout_secs: 60,
            busy: false,
        };
        assert_eq!(
            culling(idle),
            Culling::Cull {
                message: "Stopped after 1m30s idle (culling timeout 1m)".into()
            }
        );
        assert_eq!(culling(Idleness { busy: true, ..idle }), Culling::Keep);
        assert_eq!(
            culling(Idleness {
                idle_secs: 59,
                ..idle
            }),
            Culling::Keep
        );
        assert_eq!(human_duration(7260), "2h1m");
        assert_eq!(human_duration(3600), "1h");
    }
}
