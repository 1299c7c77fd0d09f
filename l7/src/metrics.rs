//! Per-listener metric handles, resolved once instead of per request.
//!
//! Label lookups in the recorder allocate (the key is copied on every
//! `counter!` call), so the request path uses handles: the listener's
//! gauges and counters are registered at start, and each route's
//! method × status-class counters on first use (lazily, so a table of
//! thousands of routes does not export thousands of zero series).

use std::sync::OnceLock;

use http::Method;
use metrics::{Counter, Gauge, Histogram};
use weir_common::metrics as names;

use crate::error::GatewayError;

/// Method labels, in index order.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];
/// Status class labels, in index order.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

fn class_index(status: u16) -> usize {
    match status / 100 {
        1 => 0,
        2 => 1,
        3 => 2,
        4 => 3,
        _ => 4,
    }
}

/// Handles of one route (or of the requests no route matched).
#[derive(Debug)]
struct RouteMetrics {
    name: String,
    requests: [[OnceLock<Counter>; 5]; 8],
    duration: OnceLock<Histogram>,
    retries: OnceLock<Counter>,
}

/// Handles of one HTTP listener.
#[derive(Debug)]
pub struct GatewayMetrics {
    listener: String,
    /// Requests in progress.
    pub active: Gauge,
    /// Response body bytes sent.
    pub bytes_down: Counter,
    /// Retries refused by the budget.
    pub budget_exhausted: Counter,
    /// Requests whose client left before the response began.
    pub abandoned: Counter,
    /// Requests weir answered itself, by reason (registered on first use:
    /// a flood of 429s or 400s must not build label strings per request).
    errors: [OnceLock<Counter>; GatewayError::ALL.len()],
    /// One per route, plus a last one for requests no route matched.
    routes: Vec<RouteMetrics>,
}

impl GatewayMetrics {
    /// Handles for `listener` with routes named `routes` (in route order).
    pub fn new<'a>(listener: &str, routes: impl Iterator<Item = &'a str>) -> Self {
        let route = |name: &str| RouteMetrics {
            name: name.to_owned(),
            requests: Default::default(),
            duration: OnceLock::new(),
            retries: OnceLock::new(),
        };
        let mut all: Vec<RouteMetrics> = routes.map(route).collect();
        all.push(route("none"));
        Self {
            listener: listener.to_owned(),
            active: metrics::gauge!(names::HTTP_ACTIVE, "listener" => listener.to_owned()),
            bytes_down: metrics::counter!(names::LISTENER_BYTES, "listener" => listener.to_owned(), "direction" => "downstream"),
            budget_exhausted: metrics::counter!(names::HTTP_RETRY_BUDGET_EXHAUSTED, "listener" => listener.to_owned()),
            abandoned: metrics::counter!(names::HTTP_ABANDONED, "listener" => listener.to_owned()),
            errors: Default::default(),
            routes: all,
        }
    }

    fn route(&self, id: Option<usize>) -> Option<&RouteMetrics> {
        id.and_then(|i| self.routes.get(i))
            .or_else(|| self.routes.last())
    }

    /// Counts one request weir answered itself with `e`.
    pub fn error(&self, e: GatewayError) {
        let i = e.index();
        if let Some(slot) = self.errors.get(i) {
            slot.get_or_init(|| {
                metrics::counter!(names::HTTP_ERRORS, "listener" => self.listener.clone(), "reason" => e.reason())
            })
            .increment(1);
        }
    }

    /// Counts one retry of a request on `route` on another backend.
    pub fn retried(&self, route: Option<usize>) {
        let Some(r) = self.route(route) else { return };
        r.retries
            .get_or_init(|| {
                metrics::counter!(names::HTTP_RETRIES, "listener" => self.listener.clone(), "route" => r.name.clone())
            })
            .increment(1);
    }

    /// Counts one answered request and its duration.
    pub fn answered(&self, route: Option<usize>, method: &Method, status: u16, seconds: f64) {
        let Some(r) = self.route(route) else { return };
        let (m, c) = (method_index(method), class_index(status));
        r.requests[m][c]
            .get_or_init(|| {
                metrics::counter!(names::HTTP_REQUESTS, "listener" => self.listener.clone(), "route" => r.name.clone(), "method" => METHODS[m], "class" => CLASSES[c])
            })
            .increment(1);
        r.duration
            .get_or_init(|| {
                metrics::histogram!(names::HTTP_DURATION, "listener" => self.listener.clone(), "route" => r.name.clone())
            })
            .record(seconds);
    }
}
