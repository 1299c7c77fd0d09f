//! Backends and the immutable snapshot of a pool's backends.
//!
//! A [`BackendSet`] never changes once built; a membership change builds a new
//! one (and a new selector) and publishes it with `ArcSwap`. What does change
//! at run time — in-flight count, health, drain — lives in each backend's
//! shared [`BackendState`] of atomics, so the data path never takes a lock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::health::HealthState;

/// Run-time state of one backend, shared by every snapshot that contains it.
#[derive(Debug)]
pub struct BackendState {
    in_flight: AtomicU32,
    healthy: AtomicBool,
    draining: AtomicBool,
    /// Ejected by outlier detection for a while (L7 passive checks).
    ejected: AtomicBool,
    /// The rise/fall machine fed by probes and by real traffic. Locked only
    /// when a probe or a connection attempt reports something that may
    /// change it, never to pick.
    health: Mutex<HealthState>,
    /// `health` has a streak of observations against its verdict (kept in
    /// step under its lock): a success while up without one changes nothing.
    streak: AtomicBool,
}

impl BackendState {
    /// A backend starting in `health`'s state.
    pub fn new(health: HealthState) -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            healthy: AtomicBool::new(health.is_up()),
            draining: AtomicBool::new(false),
            ejected: AtomicBool::new(false),
            streak: AtomicBool::new(health.in_streak()),
            health: Mutex::new(health),
        }
    }

    /// Connections (L4) or requests (L7) now in flight to this backend.
    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// True when health checks (or passive observation) consider it up.
    #[inline]
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// True when an operator is draining it: no new traffic.
    #[inline]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Stops (or resumes) sending new traffic to the backend.
    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    /// True while outlier detection has ejected it.
    #[inline]
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// Ejects it from (or returns it to) selection.
    pub fn set_ejected(&self, ejected: bool) {
        self.ejected.store(ejected, Ordering::Relaxed);
    }

    /// May receive new traffic.
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.is_healthy() && !self.is_draining() && !self.is_ejected()
    }

    /// Feeds one observation (a probe result, or a real connection's outcome)
    /// to the rise/fall machine. Returns the new state when it changed.
    ///
    /// The common case — a success while up, with no failure streak to
    /// break — changes nothing and is answered without the lock, which
    /// every worker thread would otherwise take for every connection or
    /// request. (A failure racing it may be ordered after it either way.)
    pub fn observe(&self, ok: bool) -> Option<bool> {
        if ok && self.is_healthy() && !self.streak.load(Ordering::Relaxed) {
            return None;
        }
        let mut health = match self.health.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let changed = health.observe(ok);
        self.streak.store(health.in_streak(), Ordering::Relaxed);
        if changed.is_some() {
            self.healthy.store(health.is_up(), Ordering::Relaxed);
        }
        changed
    }

    /// Forces the state (used to revive a passively-failed backend that has no
    /// active checks once its cooldown has passed).
    pub fn force(&self, up: bool) {
        let mut health = match self.health.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        health.force(up);
        self.streak.store(false, Ordering::Relaxed);
        self.healthy.store(up, Ordering::Relaxed);
    }

    /// Counts one more in-flight unit until the guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// Decrements the backend's in-flight count on drop.
#[derive(Debug)]
pub struct InFlight(Arc<BackendState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One backend of a pool.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Stable identity: the address as the operator wrote it (`db1:5432`).
    /// Hashing placement uses it, so it survives DNS changes and reorderings.
    pub name: Arc<str>,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Relative share of traffic, 1..=256.
    pub weight: u32,
    /// Shared run-time state.
    pub state: Arc<BackendState>,
}

impl Backend {
    /// A backend that starts in `health`'s state.
    pub fn new(
        name: impl Into<Arc<str>>,
        addr: SocketAddr,
        weight: u32,
        health: HealthState,
    ) -> Self {
        Self {
            name: name.into(),
            addr,
            weight,
            state: Arc::new(BackendState::new(health)),
        }
    }

    /// A healthy backend with no health checks (tests, benches, demo).
    pub fn healthy(name: impl Into<Arc<str>>, addr: SocketAddr, weight: u32) -> Self {
        Self::new(name, addr, weight, HealthState::new(1, 1, true))
    }
}

/// An immutable snapshot of a pool's backends.
#[derive(Debug, Default)]
pub struct BackendSet {
    backends: Vec<Backend>,
}

impl BackendSet {
    /// A snapshot of `backends`, in the order given.
    pub fn new(backends: Vec<Backend>) -> Self {
        Self { backends }
    }

    /// All backends, ready or not.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// True when there is no backend.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// The backend at `index`.
    pub fn get(&self, index: usize) -> Option<&Backend> {
        self.backends.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successes_skip_the_lock_only_when_they_change_nothing() {
        let b = BackendState::new(HealthState::new(2, 2, true));
        assert_eq!(b.observe(false), None);
        assert_eq!(b.observe(true), None, "breaks the failure streak");
        assert_eq!(b.observe(false), None, "so one failure does not fall");
        assert_eq!(b.observe(false), Some(false));
        assert!(!b.is_healthy());
        assert_eq!(b.observe(true), None);
        assert_eq!(b.observe(true), Some(true), "rise 2 while down");
        for _ in 0..10 {
            assert_eq!(b.observe(true), None);
        }
        assert_eq!(b.observe(false), None);
        assert_eq!(
            b.observe(false),
            Some(false),
            "the fast path kept no stale streak"
        );
        b.force(true);
        assert_eq!(b.observe(false), None, "force cleared the streak");
        assert_eq!(b.observe(false), Some(false));
    }
}
