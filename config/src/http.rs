//! The validated configuration of HTTP listeners: limits and routes.

use std::path::PathBuf;
use std::time::Duration;

/// Settings only HTTP listeners have.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOptions {
    /// Slowloris bound on reading a request's header block.
    pub header_read_timeout: Duration,
    /// Largest request header block (bytes).
    pub max_header_bytes: usize,
    /// Most request header fields.
    pub max_headers: usize,
    /// Largest request body (bytes).
    pub max_body_bytes: u64,
    /// Idle keep-alive timeout between requests.
    pub keepalive_timeout: Duration,
    /// HTTP/2 concurrent streams per connection.
    pub max_concurrent_streams: u32,
    /// Where the access log goes.
    pub access_log: AccessLog,
    /// Send RFC 7239 `Forwarded` to backends.
    pub forwarded: bool,
    /// The pseudonym of `Via` headers; `None` = no `Via`.
    pub via: Option<String>,
    /// Routes, in file order.
    pub routes: Vec<Route>,
}

/// Access log destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// No access log.
    Off,
    /// One JSON line per request on standard output.
    Stdout,
    /// One JSON line per request appended to a file.
    File(PathBuf),
}

/// How a route matches the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Exactly this host (lowercase, no port).
    Exact(String),
    /// Any host ending in this suffix, which starts with a dot (`.example.com`).
    Suffix(String),
}

/// How a route matches the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Any path.
    Any,
    /// Exactly this path.
    Exact(String),
    /// This prefix on segment boundaries (no trailing slash, except `/`).
    Prefix(String),
    /// A regular expression the whole path must match.
    Regex(PathRegex),
}

/// A route's `path_regex`, compiled to match the whole path.
#[derive(Debug, Clone)]
pub struct PathRegex {
    source: String,
    regex: regex::Regex,
}

impl PathRegex {
    /// Compiles `source` anchored at both ends; the error is one line.
    pub fn new(source: &str) -> Result<Self, String> {
        regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(1 << 20)
            .build()
            .map(|regex| Self {
                source: source.to_owned(),
                regex,
            })
            .map_err(|e| {
                let text = e.to_string();
                let last = text.lines().last().unwrap_or_default().trim();
                last.strip_prefix("error: ").unwrap_or(last).to_owned()
            })
    }

    /// True when the whole `path` matches.
    pub fn is_match(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }

    /// The expression as configured.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl PartialEq for PathRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for PathRegex {}

/// What a matched route does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    /// Forward to a pool.
    Forward {
        /// Index into `Config::pools`.
        pool: usize,
        /// Remove the matched prefix.
        strip_prefix: bool,
        /// Replace the matched prefix with this.
        rewrite_prefix: Option<String>,
    },
    /// Answer with a redirect.
    Redirect {
        /// 301, 302, 307 or 308.
        code: u16,
        /// The `Location`.
        location: String,
    },
}

/// Header edits, applied remove → set → add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// Replace (or create) these.
    pub set: Vec<(String, String)>,
    /// Append these.
    pub add: Vec<(String, String)>,
    /// Remove these (lowercase names).
    pub remove: Vec<String>,
}

impl HeaderEdits {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A validated route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Name (metric label).
    pub name: String,
    /// Host condition.
    pub host: Option<HostMatch>,
    /// Path condition.
    pub path: PathMatch,
    /// Method condition (uppercase); empty = any.
    pub methods: Vec<String>,
    /// Header conditions (lowercase name, exact value).
    pub headers: Vec<(String, String)>,
    /// What to do.
    pub action: RouteAction,
    /// Edits to the forwarded request.
    pub request_headers: HeaderEdits,
    /// Edits to the response.
    pub response_headers: HeaderEdits,
    /// Backend connect bound.
    pub connect_timeout: Duration,
    /// Bound on waiting for response headers.
    pub response_timeout: Duration,
    /// Bound on the whole exchange.
    pub request_timeout: Duration,
    /// Retries on another backend.
    pub retries: u32,
    /// Indexes into [`crate::Config::jwt_providers`]: a request needs a
    /// valid token from one of them. Empty = open.
    pub auth: Vec<usize>,
    /// Rate-limit policies every request must pass (indices into
    /// `Config::rate_limits`).
    pub rate_limits: Vec<usize>,
}

/// What an HTTP pool's consistent hash is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKey {
    /// A request header's value (lowercase name).
    Header(String),
    /// A cookie's value.
    Cookie(String),
    /// The request path.
    Path,
}

/// The HTTP version the gateway speaks to a pool's backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum UpstreamVersion {
    /// HTTP/1.1, pooled keep-alive connections.
    #[default]
    Http1,
    /// Cleartext HTTP/2 with prior knowledge (h2c): requests are multiplexed
    /// on pooled connections, and trailers (gRPC) pass through both ways.
    H2c,
    /// HTTP/2 over TLS (ALPN `h2`; the pool has `[pools.tls]`): like
    /// [`Self::H2c`], encrypted.
    H2,
}

impl UpstreamVersion {
    /// The configuration names, in order.
    pub const NAMES: [&'static str; 3] = ["http1", "h2c", "h2"];

    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http1 => "http1",
            Self::H2c => "h2c",
            Self::H2 => "h2",
        }
    }

    /// True for HTTP/2 (cleartext or TLS).
    pub fn is_http2(self) -> bool {
        matches!(self, Self::H2c | Self::H2)
    }
}

impl Route {
    /// One line for `weir check`.
    pub fn summary(&self, pools: &[crate::Pool]) -> String {
        let host = match &self.host {
            None => "*".to_owned(),
            Some(HostMatch::Exact(h)) => h.clone(),
            Some(HostMatch::Suffix(s)) => format!("*{s}"),
        };
        let path = match &self.path {
            PathMatch::Any => "/*".to_owned(),
            PathMatch::Exact(p) => p.clone(),
            PathMatch::Prefix(p) if p == "/" => "/*".to_owned(),
            PathMatch::Prefix(p) => format!("{p}/*"),
            PathMatch::Regex(r) => format!("~{}", r.as_str()),
        };
        let methods = if self.methods.is_empty() {
            String::new()
        } else {
            format!("{} ", self.methods.join(","))
        };
        let action = match &self.action {
            RouteAction::Forward { pool, .. } => {
                format!("pool {}", pools.get(*pool).map_or("?", |p| p.name.as_str()))
            }
            RouteAction::Redirect { code, location } => format!("redirect {code} {location}"),
        };
        format!("- route {}: {methods}{host}{path} -> {action}", self.name)
    }
}

/// Passive outlier detection of an HTTP pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierDetection {
    /// Consecutive 5xx answers or failed connects that eject a backend.
    pub consecutive_failures: u32,
    /// First ejection time; each further ejection doubles it.
    pub base_ejection: std::time::Duration,
    /// Longest ejection.
    pub max_ejection: std::time::Duration,
}
