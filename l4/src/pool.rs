//! A pool at run time: its selector (swapped atomically), hash key, passive
//! health policy and the per-backend metric handles.

use std::sync::Arc;

use arc_swap::ArcSwap;
use metrics::{Counter, Gauge};
use tokio::task::JoinHandle;
use weir_common::backend::{Backend, BackendSet};
use weir_common::health::{self, HealthState};
use weir_common::metrics as names;
use weir_common::select::{HashKey, Selector};
use weir_common::shutdown::Shutdown;
use weir_config::Pool;

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
    config: Pool,
}

impl PoolRuntime {
    /// Builds the runtime of a validated pool: backends start down when active
    /// checks are configured (they must pass `rise` probes first), up otherwise.
    pub fn new(config: &Pool) -> Self {
        let (rise, fall) = config.thresholds();
        let starts_up = config.health_check.is_none();
        let backends: Vec<Backend> = config
            .backends
            .iter()
            .map(|b| {
                Backend::new(
                    b.name.as_str(),
                    b.addr,
                    b.weight,
                    HealthState::new(rise, fall, starts_up),
                )
            })
            .collect();
        let name: Arc<str> = config.name.as_str().into();
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
            selector: ArcSwap::from_pointee(Selector::build(&config.algorithm, set)),
            hash_key: config.hash_key,
            passive: config.passive,
            backend_metrics,
            name,
            config: config.clone(),
        }
    }

    /// Starts the pool's health tasks (probes, or the passive cooldown).
    pub fn spawn_health(&self, shutdown: Shutdown) -> Vec<JoinHandle<()>> {
        let set = Arc::clone(self.selector.load().backends());
        health::checker::spawn(
            self.name.clone(),
            &set,
            self.config.health_check.clone(),
            self.config.fail_timeout,
            shutdown,
        )
    }
}
