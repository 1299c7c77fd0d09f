//! Passive outlier detection: a backend that answers `consecutive` 5xx in a
//! row (or fails to connect) is ejected from selection for a while; each
//! further ejection doubles the time, up to a maximum. The last ready backend
//! of a pool is never ejected: serving with a flaky backend beats serving
//! nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use weir_common::backend::Backend;
use weir_common::metrics as names;
use weir_common::pool::PoolRuntime;
use weir_config::http::OutlierDetection;

/// Counters of one backend.
#[derive(Debug, Default)]
struct BackendOutlier {
    consecutive: AtomicU32,
    ejections: AtomicU32,
}

/// Outlier detection of one pool.
#[derive(Debug)]
pub struct PoolOutliers {
    config: Option<OutlierDetection>,
    backends: Vec<BackendOutlier>,
    /// Held while counting ready backends and ejecting, so two backends
    /// failing at once cannot both be ejected as "not the last one".
    eject: std::sync::Mutex<()>,
}

impl PoolOutliers {
    /// Detection over `pool`'s backends; `None` turns it off.
    pub fn new(pool: &PoolRuntime, config: Option<OutlierDetection>) -> Self {
        let n = pool.selector.load().backends().len();
        Self {
            config,
            backends: (0..n).map(|_| BackendOutlier::default()).collect(),
            eject: std::sync::Mutex::new(()),
        }
    }

    /// Records one exchange with backend `index`: `failed` for a 5xx or a
    /// failed connect. May eject it.
    pub fn record(&self, pool: &Arc<PoolRuntime>, index: usize, failed: bool) {
        let (Some(config), Some(state)) = (&self.config, self.backends.get(index)) else {
            return;
        };
        if !failed {
            // Read first: a store on every success would pull the line away
            // from the other workers for nothing.
            if state.consecutive.load(Ordering::Relaxed) != 0 {
                state.consecutive.store(0, Ordering::Relaxed);
            }
            return;
        }
        let run = state.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if run < config.consecutive_failures {
            return;
        }
        let selector = pool.selector.load();
        let Some(backend) = selector.backend(index as u32) else {
            return;
        };
        let _one_at_a_time = match self.eject.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if backend.state.is_ejected() {
            return;
        }
        let ready = selector
            .backends()
            .backends()
            .iter()
            .filter(|b| b.state.is_ready())
            .count();
        if ready <= 1 {
            return;
        }
        state.consecutive.store(0, Ordering::Relaxed);
        let nth = state.ejections.fetch_add(1, Ordering::Relaxed);
        let factor = 1u32.checked_shl(nth.min(16)).unwrap_or(u32::MAX);
        let time = config
            .base_ejection
            .saturating_mul(factor)
            .min(config.max_ejection);
        eject(pool, backend.clone(), time);
    }
}

fn eject(pool: &Arc<PoolRuntime>, backend: Backend, time: Duration) {
    backend.state.set_ejected(true);
    metrics::counter!(names::HTTP_EJECTIONS, "pool" => pool.name.to_string(), "backend" => backend.name.to_string()).increment(1);
    tracing::warn!(pool = %pool.name, backend = %backend.name, seconds = time.as_secs_f64(), "backend ejected by outlier detection");
    let pool_name = pool.name.clone();
    tokio::spawn(async move {
        tokio::time::sleep(time).await;
        backend.state.set_ejected(false);
        tracing::info!(pool = %pool_name, backend = %backend.name, "ejected backend returns to selection");
    });
}

/// Outlier detection of every pool, by configuration index.
#[derive(Debug)]
pub struct Outliers {
    pools: Vec<PoolOutliers>,
}

impl Outliers {
    /// One detector per pool.
    pub fn new(pools: &[Arc<PoolRuntime>], configs: &[Option<OutlierDetection>]) -> Self {
        Self {
            pools: pools
                .iter()
                .enumerate()
                .map(|(i, p)| PoolOutliers::new(p, configs.get(i).cloned().flatten()))
                .collect(),
        }
    }

    /// Records one exchange (see [`PoolOutliers::record`]).
    pub fn record(&self, pools: &[Arc<PoolRuntime>], pool: usize, index: usize, failed: bool) {
        if let (Some(detector), Some(runtime)) = (self.pools.get(pool), pools.get(pool)) {
            detector.record(runtime, index, failed);
        }
    }
}
