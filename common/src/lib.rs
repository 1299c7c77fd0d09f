//! weir-common: the vocabulary and machinery shared by the L4 and L7 engines.
//!
//! On the path accept → select → connect → forward, this crate owns
//! *select* (the [`select::Selector`] over a [`backend::BackendSet`]), the
//! health machinery that decides which backends are ready, rate-limit buckets
//! ([`rate`]), the listener seam
//! (binding and the accept-error policy), the worker threads ([`workers`]),
//! shutdown/drain signalling, and the metric names. It depends on none of weir's crates; the pure parts
//! ([`select`], [`health::HealthState`], [`hash`]) do not touch tokio.

#![forbid(unsafe_code)]

pub mod backend;
pub mod hash;
pub mod health;
pub mod listener;
pub mod metrics;
pub mod pool;
pub mod rate;
pub mod select;
pub mod shutdown;
pub mod workers;
