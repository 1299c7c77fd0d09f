//! weir-l7: the Layer-7 gateway — an HTTP/1.1 and HTTP/2 reverse proxy with
//! routing, over the same pools, selectors and health machinery as L4.
//!
//! On the path accept → select → connect → forward, each request takes one
//! fixed pipeline ([`proxy`]): route ([`route`]: host, path, method and
//! header conditions, indexed, never scanned) → authenticate ([`auth`]:
//! JWT, for routes with `auth`) → rate-limit ([`ratelimit`]: GCRA per key,
//! in memory or in Redis for a fleet) → select (weir-common's
//! selector, keyed by the client address or a header, cookie or the path)
//! → forward ([`upstream`]: pooled connections per backend, TLS to backends
//! through [`connector`], timeouts, bounded retries within a budget) → log ([`access_log`], metrics). [`server`] accepts connections
//! and speaks HTTP with hyper, with the limits a gateway needs (header read
//! timeout, header size and count, body size, HTTP/2 streams, keep-alive);
//! for https listeners [`tls`] terminates TLS first (rustls, certificates
//! by SNI, reloadable).
//! It depends on weir-common and weir-config, never on the L4 engine.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod auth;
pub mod body;
pub mod connector;
pub mod deadlines;
pub mod error;
pub mod exchange;
pub mod headers;
pub mod metrics;
pub mod outlier;
pub mod proxy;
pub mod ratelimit;
pub mod retry_budget;
pub mod route;
pub mod server;
pub mod tls;
pub mod tunnel;
pub mod upstream;

pub use server::{HttpService, HttpStartError};
