//! The request pipeline, in one fixed order: route → rate-limit
//! ([`crate::ratelimit`]) → select → forward → log.
//!
//! Plain functions over concrete types. Retries happen only for requests
//! without a body (the body streams to the backend and cannot be replayed):
//! after a failed connect always, after a 502/503 or a reset only for
//! idempotent methods, at most `retries` times per request and within a
//! budget of 20% of the listener's requests (plus a small allowance), so
//! retries cannot multiply an outage.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::Instant;
use weir_common::backend::Backend;
use weir_common::hash::{hash_bytes, mix64};
use weir_common::health::{self, Source};
use weir_common::metrics as names;
use weir_common::pool::PoolRuntime;
use weir_config::http::{RequestKey, Route, RouteAction, UpstreamVersion};

use crate::access_log::{AccessLogger, Entry};
use crate::body::{ProxyBody, Tracked, empty, full};
use crate::error::GatewayError;
use crate::headers;
use crate::metrics::GatewayMetrics;
use crate::outlier::Outliers;
use crate::route::RouteTable;

/// The HTTP client to backends (pooled keep-alive connections per backend).
pub type UpstreamClient = Client<HttpConnector, ProxyBody>;

/// Everything a listener's requests need, shared by its connections.
pub struct Gateway {
    /// Listener name (metric label).
    pub listener: Arc<str>,
    /// The routes.
    pub routes: RouteTable,
    /// Every pool, by configuration index.
    pub pools: Vec<Arc<PoolRuntime>>,
    /// Per pool: the HTTP request key, if it hashes on one.
    pub request_keys: Vec<Option<RequestKey>>,
    /// Per pool: the HTTP version spoken to its backends.
    pub upstream_versions: Vec<UpstreamVersion>,
    /// Backend clients by route index (each route's connect timeout, and
    /// HTTP/2 only when the route's pool is h2c); routes with the same pair
    /// share one client and its connection pool.
    pub clients: Vec<UpstreamClient>,
    /// Largest request body.
    pub max_body_bytes: u64,
    /// Access log.
    pub access_log: AccessLogger,
    /// Passive outlier detection, shared by every HTTP listener.
    pub outliers: Arc<Outliers>,
    /// Metric handles.
    pub metrics: GatewayMetrics,
    /// The process's rate-limit policies (routes hold their indices).
    pub rate_limits: Arc<crate::ratelimit::RateLimits>,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl Gateway {
    /// A gateway over `routes`, with a client for each route (shared where
    /// routes need the same one). `pools` and
    /// `pool_configs` are indexed like the configuration's pools.
    pub fn new(
        listener: &str,
        routes: RouteTable,
        pools: Vec<Arc<PoolRuntime>>,
        pool_configs: &[weir_config::Pool],
        max_body_bytes: u64,
        access_log: AccessLogger,
        outliers: Arc<Outliers>,
    ) -> Self {
        let request_keys = pool_configs.iter().map(|p| p.request_key.clone()).collect();
        let upstream_versions: Vec<UpstreamVersion> =
            pool_configs.iter().map(|p| p.http_version).collect();
        let routes_len = routes.len();
        let route_names: Vec<String> = (0..routes_len)
            .filter_map(|id| routes.get(id).map(|r| r.name.clone()))
            .collect();
        // One pooled client per distinct (connect timeout, upstream version),
        // shared by every route that needs it: keep-alive connections to a
        // backend are reused across routes, and thousands of routes do not
        // mean thousands of connection pools.
        let mut shared: Vec<((Duration, UpstreamVersion), UpstreamClient)> = Vec::new();
        let clients = (0..routes.len())
            .map(|id| {
                let route = routes.get(id);
                let connect = route.map_or(Duration::from_secs(5), |r| r.connect_timeout);
                let version = match route.map(|r| &r.action) {
                    Some(RouteAction::Forward { pool, .. }) => {
                        upstream_versions.get(*pool).copied().unwrap_or_default()
                    }
                    _ => UpstreamVersion::Http1,
                };
                let key = (connect, version);
                match shared.iter().find(|(k, _)| *k == key) {
                    Some((_, c)) => c.clone(),
                    None => {
                        let c = client(connect, version);
                        shared.push((key, c.clone()));
                        c
                    }
                }
            })
            .collect();
        Self {
            listener: listener.into(),
            routes,
            pools,
            request_keys,
            upstream_versions,
            clients,
            max_body_bytes,
            access_log,
            outliers,
            metrics: GatewayMetrics::new(
                listener,
                (0..routes_len).filter_map(|id| route_names.get(id).map(String::as_str)),
            ),
            rate_limits: Arc::new(crate::ratelimit::RateLimits::none()),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    /// Uses `rate_limits` (the process's policies, shared by every HTTP
    /// listener) for the routes' `rate_limits`.
    pub fn with_rate_limits(mut self, rate_limits: Arc<crate::ratelimit::RateLimits>) -> Self {
        self.rate_limits = rate_limits;
        self
    }

    /// A retry is allowed while retries stay within 20% of requests (plus 10).
    fn take_retry(&self) -> bool {
        let requests = self.requests.load(Ordering::Relaxed);
        let retries = self.retries.load(Ordering::Relaxed);
        if retries < requests / 5 + 10 {
            self.retries.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            self.metrics.budget_exhausted.increment(1);
            false
        }
    }
}

/// A pooled client: HTTP/1.1 keep-alive connections, or for an h2c pool
/// HTTP/2 with prior knowledge (one multiplexed connection per backend,
/// more only while one is being set up).
fn client(connect_timeout: Duration, version: UpstreamVersion) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    let mut builder = Client::builder(hyper_util::rt::TokioExecutor::new());
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(512);
    if version == UpstreamVersion::H2c {
        builder
            .http2_only(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_while_idle(false);
    }
    builder.build(connector)
}

/// What the access log and metrics need to know about a request.
struct Exchange {
    start: Instant,
    version: Version,
    client: SocketAddr,
    method: Method,
    host: String,
    path: String,
    request_id: String,
    route: Option<usize>,
    backend: Option<Arc<str>>,
    /// Rate-limit headers for the response.
    rate_limit: Option<http::HeaderMap>,
}

/// Handles one request from `client`.
pub async fn handle(
    gw: Arc<Gateway>,
    client_addr: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    gw.requests.fetch_add(1, Ordering::Relaxed);
    let active = Active::new(gw.metrics.active.clone());
    let (mut parts, body) = req.into_parts();
    let seed = gw.requests.load(Ordering::Relaxed)
        ^ (Instant::now().elapsed().as_nanos() as u64)
        ^ weir_common::hash::hash_ip_port(client_addr);
    let mut ex = Exchange {
        start: Instant::now(),
        version: parts.version,
        client: client_addr,
        method: parts.method.clone(),
        host: headers::host_of(&parts.uri, &parts.headers).unwrap_or_default(),
        path: parts.uri.path().to_owned(),
        request_id: headers::request_id(&mut parts.headers, mix64(seed ^ time_seed())),
        route: None,
        backend: None,
        rate_limit: None,
    };
    let result = pipeline(&gw, &mut ex, parts, body).await;
    let response = match result {
        Ok(resp) => resp,
        Err(e) => {
            metrics::counter!(names::HTTP_ERRORS, "listener" => gw.listener.to_string(), "reason" => reason(e)).increment(1);
            error_response(e, &ex.request_id)
        }
    };
    finish(gw, ex, response, active)
}

/// One request counted in `weir_http_requests_active` until dropped, so a
/// request whose handler is cancelled (the client closed its connection or
/// reset its stream before the response began) does not stay active forever.
struct Active(metrics::Gauge);

impl Active {
    fn new(gauge: metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

fn time_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn reason(e: GatewayError) -> &'static str {
    match e {
        GatewayError::BadRequest => "bad_request",
        GatewayError::NoRoute => "no_route",
        GatewayError::BodyTooLarge => "body_too_large",
        GatewayError::NoBackend => "no_backend",
        GatewayError::BadGateway => "bad_gateway",
        GatewayError::Timeout => "timeout",
        GatewayError::TooManyRequests => "rate_limited",
        GatewayError::RateLimitUnavailable => "rate_limit_unavailable",
    }
}

/// The gateway's own answer for an error.
pub fn error_response(e: GatewayError, request_id: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(full(e.body(request_id)));
    *resp.status_mut() = e.status();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert(headers::REQUEST_ID, v);
    }
    resp
}

async fn pipeline(
    gw: &Gateway,
    ex: &mut Exchange,
    mut parts: http::request::Parts,
    body: Incoming,
) -> Result<Response<ProxyBody>, GatewayError> {
    // Route.
    if ex.host.is_empty() || RouteTable::check_path(&ex.path).is_err() {
        return Err(GatewayError::BadRequest);
    }
    let id = gw
        .routes
        .find(&ex.host, &ex.path, parts.method.as_str(), &parts.headers)
        .ok_or(GatewayError::NoRoute)?;
    ex.route = Some(id);
    let route = gw.routes.get(id).ok_or(GatewayError::NoRoute)?;
    let (pool_index, new_path) = match &route.action {
        RouteAction::Redirect { code, location } => return Ok(redirect(*code, location)),
        RouteAction::Forward {
            pool,
            strip_prefix,
            rewrite_prefix,
        } => (
            *pool,
            rewritten_path(route, &parts.uri, *strip_prefix, rewrite_prefix.as_deref()),
        ),
    };
    if body.size_hint().lower() > gw.max_body_bytes {
        return Err(GatewayError::BodyTooLarge);
    }
    let pool = gw.pools.get(pool_index).ok_or(GatewayError::NoBackend)?;
    let h2c = gw.upstream_versions.get(pool_index) == Some(&UpstreamVersion::H2c);

    // Rate-limit.
    let verdict = (gw.rate_limits)
        .check(&route.rate_limits, &route.name, &parts, ex.client)
        .await;
    ex.rate_limit = verdict.headers;
    if let Some(e) = verdict.reject {
        return Err(e);
    }

    // Select.
    let key = request_key(
        gw.request_keys.get(pool_index).and_then(Option::as_ref),
        &parts,
        pool,
        ex.client,
    );
    let selector = pool.selector.load();
    let replayable = body.is_end_stream();
    let attempts = if replayable {
        route.retries as usize + 1
    } else {
        1
    };
    let candidates = selector.candidates(key, attempts);
    if candidates.is_empty() {
        return Err(GatewayError::NoBackend);
    }

    // Forward. An upgrade (WebSocket) keeps its Connection/Upgrade headers,
    // takes one attempt, and on 101 becomes a tunnel (HTTP/1.1 backends only:
    // HTTP/2 has no Upgrade, so to an h2c pool it is a plain request).
    let upgrade = !h2c && is_upgrade(&parts);
    let mut client_upgrade = if upgrade {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    let mut tunnel_slot = parts.extensions.remove::<TunnelSlot>();
    // `te: trailers` is the one TE an HTTP/2 request may carry (RFC 9113
    // §8.2.2), and gRPC needs it: kept for h2c backends.
    let te_trailers = h2c && headers::accepts_trailers(&parts.headers);
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    if te_trailers {
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    let proto = crate::tls::forwarded_proto(&parts.extensions);
    headers::add_forwarded(&mut parts.headers, ex.client, &ex.host, proto);
    // The backend sees the host the request was routed by: an absolute-form
    // target (or HTTP/2 :authority) replaces any Host header (RFC 9112 §3.2.2).
    if let Some(a) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        parts.headers.insert(header::HOST, v);
    }
    headers::apply(&mut parts.headers, &route.request_headers);
    if !parts.headers.contains_key(header::HOST)
        && let Ok(v) = HeaderValue::from_str(&ex.host)
    {
        parts.headers.insert(header::HOST, v);
    }
    if h2c {
        // The backend's address is the `:authority` (the client's host is in
        // X-Forwarded-Host); a Host that differs from it would make the
        // request malformed (RFC 9113 §8.3.1).
        parts.headers.remove(header::HOST);
        parts.version = Version::HTTP_2;
    } else {
        parts.version = Version::HTTP_11;
    }
    let limit = usize::try_from(gw.max_body_bytes).unwrap_or(usize::MAX);
    // Set when the client's body fails (too large, malformed, cut off): that
    // failure is the client's, never the backend's.
    let body_error = Arc::new(std::sync::OnceLock::new());
    let body_failed = Arc::clone(&body_error);
    let mut body = Some(
        Limited::new(body, limit)
            .map_err(move |e: crate::body::BoxError| {
                let _ = body_failed.set(if e.is::<http_body_util::LengthLimitError>() {
                    GatewayError::BodyTooLarge
                } else {
                    GatewayError::BadRequest
                });
                e
            })
            .boxed(),
    );
    let deadline = ex.start + route.request_timeout;
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    );
    let client = gw.clients.get(id).ok_or(GatewayError::BadGateway)?;
    let mut last_error = GatewayError::NoBackend;
    let mut fallback: Option<(Response<Incoming>, weir_common::backend::InFlight)> = None;
    // The request head is cloned only while another attempt may follow.
    let mut head = Some(parts);
    let last_attempt = candidates.len() - 1;
    for (attempt, &index) in candidates.as_slice().iter().enumerate() {
        if attempt > 0 {
            if upgrade || !gw.take_retry() {
                break;
            }
            metrics::counter!(names::HTTP_RETRIES, "listener" => gw.listener.to_string(), "route" => route.name.clone()).increment(1);
        }
        let Some(backend) = selector.backend(index) else {
            continue;
        };
        let uri = Uri::builder()
            .scheme("http")
            .authority(backend.addr.to_string())
            .path_and_query(new_path.as_str())
            .build()
            .map_err(|_| GatewayError::BadRequest)?;
        let this_head = if attempt == last_attempt {
            head.take()
        } else {
            head.clone()
        };
        let Some(this_head) = this_head else { break };
        let mut upstream = Request::from_parts(this_head, body.take().unwrap_or_else(empty));
        *upstream.uri_mut() = uri;
        let in_flight = backend.state.begin();
        ex.backend = Some(backend.name.clone());
        let wait = route
            .response_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let outcome = tokio::time::timeout(wait, client.request(upstream)).await;
        match outcome {
            Err(_) => {
                tracing::debug!(route = %route.name, backend = %backend.name, "backend response timed out");
                return Err(GatewayError::Timeout);
            }
            Ok(Err(e)) => {
                let connect = e.is_connect();
                tracing::debug!(route = %route.name, backend = %backend.name, error = %e, connect, "backend request failed");
                if let Some(&client_fault) = body_error.get() {
                    return Err(client_fault);
                }
                if connect {
                    count_connect_error(pool, index as usize);
                    passive(pool, backend, false);
                }
                gw.outliers
                    .record(&gw.pools, pool_index, index as usize, true);
                last_error = GatewayError::BadGateway;
                if replayable && (connect || idempotent) {
                    continue;
                }
                return Err(last_error);
            }
            Ok(Ok(resp)) => {
                passive(pool, backend, true);
                gw.outliers.record(
                    &gw.pools,
                    pool_index,
                    index as usize,
                    resp.status().is_server_error(),
                );
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(client_side) = client_upgrade.take()
                {
                    return Ok(tunnel(resp, client_side, in_flight, tunnel_slot.take()));
                }
                let status = resp.status();
                let retryable = matches!(
                    status,
                    StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
                );
                if retryable && replayable && idempotent && attempt + 1 < candidates.len() {
                    // Kept: if no later attempt answers, the client gets
                    // this backend's own 502/503 (and its Retry-After).
                    fallback = Some((resp, in_flight));
                    continue;
                }
                return Ok(respond(resp, route, &ex.request_id, in_flight, deadline));
            }
        }
    }
    match fallback {
        Some((resp, in_flight)) => Ok(respond(resp, route, &ex.request_id, in_flight, deadline)),
        None => Err(last_error),
    }
}

/// Where the connection that carried an upgrade finds the tunnel's task, so
/// it can wait for it: the tunnel then keeps the connection's slot under
/// `max_connections`, its drain guard and its idle and hard-stop limits.
#[derive(Debug, Clone, Default)]
pub struct TunnelSlot(pub Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>);

/// True for an HTTP/1.1 request asking to switch protocols (WebSocket…).
fn is_upgrade(parts: &http::request::Parts) -> bool {
    parts.version == Version::HTTP_11
        && parts.headers.contains_key(header::UPGRADE)
        && parts
            .headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Answers 101 to the client and joins the two upgraded connections with a
/// byte tunnel (half-close exact, like L4). The backend's in-flight slot is
/// held for the tunnel's life.
fn tunnel(
    mut resp: Response<Incoming>,
    client_side: hyper::upgrade::OnUpgrade,
    in_flight: weir_common::backend::InFlight,
    slot: Option<TunnelSlot>,
) -> Response<ProxyBody> {
    let backend_side = hyper::upgrade::on(&mut resp);
    let (mut parts, _) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, true);
    let task = tokio::spawn(async move {
        let _in_flight = in_flight;
        match tokio::try_join!(client_side, backend_side) {
            Ok((client, backend)) => {
                let mut client = hyper_util::rt::TokioIo::new(client);
                let mut backend = hyper_util::rt::TokioIo::new(backend);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                    tracing::debug!(error = %e, "upgraded connection ended with an error");
                }
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    match slot.and_then(|s| s.0.lock().ok().map(|mut guard| guard.replace(task))) {
        Some(None) => {}
        // No connection is waiting for it (or a stale one): it still ends
        // with either side; abort nothing.
        _ => tracing::debug!("upgrade tunnel without a connection slot"),
    }
    Response::from_parts(parts, empty())
}

fn count_connect_error(pool: &PoolRuntime, index: usize) {
    if let Some(m) = pool.backend_metrics.get(index) {
        m.connect_errors[2].increment(1);
    }
}

fn passive(pool: &PoolRuntime, backend: &Backend, ok: bool) {
    if pool.passive {
        health::report(&pool.name, backend, ok, Source::Traffic);
    }
}

/// The selection key: the pool's request key when the request has it,
/// otherwise the connection key.
fn request_key(
    key: Option<&RequestKey>,
    parts: &http::request::Parts,
    pool: &PoolRuntime,
    client: SocketAddr,
) -> u64 {
    let value: Option<&[u8]> = match key {
        None => None,
        Some(RequestKey::Path) => Some(parts.uri.path().as_bytes()),
        Some(RequestKey::Header(name)) => {
            parts.headers.get(name.as_str()).map(HeaderValue::as_bytes)
        }
        Some(RequestKey::Cookie(name)) => parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_bytes()),
    };
    match value {
        Some(v) => hash_bytes(v),
        None => pool.hash_key.key(client),
    }
}

/// The path (and query) to send upstream after the route's rewrite.
fn rewritten_path(route: &Route, uri: &Uri, strip: bool, rewrite: Option<&str>) -> String {
    let path = uri.path();
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let weir_config::http::PathMatch::Prefix(prefix) = &route.path else {
        return format!("{path}{query}");
    };
    let rest = if prefix == "/" {
        path
    } else {
        path.strip_prefix(prefix.as_str()).unwrap_or(path)
    };
    let new_base = match (strip, rewrite) {
        (true, _) => "",
        (false, Some(r)) => r.trim_end_matches('/'),
        (false, None) => return format!("{path}{query}"),
    };
    let joined = format!("{new_base}{rest}");
    let joined = if joined.is_empty() {
        "/".to_owned()
    } else if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    };
    format!("{joined}{query}")
}

fn redirect(code: u16, location: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND);
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The client's response: the backend's, with hop-by-hop headers removed,
/// the route's edits applied, and the body streamed through [`Tracked`]
/// (which holds the backend's in-flight slot until the body ends).
fn respond(
    resp: Response<Incoming>,
    route: &Route,
    request_id: &str,
    in_flight: weir_common::backend::InFlight,
    deadline: Instant,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    headers::apply(&mut parts.headers, &route.response_headers);
    if let Ok(v) = HeaderValue::from_str(request_id) {
        parts.headers.insert(headers::REQUEST_ID, v);
    }
    let body = body.map_err(crate::body::BoxError::from).boxed();
    let tracked = Tracked::new(body, Some(deadline), Box::new(move |_, _| drop(in_flight)));
    Response::from_parts(parts, tracked.boxed())
}

/// Wraps the final response so the access log line and the metrics are
/// written when its body ends.
fn finish(
    gw: Arc<Gateway>,
    mut ex: Exchange,
    response: Response<ProxyBody>,
    active: Active,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    // Answer in the client's version, whatever the backend spoke.
    parts.version = ex.version;
    if let Some(h) = ex.rate_limit.take() {
        parts.headers.extend(h);
    }
    let status = parts.status;
    let route_name: Arc<str> = ex
        .route
        .and_then(|id| gw.routes.get(id))
        .map_or_else(|| Arc::from("none"), |r| Arc::from(r.name.as_str()));
    let on_end = Box::new(move |bytes: u64, complete: bool| {
        drop(active);
        let elapsed = ex.start.elapsed();
        gw.metrics
            .answered(ex.route, &ex.method, status.as_u16(), elapsed.as_secs_f64());
        gw.metrics.bytes_down.increment(bytes);
        gw.access_log.write(&Entry {
            client: ex.client,
            method: ex.method.as_str(),
            host: &ex.host,
            path: &ex.path,
            status: status.as_u16(),
            bytes,
            duration: elapsed,
            route: &route_name,
            backend: ex.backend.as_deref(),
            request_id: &ex.request_id,
            complete,
        });
    });
    let tracked = Tracked::new(body, None, on_end);
    Response::from_parts(parts, tracked.boxed())
}
