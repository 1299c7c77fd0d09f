//! Power of two random choices on in-flight load per weight.
//!
//! As nginx's `random two least_conn`: draw two *distinct* ready backends,
//! each with probability proportional to its weight, and prefer the one with
//! fewer in-flight units per weight. Both halves matter. Drawn uniformly, a
//! backend can win no more often than it is drawn (about 2/N), so a heavy
//! backend was starved of its share (weights 10,1,1,1,1 gave it a third of
//! the load instead of 10/14). Drawn with replacement, the same backend came
//! up twice and won unopposed (N = 2 with weights 1,10: a quarter of the
//! picks went to the light one regardless of load).

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

use super::{Candidates, lighter, ready, walk_ready};
use crate::backend::{Backend, BackendSet};
use crate::hash::mix64;

/// Draws per choice before giving up on finding a ready backend by chance
/// (most of the pool is down); the rest of the list is then filled by a walk.
const DRAWS: usize = 8;

thread_local! {
    // Randomness here only spreads load; it is not a placement key, so a
    // per-thread random seed is right (unlike hash keys, which are fixed).
    static RNG: Cell<u64> = Cell::new(RandomState::new().hash_one(0u8) | 1);
}

fn next_random() -> u64 {
    RNG.with(|state| {
        let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(next);
        mix64(next)
    })
}

/// Picks two random ready backends (weighted) and prefers the less loaded.
#[derive(Debug)]
pub struct TwoChoices {
    /// Running sums of the weights: backend `i` owns the draws in
    /// `ends[i - 1]..ends[i]`.
    ends: Vec<u64>,
}

impl TwoChoices {
    /// Precomputes the weight ranges of `set`.
    pub fn new(set: &BackendSet) -> Self {
        let ends = set
            .backends()
            .iter()
            .scan(0u64, |sum, b| {
                *sum += u64::from(b.weight.max(1));
                Some(*sum)
            })
            .collect();
        Self { ends }
    }

    /// A backend drawn by weight, never `except` (whose range is cut out).
    fn draw(&self, except: Option<usize>) -> usize {
        let total = self.ends.last().copied().unwrap_or(0);
        let (cut_start, cut_len) = match except {
            Some(i) => {
                let start = if i == 0 { 0 } else { self.ends[i - 1] };
                (start, self.ends[i] - start)
            }
            None => (0, 0),
        };
        let span = total - cut_len;
        if span == 0 {
            return except.unwrap_or(0);
        }
        let mut x = next_random() % span;
        if x >= cut_start {
            x += cut_len;
        }
        self.ends.partition_point(|&end| end <= x)
    }

    /// A ready backend drawn by weight, other than `except`, if one turns up.
    fn draw_ready(&self, backends: &[Backend], except: Option<usize>) -> Option<usize> {
        (0..DRAWS)
            .map(|_| self.draw(except))
            .find(|&i| Some(i) != except && ready(backends, i))
    }

    pub(crate) fn candidates(&self, backends: &[Backend], max: usize) -> Candidates {
        let mut out = Candidates::default();
        let n = backends.len();
        if n == 0 || self.ends.len() != n {
            return out;
        }
        let Some(a) = self.draw_ready(backends, None) else {
            walk_ready(backends, self.draw(None), &mut out, max);
            return out;
        };
        match self.draw_ready(backends, Some(a)) {
            Some(b) => {
                let (first, second) = if lighter(&backends[b], &backends[a]).is_lt() {
                    (b, a)
                } else {
                    (a, b)
                };
                out.push(first as u32, max);
                out.push(second as u32, max);
            }
            None => {
                out.push(a as u32, max);
            }
        }
        walk_ready(backends, a, &mut out, max);
        out
    }
}
