//! The request pipeline, in one fixed order: route → authenticate →
//! rate-limit ([`crate::ratelimit`]) → select → forward → log.
//!
//! Plain functions over concrete types. Retries happen only for requests
//! without a body (the body streams to the backend and cannot be replayed):
//! after a failed connect always, after a 502/503 or a reset only for
//! idempotent methods, at most `retries` times per request and within the
//! listener's [`RetryBudget`] (20% of recent requests, a burst of 10), so
//! retries cannot multiply an outage.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rustls_pki_types::ServerName;
use tokio::time::Instant;
use weir_common::backend::Backend;
use weir_common::hash::{hash_bytes, mix64};
use weir_common::health::{self, Source};
use weir_common::pool::PoolRuntime;
use weir_config::http::{HttpOptions, RequestKey, Route, RouteAction, UpstreamVersion};
use weir_config::upstream_tls::{Alpn, UpstreamTlsError, client_config};

use crate::access_log::AccessLogger;
use crate::body::{ClientBody, ClientBodyError, ClientBodyState, ProxyBody, Tracked, empty, full};
use crate::connector::{ConnectFailure, TlsSide};
use crate::error::GatewayError;
use crate::exchange::{Active, Downstream, Exchange, Pending};
use crate::headers;
use crate::metrics::GatewayMetrics;
use crate::outlier::Outliers;
use crate::retry_budget::RetryBudget;
use crate::route::RouteTable;
use crate::tunnel::{is_upgrade, tunnel};
use crate::upstream::{Lease, Upstream, UpstreamError};

pub use crate::tunnel::TunnelSlot;

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
    /// Per pool, per backend (configuration order): the scheme and
    /// authority of HTTP/2 upstream URIs, built once.
    upstream_origins: Vec<Vec<(Scheme, Authority)>>,
    /// Per pool: its backends' pooled connections (HTTP/2 for h2c and h2
    /// pools, TLS for pools with `[pools.tls]`).
    upstreams: Vec<Arc<Upstream>>,
    /// Largest request body.
    pub max_body_bytes: u64,
    /// Access log.
    pub access_log: AccessLogger,
    /// Passive outlier detection, shared by every HTTP listener.
    pub outliers: Arc<Outliers>,
    /// The optional forwarding headers (`Forwarded`, `Via`).
    pub forwarding: Forwarding,
    /// Metric handles.
    pub metrics: GatewayMetrics,
    /// JWT providers, shared by every HTTP listener (routes' `auth`).
    pub auth: Arc<crate::auth::Auth>,
    /// The process's rate-limit policies (routes hold their indices).
    pub rate_limits: Arc<crate::ratelimit::RateLimits>,
    requests: AtomicU64,
    retry_budget: RetryBudget,
}

/// The optional forwarding headers a listener adds.
#[derive(Debug, Clone, Default)]
pub struct Forwarding {
    /// Send RFC 7239 `Forwarded` to backends.
    pub rfc7239: bool,
    /// The pseudonym of `Via` on requests and responses.
    pub via: Option<String>,
}

impl Gateway {
    /// A gateway over `options.routes`, with pooled connections to every
    /// pool's backends. `pools` and `pool_configs` are indexed like the
    /// configuration's pools; backend connections are kept per worker
    /// thread (`workers` of them). Fails (naming the pool) when a TLS pool's
    /// files no longer load.
    pub fn new(
        listener: &str,
        options: &HttpOptions,
        pools: Vec<Arc<PoolRuntime>>,
        pool_configs: &[weir_config::Pool],
        access_log: AccessLogger,
        outliers: Arc<Outliers>,
        workers: usize,
    ) -> Result<Self, (String, UpstreamTlsError)> {
        let routes = RouteTable::new(options.routes.clone());
        let request_keys = pool_configs.iter().map(|p| p.request_key.clone()).collect();
        let upstream_versions: Vec<UpstreamVersion> =
            pool_configs.iter().map(|p| p.http_version).collect();
        let upstream_origins = pool_configs.iter().map(origins).collect();
        let routes_len = routes.len();
        let route_names: Vec<String> = (0..routes_len)
            .filter_map(|id| routes.get(id).map(|r| r.name.clone()))
            .collect();
        let upstreams = pool_configs
            .iter()
            .map(|p| {
                let tls = tls_side(p).map_err(|e| (p.name.clone(), e))?;
                Ok(Arc::new(Upstream::new(
                    p.backends.len(),
                    workers,
                    p.http_version.is_http2(),
                    tls,
                )))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            listener: listener.into(),
            routes,
            pools,
            request_keys,
            upstream_versions,
            upstream_origins,
            upstreams,
            max_body_bytes: options.max_body_bytes,
            access_log,
            outliers,
            forwarding: Forwarding {
                rfc7239: options.forwarded,
                via: options.via.clone(),
            },
            metrics: GatewayMetrics::new(
                listener,
                (0..routes_len).filter_map(|id| route_names.get(id).map(String::as_str)),
            ),
            auth: Arc::default(),
            rate_limits: Arc::new(crate::ratelimit::RateLimits::none()),
            requests: AtomicU64::new(0),
            retry_budget: RetryBudget::new(),
        })
    }

    /// The JWT providers routes' `auth` refers to (none by default).
    pub fn with_auth(mut self, auth: Arc<crate::auth::Auth>) -> Self {
        self.auth = auth;
        self
    }

    /// Uses `rate_limits` (the process's policies, shared by every HTTP
    /// listener) for the routes' `rate_limits`.
    pub fn with_rate_limits(mut self, rate_limits: Arc<crate::ratelimit::RateLimits>) -> Self {
        self.rate_limits = rate_limits;
        self
    }

    /// A retry is allowed while the budget has a token for it.
    fn take_retry(&self) -> bool {
        if self.retry_budget.withdraw() {
            true
        } else {
            self.metrics.budget_exhausted.increment(1);
            false
        }
    }
}

/// The scheme and authority of each backend of `pool`, in order: over TLS
/// the name its certificate proves (what SNI carries; a TLS ingress routes
/// HTTP/2 by `:authority`), in cleartext its address.
fn origins(pool: &weir_config::Pool) -> Vec<(Scheme, Authority)> {
    let scheme = if pool.tls.is_some() {
        Scheme::HTTPS
    } else {
        Scheme::HTTP
    };
    pool.backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let text = match pool.tls.as_ref().and_then(|t| t.server_names.get(i)) {
                Some(name) if name.parse::<std::net::Ipv6Addr>().is_ok() => {
                    format!("[{name}]:{}", b.addr.port())
                }
                Some(name) => format!("{name}:{}", b.addr.port()),
                None => b.addr.to_string(),
            };
            let authority = Authority::try_from(text.as_str())
                .unwrap_or_else(|_| Authority::from_static("invalid"));
            (scheme.clone(), authority)
        })
        .collect()
}

/// The TLS side of a pool with `[pools.tls]` (`None` for cleartext).
fn tls_side(pool: &weir_config::Pool) -> Result<Option<TlsSide>, UpstreamTlsError> {
    let Some(tls) = &pool.tls else {
        return Ok(None);
    };
    let alpn = if pool.http_version.is_http2() {
        Alpn::H2
    } else {
        Alpn::Http1
    };
    let config = client_config(tls, alpn)?;
    let names = tls
        .server_names
        .iter()
        .map(|name| ServerName::try_from(name.clone()).ok())
        .collect();
    Ok(Some(TlsSide::new(config, names)))
}

/// Handles one request from the client of `downstream`.
pub async fn handle(
    gw: Arc<Gateway>,
    downstream: Arc<Downstream>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    gw.requests.fetch_add(1, Ordering::Relaxed);
    gw.retry_budget.deposit();
    let active = Active::new(gw.metrics.active.clone());
    let (mut parts, body) = req.into_parts();
    downstream.clock.begin(parts.version);
    let seed =
        gw.requests.load(Ordering::Relaxed) ^ weir_common::hash::hash_ip_port(downstream.addr);
    let mut pending = Pending {
        gw: Arc::clone(&gw),
        ex: Exchange {
            start: Instant::now(),
            version: parts.version,
            client: downstream.addr,
            method: parts.method.clone(),
            host: headers::host_of(&parts.uri, &parts.headers)
                .unwrap_or_else(|| HeaderValue::from_static("")),
            path: parts.uri.path_and_query().cloned(),
            request_id: headers::request_id(&mut parts.headers, mix64(seed ^ time_seed())),
            route: None,
            backend: None,
            rate_limit: None,
            downstream,
        },
        active: Some(active),
        logged: false,
    };
    let result = pipeline(&gw, &mut pending.ex, parts, body).await;
    let answer = match result {
        Ok(answer) => answer,
        Err(e) => {
            gw.metrics.error(e);
            Answer::Own(error_response(e, &pending.ex.request_id))
        }
    };
    finish(pending, answer)
}

fn time_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The gateway's own answer for an error.
pub fn error_response(e: GatewayError, request_id: &HeaderValue) -> Response<ProxyBody> {
    let mut resp = Response::new(full(e.body(request_id.to_str().unwrap_or_default())));
    *resp.status_mut() = e.status();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(headers::REQUEST_ID, request_id.clone());
    resp
}

/// What the pipeline answers with.
enum Answer {
    /// weir's own response (a redirect, an upgrade's 101).
    Own(Response<ProxyBody>),
    /// A backend's response, headers already edited: its body streams
    /// under the request's deadline, holding the backend's in-flight slot.
    Backend {
        resp: Response<Incoming>,
        in_flight: weir_common::backend::InFlight,
        deadline: Instant,
        /// The HTTP/1.1 connection, back to the pool when the body ends.
        lease: Option<Lease>,
        /// The request body's state (`None`: it had none).
        request_body: Option<Arc<ClientBodyState>>,
    },
}

async fn pipeline(
    gw: &Gateway,
    ex: &mut Exchange,
    mut parts: http::request::Parts,
    body: Incoming,
) -> Result<Answer, GatewayError> {
    // Route.
    if ex.host.is_empty() || RouteTable::check_path(ex.path()).is_err() {
        return Err(GatewayError::BadRequest);
    }
    let id = gw
        .routes
        .find(ex.host(), ex.path(), parts.method.as_str(), &parts.headers)
        .ok_or(GatewayError::NoRoute)?;
    ex.route = Some(id);
    let route = gw.routes.get(id).ok_or(GatewayError::NoRoute)?;
    // Authenticate: a refusal is the answer; the backend never sees it.
    // The checks' futures are boxed, and made only for a route that has
    // them: unboxed, their state (2.3 KB for authentication) would sit in
    // every request's future, which hyper moves around whole.
    if !route.auth.is_empty()
        && let Err(refusal) =
            Box::pin(gw.auth.check(&route.auth, &mut parts, ex.request_id())).await
    {
        return Ok(Answer::Own(refusal));
    }
    let (pool_index, path_and_query) = match &route.action {
        RouteAction::Redirect { code, location } => {
            return Ok(Answer::Own(redirect(*code, location)));
        }
        RouteAction::Forward {
            pool,
            strip_prefix,
            rewrite_prefix,
        } => (
            *pool,
            rewritten_path(route, &parts.uri, *strip_prefix, rewrite_prefix.as_deref())?,
        ),
    };
    if body.size_hint().lower() > gw.max_body_bytes {
        return Err(GatewayError::BodyTooLarge);
    }
    let pool = gw.pools.get(pool_index).ok_or(GatewayError::NoBackend)?;
    let http2 = gw
        .upstream_versions
        .get(pool_index)
        .is_some_and(|v| v.is_http2());

    // Rate-limit.
    let verdict = if route.rate_limits.is_empty() {
        Default::default()
    } else {
        Box::pin((gw.rate_limits).check(&route.rate_limits, &route.name, &parts, ex.client)).await
    };
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
    // HTTP/2 has no Upgrade, so to an HTTP/2 pool it is a plain request).
    let upgrade = !http2 && is_upgrade(&parts);
    let mut client_upgrade = if upgrade {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    let mut tunnel_slot = parts.extensions.remove::<TunnelSlot>();
    // `te: trailers` says the client takes trailer fields; weir passes them
    // through, so the backend is told (the one TE HTTP/2 allows, RFC 9113
    // §8.2.2, and what gRPC needs). Other TE codings are this hop's only.
    let te_trailers = headers::accepts_trailers(&parts.headers);
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    if te_trailers {
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
        if !http2 && !upgrade {
            // HTTP/1.1 wants TE named as a connection option (RFC 9110
            // §10.1.4); HTTP/2 forbids the Connection header.
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("te"));
        }
    }
    let proto = ex.downstream.proto;
    headers::add_forwarded(&mut parts.headers, &ex.downstream.ip, &ex.host, proto);
    if gw.forwarding.rfc7239 {
        headers::add_rfc7239(&mut parts.headers, ex.client, ex.host(), proto);
    }
    if let Some(via) = &gw.forwarding.via {
        headers::add_via(&mut parts.headers, parts.version, via);
    }
    // The backend sees the host the request was routed by: an absolute-form
    // target (or HTTP/2 :authority) replaces any Host header (RFC 9112 §3.2.2).
    if let Some(a) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        parts.headers.insert(header::HOST, v);
    }
    headers::apply(&mut parts.headers, &route.request_headers);
    if !parts.headers.contains_key(header::HOST) && !ex.host.is_empty() {
        parts.headers.insert(header::HOST, ex.host.clone());
    }
    if http2 {
        // The backend's address is the `:authority` (the client's host is in
        // X-Forwarded-Host); a Host that differs from it would make the
        // request malformed (RFC 9113 §8.3.1).
        parts.headers.remove(header::HOST);
        parts.version = Version::HTTP_2;
    } else {
        parts.version = Version::HTTP_11;
    }
    let limit = usize::try_from(gw.max_body_bytes).unwrap_or(usize::MAX);
    // How the client's body fails (too large, malformed, cut off) and
    // whether a backend is waiting on it: those failures are the client's,
    // never the backend's.
    // A request without a body (most GETs) needs neither.
    let body_state = (!replayable).then(|| Arc::new(ClientBodyState::default()));
    let mut body = Some(match &body_state {
        Some(state) => ClientBody::new(body, limit, Arc::clone(state)).boxed(),
        None => empty(),
    });
    let deadline = ex.start + route.request_timeout;
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    );
    let upstream_pool = gw
        .upstreams
        .get(pool_index)
        .ok_or(GatewayError::BadGateway)?;
    let mut last_error = GatewayError::NoBackend;
    let mut fallback: Option<(
        Response<Incoming>,
        weir_common::backend::InFlight,
        Option<Lease>,
    )> = None;
    // The request head is cloned only while another attempt may follow.
    let mut head = Some(parts);
    let last_attempt = candidates.len() - 1;
    for (attempt, &index) in candidates.as_slice().iter().enumerate() {
        if attempt > 0 {
            if upgrade || !gw.take_retry() {
                break;
            }
            gw.metrics.retried(ex.route);
        }
        let Some(backend) = selector.backend(index) else {
            continue;
        };
        // HTTP/1.1: origin-form (`/path?query`); HTTP/2: the backend as
        // `:scheme` and `:authority`.
        let uri = if http2 {
            let Some((scheme, authority)) = gw
                .upstream_origins
                .get(pool_index)
                .and_then(|o| o.get(index as usize))
            else {
                continue;
            };
            let mut uri = http::uri::Parts::default();
            uri.scheme = Some(scheme.clone());
            uri.authority = Some(authority.clone());
            uri.path_and_query = Some(path_and_query.clone());
            Uri::from_parts(uri).map_err(|_| GatewayError::BadRequest)?
        } else {
            Uri::from(path_and_query.clone())
        };
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
        let outcome = tokio::time::timeout(
            wait,
            upstream_pool.send(
                index as usize,
                backend.addr,
                route.connect_timeout,
                upstream,
            ),
        )
        .await;
        match outcome {
            Err(_) => {
                if let Some(fault) = client_fault(body_state.as_deref()) {
                    return Err(fault);
                }
                if body_state.as_ref().is_some_and(|s| s.waiting_on_client()) {
                    // The backend waits for a body the client stopped
                    // sending: the client's stall, not the backend's.
                    tracing::debug!(route = %route.name, backend = %backend.name, "client body stalled past the response timeout");
                    return Err(GatewayError::ClientTimeout);
                }
                tracing::debug!(route = %route.name, backend = %backend.name, "backend response timed out");
                return Err(GatewayError::Timeout);
            }
            Ok(Err(e)) => {
                let connect = matches!(e, UpstreamError::Connect(_));
                tracing::debug!(route = %route.name, backend = %backend.name, error = %e, connect, "backend request failed");
                if let Some(fault) = client_fault(body_state.as_deref()) {
                    return Err(fault);
                }
                if let UpstreamError::Connect(failure) = e {
                    count_connect_error(pool, index as usize, failure);
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
            Ok(Ok((resp, lease))) => {
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
                    return Ok(Answer::Own(tunnel(
                        resp,
                        client_side,
                        in_flight,
                        tunnel_slot.take(),
                    )));
                }
                let status = resp.status();
                let retryable = matches!(
                    status,
                    StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
                );
                if retryable && replayable && idempotent && attempt + 1 < candidates.len() {
                    // Kept: if no later attempt answers, the client gets
                    // this backend's own 502/503 (and its Retry-After).
                    fallback = Some((resp, in_flight, lease));
                    continue;
                }
                return Ok(Answer::Backend {
                    resp: respond(gw, resp, route, &ex.request_id),
                    in_flight,
                    deadline,
                    lease,
                    request_body: body_state,
                });
            }
        }
    }
    match fallback {
        Some((resp, in_flight, lease)) => Ok(Answer::Backend {
            resp: respond(gw, resp, route, &ex.request_id),
            in_flight,
            deadline,
            lease,
            request_body: body_state,
        }),
        None => Err(last_error),
    }
}

/// The client's own failure, if its body failed.
fn client_fault(state: Option<&ClientBodyState>) -> Option<GatewayError> {
    state?.error.get().map(|e| match e {
        ClientBodyError::TooLarge => GatewayError::BodyTooLarge,
        ClientBodyError::Malformed => GatewayError::BadRequest,
    })
}

fn count_connect_error(pool: &PoolRuntime, index: usize, failure: ConnectFailure) {
    if let Some(m) = pool.backend_metrics.get(index) {
        m.connect_errors[failure.metric_index()].increment(1);
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
        Some(RequestKey::Cookie(name)) => headers::cookies(&parts.headers)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_bytes()),
    };
    match value {
        Some(v) => hash_bytes(v),
        None => pool.hash_key.key(client),
    }
}

/// The path (and query) to send upstream after the route's rewrite: the
/// client's own (shared, not copied) when the route rewrites nothing.
fn rewritten_path(
    route: &Route,
    uri: &Uri,
    strip: bool,
    rewrite: Option<&str>,
) -> Result<PathAndQuery, GatewayError> {
    let original = || {
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"))
    };
    let weir_config::http::PathMatch::Prefix(prefix) = &route.path else {
        return Ok(original());
    };
    let new_base = match (strip, rewrite) {
        (true, _) => "",
        (false, Some(r)) => r.trim_end_matches('/'),
        (false, None) => return Ok(original()),
    };
    let path = uri.path();
    let rest = if prefix == "/" {
        path
    } else {
        path.strip_prefix(prefix.as_str()).unwrap_or(path)
    };
    let mut joined = String::with_capacity(new_base.len() + rest.len() + 2);
    let rooted = if new_base.is_empty() {
        rest.starts_with('/')
    } else {
        new_base.starts_with('/')
    };
    if !rooted {
        joined.push('/');
    }
    joined.push_str(new_base);
    joined.push_str(rest);
    if let Some(q) = uri.query() {
        joined.push('?');
        joined.push_str(q);
    }
    PathAndQuery::try_from(joined).map_err(|_| GatewayError::BadRequest)
}

fn redirect(code: u16, location: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND);
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The client's response head: the backend's, with hop-by-hop headers
/// removed, `Via` and the route's edits applied, and the request id.
fn respond(
    gw: &Gateway,
    resp: Response<Incoming>,
    route: &Route,
    request_id: &HeaderValue,
) -> Response<Incoming> {
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    if let Some(via) = &gw.forwarding.via {
        headers::add_via(&mut parts.headers, parts.version, via);
    }
    headers::apply(&mut parts.headers, &route.response_headers);
    parts
        .headers
        .insert(headers::REQUEST_ID, request_id.clone());
    Response::from_parts(parts, body)
}

/// The final response, its body streamed through one [`Tracked`] that
/// writes the access log line and the metrics when it ends (and, for a
/// backend's body, enforces the request deadline and holds the backend's
/// in-flight slot until then).
fn finish(mut pending: Pending, answer: Answer) -> Response<ProxyBody> {
    let version = pending.ex.version;
    let rate_limit = pending.ex.rate_limit.take();
    let with_rate_limit = |headers: &mut http::HeaderMap| {
        if let Some(h) = rate_limit {
            headers.extend(h);
        }
    };
    match answer {
        Answer::Own(resp) => {
            let (mut parts, body) = resp.into_parts();
            // Answer in the client's version, whatever the backend spoke.
            parts.version = version;
            with_rate_limit(&mut parts.headers);
            let status = parts.status.as_u16();
            let on_end = move |bytes: u64, complete: bool| pending.log(status, bytes, complete);
            Response::from_parts(parts, Tracked::new(body, None, on_end).boxed())
        }
        Answer::Backend {
            resp,
            in_flight,
            deadline,
            lease,
            request_body,
        } => {
            let (mut parts, body) = resp.into_parts();
            parts.version = version;
            with_rate_limit(&mut parts.headers);
            let status = parts.status.as_u16();
            let on_end = move |bytes: u64, complete: bool| {
                drop(in_flight);
                // The connection is reusable once both bodies went through
                // whole: a response cut short, or a request body the backend
                // answered before reading (an early 401 or 413), closes it.
                let sent = request_body.as_ref().is_none_or(|b| b.ended());
                if complete
                    && sent
                    && let Some(lease) = lease
                {
                    lease.release();
                }
                pending.log(status, bytes, complete);
            };
            Response::from_parts(parts, Tracked::new(body, Some(deadline), on_end).boxed())
        }
    }
}
