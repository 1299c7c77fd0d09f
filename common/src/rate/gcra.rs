//! GCRA, the generic cell rate algorithm: token-bucket semantics with one
//! timestamp per key (the *theoretical arrival time*, TAT).
//!
//! Sans-io: every call takes `now` (nanoseconds on any monotonic clock the
//! caller chooses), so tests drive time by hand. A key that has been idle
//! sees its TAT in the past; such a key holds no state worth keeping (a
//! fresh key behaves identically), which is what makes eviction safe.

use std::time::Duration;

/// A rate with a burst: `count` requests per `period`, at most `burst` at
/// once from an idle key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Emission interval: the period divided by the count (nanoseconds, ≥ 1).
    interval: u64,
    /// Tolerance: `burst × interval` (nanoseconds).
    tolerance: u64,
    /// The configured count per period (for headers).
    count: u64,
    /// The configured period (for headers).
    period: Duration,
    /// The configured burst.
    burst: u64,
}

impl Rate {
    /// `count` per `period`, `burst` at once (both at least 1; 0 is taken as 1).
    pub fn new(count: u64, period: Duration, burst: u64) -> Self {
        let count = count.max(1);
        let burst = burst.max(1);
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        let interval = (period_ns / count).max(1);
        Self {
            interval,
            tolerance: interval.saturating_mul(burst),
            count,
            period,
            burst,
        }
    }

    /// The emission interval (time for one request to be replenished).
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// Requests per period.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Requests allowed at once from an idle key.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Tolerance (burst × interval), nanoseconds.
    pub fn tolerance_nanos(&self) -> u64 {
        self.tolerance
    }

    /// Interval, nanoseconds.
    pub fn interval_nanos(&self) -> u64 {
        self.interval
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The request may pass.
    pub allowed: bool,
    /// Requests that could pass right now after this one.
    pub remaining: u64,
    /// When refused: how long until one request would pass. Zero when allowed.
    pub retry_after: Duration,
    /// How long until the key is back to a full burst.
    pub reset: Duration,
}

/// One GCRA step for a key whose stored TAT is `tat` (`None`: unknown or
/// idle). Returns the decision and the TAT to store when allowed (`None`
/// when refused: nothing changes).
pub fn check(rate: &Rate, tat: Option<u64>, now: u64) -> (Decision, Option<u64>) {
    let tat = tat.map_or(now, |t| t.max(now));
    let new_tat = tat.saturating_add(rate.interval);
    let allow_at = new_tat.saturating_sub(rate.tolerance);
    if now < allow_at {
        let decision = Decision {
            allowed: false,
            remaining: 0,
            retry_after: Duration::from_nanos(allow_at - now),
            reset: Duration::from_nanos(tat - now),
        };
        return (decision, None);
    }
    let headroom = now.saturating_add(rate.tolerance).saturating_sub(new_tat);
    let decision = Decision {
        allowed: true,
        remaining: (headroom / rate.interval).min(rate.burst - 1),
        retry_after: Duration::ZERO,
        reset: Duration::from_nanos(new_tat - now),
    };
    (decision, Some(new_tat))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Runs `n` checks at `now` against one stored TAT; counts the allowed.
    fn burst_at(rate: &Rate, tat: &mut Option<u64>, now: u64, n: usize) -> usize {
        let mut allowed = 0;
        for _ in 0..n {
            let (d, new) = check(rate, *tat, now);
            if d.allowed {
                allowed += 1;
                *tat = new;
            }
        }
        allowed
    }

    #[test]
    fn burst_then_steady_rate() {
        // 10/s, burst 5: five at once, then one every 100 ms.
        let rate = Rate::new(10, Duration::from_secs(1), 5);
        let mut tat = None;
        assert_eq!(burst_at(&rate, &mut tat, 0, 100), 5);
        // Nothing more until one interval has passed.
        assert_eq!(burst_at(&rate, &mut tat, 99 * MS, 10), 0);
        assert_eq!(burst_at(&rate, &mut tat, 100 * MS, 10), 1);
        // Over the next second, exactly ten more.
        let mut total = 0;
        for step in 1..=100 {
            total += burst_at(&rate, &mut tat, 100 * MS + step * 10 * MS, 10);
        }
        assert_eq!(total, 10);
    }

    #[test]
    fn remaining_counts_down_and_retry_after_is_exact() {
        let rate = Rate::new(2, Duration::from_secs(1), 3);
        let mut tat = None;
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (d, new) = check(&rate, tat, 0);
            assert!(d.allowed);
            seen.push(d.remaining);
            tat = new;
        }
        assert_eq!(seen, [2, 1, 0]);
        let (d, new) = check(&rate, tat, 0);
        assert!(!d.allowed);
        assert!(new.is_none());
        assert_eq!(d.retry_after, Duration::from_millis(500));
        assert_eq!(d.reset, Duration::from_millis(1500));
        // Refused just before Retry-After, allowed at it.
        assert!(!check(&rate, tat, 499 * MS).0.allowed);
        let (d, _) = check(&rate, tat, 500 * MS);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn idle_key_refills_to_the_full_burst_only() {
        let rate = Rate::new(100, Duration::from_secs(60), 10);
        let mut tat = None;
        assert_eq!(burst_at(&rate, &mut tat, 0, 50), 10);
        // An hour later: a full burst again, no more.
        assert_eq!(burst_at(&rate, &mut tat, 3_600_000 * MS, 50), 10);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let r = Rate::new(0, Duration::ZERO, 0);
        assert_eq!(r.interval_nanos(), 1);
        let _ = check(&r, Some(u64::MAX), 0);
        let _ = check(&r, Some(0), u64::MAX);
        let huge = Rate::new(1, Duration::from_secs(u64::MAX), u64::MAX);
        let _ = check(&huge, None, u64::MAX);
    }
}
