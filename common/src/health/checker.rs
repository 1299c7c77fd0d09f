//! The tasks that drive health: active probes on an interval, and the
//! cooldown that revives passively-failed backends of pools without probes.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::probe::{Probe, ProbeError};
use super::{Source, publish, report};
use crate::backend::{Backend, BackendSet};
use crate::hash::hash_bytes;
use crate::listener::AcceptErrorKind;
use crate::metrics as names;
use crate::shutdown::Shutdown;

/// Active check settings of one pool.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckConfig {
    /// What to ask.
    pub probe: Probe,
    /// Time between probes of one backend.
    pub interval: Duration,
    /// Bound on one probe.
    pub timeout: Duration,
    /// Consecutive successes to come up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
}

/// Starts the health tasks of one pool: a probe loop per backend when `check`
/// is set, otherwise a cooldown loop that revives backends marked down by
/// real traffic after `fail_timeout`. Tasks end on `shutdown`.
pub fn spawn(
    pool: Arc<str>,
    set: &Arc<BackendSet>,
    check: Option<CheckConfig>,
    fail_timeout: Duration,
    shutdown: Shutdown,
) -> Vec<JoinHandle<()>> {
    for b in set.backends() {
        publish(&pool, b, b.state.is_healthy());
    }
    match check {
        Some(check) => set
            .backends()
            .iter()
            .map(|b| {
                let (pool, b, check, shutdown) =
                    (pool.clone(), b.clone(), check.clone(), shutdown.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = probe_loop(&pool, &b, &check) => {}
                        () = shutdown.wait() => {}
                    }
                })
            })
            .collect(),
        None => {
            let set = Arc::clone(set);
            vec![tokio::spawn(async move {
                tokio::select! {
                    () = cooldown_loop(&pool, &set, fail_timeout) => {}
                    () = shutdown.wait() => {}
                }
            })]
        }
    }
}

async fn probe_loop(pool: &str, backend: &Backend, check: &CheckConfig) {
    // Stagger the first probe by a fixed fraction of the interval per backend
    // so a large pool is not probed in one burst.
    let spread = check.interval.as_millis().max(1) as u64;
    let offset = Duration::from_millis(hash_bytes(backend.name.as_bytes()) % spread / 4);
    let mut ticks = tokio::time::interval_at(Instant::now() + offset, check.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let result = check.probe.run(backend.addr, check.timeout).await;
        if let Err(ProbeError::Io(e)) = &result
            && AcceptErrorKind::of(e) == AcceptErrorKind::Exhausted
        {
            // weir itself is out of descriptors or memory: that says nothing
            // about the backend, so the probe neither passes nor fails.
            tracing::debug!(pool, backend = %backend.name, error = %e, "health probe skipped: local resources exhausted");
            continue;
        }
        let label = if result.is_ok() { "success" } else { "failure" };
        metrics::counter!(names::HEALTH_CHECKS, "pool" => pool.to_owned(), "backend" => backend.name.to_string(), "result" => label)
            .increment(1);
        if let Err(err) = &result {
            tracing::debug!(pool, backend = %backend.name, error = %err, "health probe failed");
        }
        report(pool, backend, result.is_ok(), Source::Probe);
    }
}

async fn cooldown_loop(pool: &str, set: &BackendSet, fail_timeout: Duration) {
    let mut down_since: Vec<Option<Instant>> = vec![None; set.len()];
    let tick = (fail_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = Instant::now();
        for (i, b) in set.backends().iter().enumerate() {
            if b.state.is_healthy() {
                down_since[i] = None;
                continue;
            }
            let since = *down_since[i].get_or_insert(now);
            if now.duration_since(since) >= fail_timeout {
                down_since[i] = None;
                report(pool, b, true, Source::Cooldown);
            }
        }
    }
}
