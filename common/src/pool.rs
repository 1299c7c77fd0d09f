//! A pool at run time: its selector (swapped atomically), hash key, passive
//! health policy and the per-backend metric handles. Shared by the L4 and L7
//! engines: a pool used by several listeners has one set of health checks.

use std::sync::Arc;

use std::net::SocketAddr;
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::{Counter, Gauge};
use tokio::task::JoinHandle;

use crate::backend::{Backend, BackendSet};
use crate::health::checker::CheckConfig;
use crate::health::{self, HealthState};
use crate::metrics as names;
use crate::select::{Algorithm, HashKey, Selector};
use crate::shutdown::Shutdown;

/// What a pool is made of (built from the validated configuration by the
/// binary; this crate does not know the configuration types).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    /// Pool name.
    pub name: String,
    /// Selection algorithm.
    pub algorithm: Algorithm,
    /// Connection hash key.
    pub hash_key: HashKey,
    /// Backends: name, address, weight.
    pub backends: Vec<(String, SocketAddr, u32)>,
    /// Active checks, if any.
    pub health_check: Option<CheckConfig>,
    /// Real-traffic failures count against backends.
    pub passive: bool,
    /// Rest period of passively-failed backends without active checks.
    pub fail_timeout: Duration,
    /// Rise and fall thresholds of the backends' health machines.
    pub thresholds: (u32, u32),
}

/// Metric handles of one backend, registered once.
#[derive(Debug, Clone)]
pub struct BackendMetrics {
    /// Connections established.
    pub connections: Counter,
    /// Connections open now.
    pub active: Gauge,
    /// Connect failures: refused, timeout, other.
    pub connect_errors: [Counter; 3],
}

/// A running pool.
#[derive(Debug)]
pub struct PoolRuntime {
    /// Pool name (metric label).
    pub name: Arc<str>,
    /// The current selector; replaced whole when membership changes.
    pub selector: ArcSwap<Selector>,
    /// What keys are hashed from.
    pub hash_key: HashKey,
    /// Whether real-traffic failures count against backends.
    pub passive: bool,
    /// Metric handles, by backend index in the current snapshot.
    pub backend_metrics: Vec<BackendMetrics>,
    spec: PoolSpec,
}

impl PoolRuntime {
    /// Builds the runtime of a validated pool: backends start down when active
    /// checks are configured (they must pass `rise` probes first), up otherwise.
    pub fn new(spec: PoolSpec) -> Self {
        let (rise, fall) = spec.thresholds;
        let starts_up = spec.health_check.is_none();
        let backends: Vec<Backend> = spec
            .backends
            .iter()
            .map(|(name, addr, weight)| {
                Backend::new(
                    name.as_str(),
                    *addr,
                    *weight,
                    HealthState::new(rise, fall, starts_up),
                )
            })
            .collect();
        let name: Arc<str> = spec.name.as_str().into();
        let backend_metrics = backends
            .iter()
            .map(|b| {
                let labels = [("pool", name.to_string()), ("backend", b.name.to_string())];
                let err = |reason: &'static str| {
                    metrics::counter!(names::BACKEND_CONNECT_ERRORS, "pool" => name.to_string(), "backend" => b.name.to_string(), "reason" => reason)
                };
                BackendMetrics {
                    connections: metrics::counter!(names::BACKEND_CONNECTIONS, &labels),
                    active: metrics::gauge!(names::BACKEND_ACTIVE, &labels),
                    connect_errors: [err("refused"), err("timeout"), err("other")],
                }
            })
            .collect();
        let set = Arc::new(BackendSet::new(backends));
        Self {
            selector: ArcSwap::from_pointee(Selector::build(&spec.algorithm, set)),
            hash_key: spec.hash_key,
            passive: spec.passive,
            backend_metrics,
            name,
            spec,
        }
    }

    /// Starts the pool's health tasks (probes, or the passive cooldown).
    pub fn spawn_health(&self, shutdown: Shutdown) -> Vec<JoinHandle<()>> {
        let set = Arc::clone(self.selector.load().backends());
        health::checker::spawn(
            self.name.clone(),
            &set,
            self.spec.health_check.clone(),
            self.spec.fail_timeout,
            shutdown,
        )
    }
}
