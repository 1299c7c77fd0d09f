//! Power of two random choices on in-flight load per weight.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

use super::{Candidates, lighter, ready, walk_ready};
use crate::backend::Backend;
use crate::hash::mix64;

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

/// Picks two random ready backends and prefers the less loaded.
#[derive(Debug, Default)]
pub struct TwoChoices;

impl TwoChoices {
    /// The selector (stateless).
    pub fn new() -> Self {
        Self
    }

    pub(crate) fn candidates(&self, backends: &[Backend], max: usize) -> Candidates {
        let mut out = Candidates::default();
        let n = backends.len();
        if n == 0 {
            return out;
        }
        let r = next_random();
        let a = (r % n as u64) as usize;
        let b = ((r >> 32) % n as u64) as usize;
        let (a_ok, b_ok) = (ready(backends, a), ready(backends, b));
        match (a_ok, b_ok) {
            (true, true) if a != b => {
                let (first, second) = if lighter(&backends[b], &backends[a]).is_lt() {
                    (b, a)
                } else {
                    (a, b)
                };
                out.push(first as u32, max);
                out.push(second as u32, max);
            }
            (true, _) => {
                out.push(a as u32, max);
            }
            (false, true) => {
                out.push(b as u32, max);
            }
            (false, false) => {}
        }
        walk_ready(backends, a, &mut out, max);
        out
    }
}
