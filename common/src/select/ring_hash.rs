//! Ring hash (Karger et al.) with optional bounded loads (Mirrokni et al.,
//! HAProxy's `hash-balance-factor`).
//!
//! Each backend places `weight × points_per_weight` points on a 64-bit ring,
//! hashed from its name and the point's number, so a backend's points depend
//! on nothing but its own name and weight (as in nginx's ketama `hash
//! consistent`). That is what makes the ring consistent: removing or adding a
//! backend moves only the keys of the points it takes away or brings, and a
//! key whose backend stays never moves. (Deriving the number of points from
//! the pool's total weight, Envoy-style, would give every surviving backend
//! new points on each membership change, which steal keys among survivors:
//! that moved up to 1.9/N of the keys when one of N backends was removed.)
//! A lookup takes the first point at or after the key and walks clockwise. With a
//! balance factor `c`, a backend already carrying more than
//! `ceil(c × (total + 1) / ready)` in-flight units is passed over while a
//! lighter one exists, which caps the hottest backend near `c ×` the average.

use super::{Candidates, ready};
use crate::backend::{Backend, BackendSet};
use crate::hash::{hash_bytes, mix64};

/// Most points one ring may hold (12 bytes each, so 12 MiB). Above it the
/// points per weight unit are scaled down to the largest power of two that
/// fits, and a membership change that crosses such a step moves more keys
/// than its own.
pub const MAX_RING_POINTS: u64 = 1 << 20;

/// A built hash ring.
#[derive(Debug)]
pub struct RingHash {
    /// The points' positions, sorted. Kept apart from their owners so the
    /// binary search of a lookup reads 8 bytes per probe, not 16.
    hashes: Vec<u64>,
    /// `owners[p]` is the backend index of the point at `hashes[p]`.
    owners: Vec<u32>,
    balance_factor: Option<f64>,
}

impl RingHash {
    /// Builds a ring with `points_per_weight` points per unit of weight
    /// (fewer if the ring would exceed [`MAX_RING_POINTS`]).
    pub fn new(set: &BackendSet, points_per_weight: u32, balance_factor: Option<f64>) -> Self {
        let backends = set.backends();
        let total_weight: u64 = backends.iter().map(|b| u64::from(b.weight.max(1))).sum();
        let mut replicas = u64::from(points_per_weight.max(1));
        if total_weight * replicas > MAX_RING_POINTS {
            // The largest power of two that fits, so the count changes in steps.
            let fit = (MAX_RING_POINTS / total_weight).max(1);
            replicas = 1 << fit.ilog2();
        }
        let mut ring = Vec::with_capacity((total_weight * replicas) as usize);
        for (i, b) in backends.iter().enumerate() {
            let base = hash_bytes(b.name.as_bytes());
            for r in 0..u64::from(b.weight.max(1)) * replicas {
                ring.push((mix64(base ^ mix64(r + 1)), i as u32));
            }
        }
        ring.sort_unstable();
        let (hashes, owners) = ring.into_iter().unzip();
        Self {
            hashes,
            owners,
            balance_factor,
        }
    }

    /// Number of points on the ring.
    pub fn points(&self) -> usize {
        self.hashes.len()
    }

    pub(crate) fn candidates(&self, backends: &[Backend], key: u64, max: usize) -> Candidates {
        let mut out = Candidates::default();
        let n = self.hashes.len();
        if n == 0 {
            return out;
        }
        let start = self.hashes.partition_point(|&h| h < key) % n;
        let capacity = self.balance_factor.and_then(|c| {
            let (total, ready_count) = backends
                .iter()
                .filter(|b| b.state.is_ready())
                .fold((0u64, 0u64), |(t, r), b| {
                    (t + u64::from(b.state.in_flight()), r + 1)
                });
            (ready_count > 0).then(|| ((c * (total + 1) as f64) / ready_count as f64).ceil() as u64)
        });
        let limit = n.min(16 * backends.len() + 64);
        let mut overloaded = Candidates::default();
        for step in 0..limit {
            let i = self.owners[(start + step) % n];
            if !ready(backends, i as usize) {
                continue;
            }
            let over = capacity
                .is_some_and(|cap| u64::from(backends[i as usize].state.in_flight()) >= cap);
            if over {
                overloaded.push(i, max);
            } else if out.push(i, max) {
                return out;
            }
        }
        for &i in overloaded.as_slice() {
            if out.push(i, max) {
                return out;
            }
        }
        super::walk_ready(backends, self.owners[start] as usize, &mut out, max);
        out
    }
}
