//! Ring hash (Karger et al.) with optional bounded loads (Mirrokni et al.,
//! HAProxy's `hash-balance-factor`).
//!
//! Each backend places `weight × replicas` points on a 64-bit ring, hashed
//! from its name, so the ring depends only on the configured pool. A lookup
//! takes the first point at or after the key and walks clockwise. With a
//! balance factor `c`, a backend already carrying more than
//! `ceil(c × (total + 1) / ready)` in-flight units is passed over while a
//! lighter one exists, which caps the hottest backend near `c ×` the average.

use super::{Candidates, ready};
use crate::backend::{Backend, BackendSet};
use crate::hash::{hash_bytes, mix64};

/// A built hash ring.
#[derive(Debug)]
pub struct RingHash {
    ring: Vec<(u64, u32)>,
    balance_factor: Option<f64>,
}

impl RingHash {
    /// Builds a ring of at least `min_size` points.
    pub fn new(set: &BackendSet, min_size: u32, balance_factor: Option<f64>) -> Self {
        let backends = set.backends();
        let total_weight: u64 = backends.iter().map(|b| u64::from(b.weight.max(1))).sum();
        let replicas = if total_weight == 0 {
            0
        } else {
            u64::from(min_size).div_ceil(total_weight).max(1)
        };
        let mut ring = Vec::with_capacity((total_weight * replicas) as usize);
        for (i, b) in backends.iter().enumerate() {
            let base = hash_bytes(b.name.as_bytes());
            for r in 0..u64::from(b.weight.max(1)) * replicas {
                ring.push((mix64(base ^ mix64(r + 1)), i as u32));
            }
        }
        ring.sort_unstable();
        Self {
            ring,
            balance_factor,
        }
    }

    /// Number of points on the ring.
    pub fn points(&self) -> usize {
        self.ring.len()
    }

    pub(crate) fn candidates(&self, backends: &[Backend], key: u64, max: usize) -> Candidates {
        let mut out = Candidates::default();
        let n = self.ring.len();
        if n == 0 {
            return out;
        }
        let start = self.ring.partition_point(|&(h, _)| h < key) % n;
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
            let i = self.ring[(start + step) % n].1;
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
        super::walk_ready(backends, self.ring[start].1 as usize, &mut out, max);
        out
    }
}
