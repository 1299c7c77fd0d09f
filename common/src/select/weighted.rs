//! Smooth weighted round robin (nginx's algorithm), precomputed.
//!
//! nginx keeps a mutable `current_weight` per backend and takes a lock per
//! pick. The sequence it produces is periodic with period `Σ weights`, so we
//! compute one period at build time (weights divided by their gcd, each at
//! most 256) and pick with one atomic increment. Unready backends are
//! skipped by walking on in the sequence.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidates, ready, walk_ready};
use crate::backend::{Backend, BackendSet};

/// One period of nginx's smooth weighted round robin.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    sequence: Vec<u32>,
    next: AtomicUsize,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl WeightedRoundRobin {
    /// Precomputes the sequence for `set`.
    pub fn new(set: &BackendSet) -> Self {
        let backends = set.backends();
        let divisor = backends
            .iter()
            .fold(0, |g, b| gcd(g, b.weight.max(1)))
            .max(1);
        let weights: Vec<i64> = backends
            .iter()
            .map(|b| i64::from(b.weight.max(1) / divisor))
            .collect();
        let total: i64 = weights.iter().sum();
        let mut current = vec![0i64; weights.len()];
        let mut sequence = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = 0;
            for (i, w) in weights.iter().enumerate() {
                current[i] += w;
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            sequence.push(best as u32);
        }
        Self {
            sequence,
            next: AtomicUsize::new(0),
        }
    }

    pub(crate) fn candidates(&self, backends: &[Backend], max: usize) -> Candidates {
        let mut out = Candidates::default();
        let len = self.sequence.len();
        if len == 0 {
            return out;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % len;
        // Walk the sequence for the preferred order; one period visits every backend.
        for step in 0..len {
            let i = self.sequence[(start + step) % len];
            if ready(backends, i as usize) && out.push(i, max) {
                return out;
            }
            if step >= 4 * max + backends.len() {
                break;
            }
        }
        walk_ready(backends, start % backends.len().max(1), &mut out, max);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::set;
    use super::*;

    #[test]
    fn sequence_is_smooth_like_nginx() {
        // nginx with weights 5,1,1 picks a a b a c a a.
        let s = WeightedRoundRobin::new(&set(3, &[5, 1, 1]));
        assert_eq!(s.sequence, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn weights_reduced_by_gcd() {
        let s = WeightedRoundRobin::new(&set(2, &[200, 100]));
        assert_eq!(s.sequence.len(), 3);
    }
}
