//! weir's integration tests: one test binary, weir run in-process on port 0
//! against fake backends and real peers.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

mod cli;
mod dns;
mod http_access_log;
mod http_bad_input;
mod http_forwarding;
mod http_gateway;
mod http_h2;
mod http_health;
mod http_load;
mod http_outlier;
mod http_tls;
mod http_trailers;
mod http_upgrade;
mod http_upstream_pool;
mod http_upstream_tls;
mod jwt;
mod l4_faults;
mod l4_health;
mod l4_proxy;
mod postgres;
mod prometheus;
mod rate_limit;
mod redis;
mod udp;
