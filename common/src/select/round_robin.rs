//! Round robin: each ready backend in turn, weights ignored.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidates, walk_ready};
use crate::backend::Backend;

/// Plain round robin over the snapshot's order.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// A rotation starting at the first backend.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn candidates(&self, backends: &[Backend], max: usize) -> Candidates {
        let mut out = Candidates::default();
        if backends.is_empty() {
            return out;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % backends.len();
        walk_ready(backends, start, &mut out, max);
        out
    }
}
