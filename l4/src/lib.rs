//! weir-l4: the Layer-4 engine — a TCP proxy that moves byte streams between
//! clients and backends.
//!
//! On the path accept → select → connect → forward, this crate owns accept
//! ([`tcp`]: the accept loop and connection limit; [`client_limits`]: the
//! per-client connection limits), connect ([`connect`]:
//! timeouts and failover across the selector's candidates, passive health),
//! and forward ([`forward`]: splice(2) or copy, exact half-close, idle
//! timeout). Selection and health come from weir-common, settings from
//! weir-config. It must never depend on the L7 engine.

#![forbid(unsafe_code)]

pub mod client_limits;
pub mod connect;
pub mod forward;
pub mod tcp;
pub mod udp;

pub use tcp::{BindError, TcpService};
pub use weir_common::pool::PoolRuntime;
