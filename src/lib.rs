//! weir: a load balancer with a Layer-4 TCP engine (splice, Maglev,
//! least-connections, health checks) and Prometheus metrics.
//!
//! This package is the wiring: [`App`] binds every listener of a validated
//! [`weir_config::Config`] and runs the L4 engine (`weir-l4`) over pools
//! and selectors from `weir-common`, with the admin listener serving
//! `/metrics`. `src/main.rs` is only the command-line edge; tests run the
//! whole app in-process through this library.

#![forbid(unsafe_code)]

pub mod admin;
mod app;
pub mod demo;
pub mod telemetry;

pub use app::{App, StartError, TlsReloader, check_files};
