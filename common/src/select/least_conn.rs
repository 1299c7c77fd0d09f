//! Weighted least connections: fewest in-flight units per weight; ties rotate.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidates, lighter, ready};
use crate::backend::Backend;

/// Least connections with a rotating tie-break so equal backends share.
#[derive(Debug, Default)]
pub struct LeastConnections {
    next: AtomicUsize,
}

impl LeastConnections {
    /// A selector whose tie-break starts at the first backend.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn candidates(&self, backends: &[Backend], max: usize) -> Candidates {
        let mut out = Candidates::default();
        let n = backends.len();
        if n == 0 {
            return out;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        // Repeated selection: max is at most 8, so k passes over n are cheap
        // and avoid sorting (and allocating) on the data path.
        while out.len() < max {
            let mut best: Option<usize> = None;
            for step in 0..n {
                let i = (start + step) % n;
                if !ready(backends, i) || out.contains(i as u32) {
                    continue;
                }
                best = match best {
                    Some(b) if lighter(&backends[i], &backends[b]).is_ge() => Some(b),
                    _ => Some(i),
                };
            }
            match best {
                Some(i) => {
                    out.push(i as u32, max);
                }
                None => break,
            }
        }
        out
    }
}
