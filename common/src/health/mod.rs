//! Health: the pure rise/fall machine, the probes, and the tasks that run them.
//!
//! [`HealthState`] decides; [`probe`] asks a backend (TCP connect, or
//! send/expect); [`checker`] runs probes on an interval per backend and
//! revives passively-failed backends of pools without active checks.
//! Active probes and passive observations from real traffic both end in
//! [`report`], which logs each transition once and exports it.

pub mod checker;
pub mod probe;
mod state;

pub use state::HealthState;

use crate::backend::Backend;
use crate::metrics as names;

/// Where an observation came from (log field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An active health probe.
    Probe,
    /// A real connection or request.
    Traffic,
    /// The passive-failure cooldown expired.
    Cooldown,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Traffic => "traffic",
            Self::Cooldown => "cooldown",
        }
    }
}

/// Feeds one observation of `backend` in `pool` to its health machine and
/// logs/exports a transition if one happens. Returns the new state on change.
pub fn report(pool: &str, backend: &Backend, ok: bool, source: Source) -> Option<bool> {
    let changed = if source == Source::Cooldown {
        backend.state.force(ok);
        Some(ok)
    } else {
        backend.state.observe(ok)
    };
    if let Some(up) = changed {
        publish(pool, backend, up);
        let to = if up { "up" } else { "down" };
        metrics::counter!(names::HEALTH_TRANSITIONS, "pool" => pool.to_owned(), "backend" => backend.name.to_string(), "to" => to).increment(1);
        if up {
            tracing::info!(pool, backend = %backend.name, addr = %backend.addr, source = source.label(), "backend is up");
        } else {
            tracing::warn!(pool, backend = %backend.name, addr = %backend.addr, source = source.label(), "backend is down");
        }
    }
    changed
}

/// Sets the `weir_backend_up` gauge to the backend's current state.
pub fn publish(pool: &str, backend: &Backend, up: bool) {
    metrics::gauge!(names::BACKEND_UP, "pool" => pool.to_owned(), "backend" => backend.name.to_string())
        .set(if up { 1.0 } else { 0.0 });
}
