//! One request's bookkeeping: who the client is ([`Downstream`], known once
//! per connection), what the access log and metrics need to know
//! ([`Exchange`]), and the guarantee that every request is counted and
//! logged exactly once ([`Pending`]): when its response body ends, or, if
//! the client leaves before the response begins, as status 499.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::HeaderValue;
use http::uri::PathAndQuery;
use http::{Method, Version};
use tokio::time::Instant;

use crate::access_log::Entry;
use crate::deadlines::RequestClock;
use crate::headers;
use crate::proxy::Gateway;

/// The client end of a connection, known once per connection (so that
/// requests do not each format the client's address).
#[derive(Debug)]
pub struct Downstream {
    /// The client's address.
    pub addr: SocketAddr,
    /// Its IP as a header value, for `X-Forwarded-For`.
    pub ip: HeaderValue,
    /// `"https"` when the connection is TLS, else `"http"`.
    pub proto: &'static str,
    /// What the connection's requests tell its timer.
    pub clock: RequestClock,
}

impl Downstream {
    /// The client at `addr`, over TLS or not, connected at `opened`.
    pub fn new(addr: SocketAddr, over_tls: bool, opened: Instant) -> Self {
        Self {
            addr,
            ip: headers::ip_value(addr),
            proto: if over_tls { "https" } else { "http" },
            clock: RequestClock::new(opened),
        }
    }
}

/// What the access log and metrics need to know about a request. The
/// header values and the path share the request's bytes (no copies).
pub(crate) struct Exchange {
    pub(crate) start: Instant,
    pub(crate) version: Version,
    pub(crate) client: SocketAddr,
    pub(crate) downstream: Arc<Downstream>,
    pub(crate) method: Method,
    /// Lowercase, without the port; empty when the request has none.
    pub(crate) host: HeaderValue,
    /// `None` for a target without a path (authority-form): refused.
    pub(crate) path: Option<PathAndQuery>,
    pub(crate) request_id: HeaderValue,
    pub(crate) route: Option<usize>,
    pub(crate) backend: Option<Arc<str>>,
    /// Rate-limit headers for the response.
    pub(crate) rate_limit: Option<http::HeaderMap>,
}

impl Exchange {
    pub(crate) fn host(&self) -> &str {
        self.host.to_str().unwrap_or_default()
    }

    pub(crate) fn path(&self) -> &str {
        self.path.as_ref().map_or("", PathAndQuery::path)
    }

    pub(crate) fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }
}

/// A request until its log line is written. Dropped unlogged, it is a
/// request whose client went away before the response began (hyper
/// cancelled the handler): counted and logged with nginx's status 499.
pub(crate) struct Pending {
    pub(crate) gw: Arc<Gateway>,
    pub(crate) ex: Exchange,
    pub(crate) active: Option<Active>,
    pub(crate) logged: bool,
}

/// Status logged for a request abandoned by its client (nginx's 499).
const CLIENT_CLOSED: u16 = 499;

impl Pending {
    /// Counts the request, writes its access-log line and ends it.
    pub(crate) fn log(&mut self, status: u16, bytes: u64, complete: bool) {
        self.logged = true;
        drop(self.active.take());
        let (gw, ex) = (&self.gw, &self.ex);
        let elapsed = ex.start.elapsed();
        ex.downstream.clock.end(ex.start + elapsed);
        gw.metrics
            .answered(ex.route, &ex.method, status, elapsed.as_secs_f64());
        gw.metrics.bytes_down.increment(bytes);
        if gw.access_log.is_off() {
            return;
        }
        let route = ex
            .route
            .and_then(|id| gw.routes.get(id))
            .map_or("none", |r| r.name.as_str());
        gw.access_log.write(&Entry {
            client: ex.client,
            method: ex.method.as_str(),
            host: ex.host(),
            path: ex.path(),
            status,
            bytes,
            duration: elapsed,
            route,
            backend: ex.backend.as_deref(),
            request_id: ex.request_id(),
            complete,
        });
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.logged {
            self.gw.metrics.abandoned.increment(1);
            self.log(CLIENT_CLOSED, 0, false);
        }
    }
}

/// One request counted in `weir_http_requests_active` until dropped, so a
/// request whose handler is cancelled (the client closed its connection or
/// reset its stream before the response began) does not stay active forever.
pub(crate) struct Active(metrics::Gauge);

impl Active {
    pub(crate) fn new(gauge: metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
