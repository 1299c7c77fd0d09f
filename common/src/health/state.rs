//! The pure rise/fall state machine behind every health decision.
//!
//! A backend goes down after `fall` consecutive failures and comes back up
//! after `rise` consecutive successes, like HAProxy's `rise`/`fall`. Probes
//! (active) and real traffic (passive) feed the same machine. No I/O, no
//! clock: it only counts, so it is exhaustively testable.

/// Rise/fall counters and the current verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    rise: u32,
    fall: u32,
    up: bool,
    /// Consecutive observations against the current verdict.
    streak: u32,
}

impl HealthState {
    /// A machine with the given thresholds (each at least 1) and starting verdict.
    pub fn new(rise: u32, fall: u32, up: bool) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            up,
            streak: 0,
        }
    }

    /// The current verdict.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// True while observations against the verdict are being counted.
    pub fn in_streak(&self) -> bool {
        self.streak > 0
    }

    /// Feeds one observation; returns `Some(new_verdict)` when it flips.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok == self.up {
            // Agrees with the verdict: any streak against it is broken.
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let threshold = if self.up { self.fall } else { self.rise };
        if self.streak >= threshold {
            self.up = ok;
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }

    /// Sets the verdict outright and clears the streak.
    pub fn force(&mut self, up: bool) {
        self.up = up;
        self.streak = 0;
    }

    /// Asserts the machine's invariants (debug builds and tests).
    pub fn check_invariants(&self) {
        let threshold = if self.up { self.fall } else { self.rise };
        debug_assert!(
            self.streak < threshold,
            "streak {} reached {threshold}",
            self.streak
        );
        debug_assert!(self.rise >= 1 && self.fall >= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_after_fall_consecutive_failures() {
        let mut h = HealthState::new(2, 3, true);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(true), None, "a success breaks the streak");
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), Some(false));
        assert!(!h.is_up());
    }

    #[test]
    fn rises_after_rise_consecutive_successes() {
        let mut h = HealthState::new(2, 3, false);
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), Some(true));
        assert!(h.is_up());
    }

    /// Seeded simulation: random observations never break the invariants and
    /// the verdict only flips after exactly `threshold` agreeing observations.
    #[test]
    fn simulation_holds_invariants() {
        for seed in 0..200u64 {
            let mut rng = seed.wrapping_add(1);
            let rise = (seed % 4 + 1) as u32;
            let fall = (seed / 4 % 4 + 1) as u32;
            let mut h = HealthState::new(rise, fall, seed % 2 == 0);
            let mut run = 0u32;
            let mut last: Option<bool> = None;
            for _ in 0..1000 {
                rng = crate::hash::mix64(rng);
                let ok = rng % 3 != 0;
                run = if last == Some(ok) { run + 1 } else { 1 };
                last = Some(ok);
                let before = h.is_up();
                let flipped = h.observe(ok);
                h.check_invariants();
                if let Some(now) = flipped {
                    assert_ne!(before, now, "seed {seed}");
                    let need = if now { rise } else { fall };
                    assert!(run >= need, "seed {seed}: flipped after {run} < {need}");
                }
            }
        }
    }
}
