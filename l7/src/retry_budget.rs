//! The retry budget: retries stay within 20% of requests, so they cannot
//! multiply an outage.
//!
//! A token bucket (the scheme of Finagle's and gRPC's retry budgets): every
//! request deposits 0.2 of a token, every retry spends one, and the bucket
//! holds at most [`CAPACITY`] tokens. A long healthy period therefore buys
//! at most `CAPACITY` retries in a burst, not 20% of every request ever
//! served; after that, retries run at 20% of the current request rate.
//! Lock-free: one atomic of milli-tokens.

use std::sync::atomic::{AtomicU64, Ordering};

/// Most tokens the bucket holds (and starts with): the burst of retries a
/// quiet listener may spend at once.
pub const CAPACITY: u64 = 10;

/// Milli-tokens a request deposits: 20% of a retry.
const DEPOSIT: u64 = 200;
const RETRY: u64 = 1000;

/// A listener's retry budget.
#[derive(Debug)]
pub struct RetryBudget {
    milli_tokens: AtomicU64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryBudget {
    /// A full budget.
    pub fn new() -> Self {
        Self {
            milli_tokens: AtomicU64::new(CAPACITY * RETRY),
        }
    }

    /// One request arrived.
    pub fn deposit(&self) {
        // Skip the write when full: the common case under steady traffic.
        if self.milli_tokens.load(Ordering::Relaxed) >= CAPACITY * RETRY {
            return;
        }
        let _ = self
            .milli_tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some((t + DEPOSIT).min(CAPACITY * RETRY))
            });
    }

    /// Takes a token for one retry; false when the budget is spent.
    pub fn withdraw(&self) -> bool {
        self.milli_tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                t.checked_sub(RETRY)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_budget_allows_a_burst_of_capacity_retries() {
        let b = RetryBudget::new();
        for _ in 0..CAPACITY {
            assert!(b.withdraw());
        }
        assert!(!b.withdraw());
    }

    #[test]
    fn a_long_healthy_period_does_not_bank_more_than_capacity() {
        let b = RetryBudget::new();
        for _ in 0..1_000_000 {
            b.deposit();
        }
        let spent = (0..1000).take_while(|_| b.withdraw()).count();
        assert_eq!(spent as u64, CAPACITY);
    }

    #[test]
    fn after_the_burst_retries_run_at_a_fifth_of_requests() {
        let b = RetryBudget::new();
        while b.withdraw() {}
        let mut retries = 0;
        for _ in 0..1000 {
            b.deposit();
            if b.withdraw() {
                retries += 1;
            }
        }
        assert_eq!(retries, 200);
    }
}
