//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted.
//!
//! Each backend has a permutation of the table's slots given by an offset and
//! a skip derived from its *name* with two fixed seeds, so the table depends
//! only on the configured pool, never on process or order of start: two weir
//! instances with the same config build the same table. Backends take turns
//! claiming their next free preferred slot; a backend of weight `w` takes `w`
//! turns per round, so its share of the table follows its weight. Turns go in
//! the order of the names, not of the configuration, so listing the same
//! backends in another order builds the same table.
//!
//! A lookup reads `table[key % M]`. When that backend is not ready we walk on
//! through the following slots: keys whose backend is ready never move.

use super::{Candidates, ready};
use crate::backend::{Backend, BackendSet};
use crate::hash::hash_bytes_seeded;

const OFFSET_SEED: u64 = 0x6d61_676c_6576_0001;
const SKIP_SEED: u64 = 0x6d61_676c_6576_0002;

/// A built Maglev lookup table.
#[derive(Debug)]
pub struct Maglev {
    table: Vec<u32>,
}

impl Maglev {
    /// Builds the table of `table_size` slots (a prime; validated by config).
    pub fn new(set: &BackendSet, table_size: u32) -> Self {
        let m = table_size.max(1) as usize;
        let backends = set.backends();
        if backends.is_empty() {
            return Self { table: Vec::new() };
        }
        let mut next: Vec<u64> = vec![0; backends.len()];
        let perms: Vec<(u64, u64)> = backends
            .iter()
            .map(|b| {
                let offset = hash_bytes_seeded(b.name.as_bytes(), OFFSET_SEED) % m as u64;
                let skip = if m > 1 {
                    hash_bytes_seeded(b.name.as_bytes(), SKIP_SEED) % (m as u64 - 1) + 1
                } else {
                    1
                };
                (offset, skip)
            })
            .collect();
        let mut turns: Vec<usize> = (0..backends.len()).collect();
        turns.sort_by(|&a, &b| backends[a].name.cmp(&backends[b].name).then(a.cmp(&b)));
        const EMPTY: u32 = u32::MAX;
        let mut table = vec![EMPTY; m];
        let mut filled = 0;
        'fill: loop {
            for &i in &turns {
                for _ in 0..backends[i].weight.max(1) {
                    let (offset, skip) = perms[i];
                    let mut slot = ((offset + next[i] * skip) % m as u64) as usize;
                    while table[slot] != EMPTY {
                        next[i] += 1;
                        slot = ((offset + next[i] * skip) % m as u64) as usize;
                    }
                    table[slot] = i as u32;
                    next[i] += 1;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
        Self { table }
    }

    /// The table, slot → backend index (tests and diagnostics).
    pub fn table(&self) -> &[u32] {
        &self.table
    }

    pub(crate) fn candidates(&self, backends: &[Backend], key: u64, max: usize) -> Candidates {
        let mut out = Candidates::default();
        let m = self.table.len();
        if m == 0 {
            return out;
        }
        let start = (key % m as u64) as usize;
        // Walk on through the table. It is bounded: past a few slots per
        // backend we have seen every backend with overwhelming likelihood,
        // and finish the list with a deterministic scan instead of walking
        // all M slots when fewer than `max` backends are ready.
        let limit = m.min(16 * backends.len() + 64);
        for step in 0..limit {
            let i = self.table[(start + step) % m];
            if ready(backends, i as usize) && out.push(i, max) {
                return out;
            }
        }
        let from = self.table[start] as usize;
        super::walk_ready(backends, from, &mut out, max);
        out
    }
}

/// True when `n` is prime (config validation of the table size).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while u64::from(d) * u64::from(d) <= u64::from(n) {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::test_support::set;
    use super::*;

    #[test]
    fn table_is_full_and_weighted() {
        let s = set(3, &[1, 2, 1]);
        let maglev = Maglev::new(&s, 65_537);
        let mut counts = [0usize; 3];
        for &i in maglev.table() {
            counts[i as usize] += 1;
        }
        assert_eq!(counts.iter().sum::<usize>(), 65_537);
        let ratio = counts[1] as f64 / counts[0] as f64;
        assert!((1.95..2.05).contains(&ratio), "{counts:?}");
    }

    #[test]
    fn table_does_not_depend_on_config_order() {
        let names = ["db3:5432", "db1:5432", "db2:5432", "db0:5432", "db4:5432"];
        let build = |order: &[usize]| {
            let backends = order
                .iter()
                .map(|&i| {
                    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 5432));
                    Backend::healthy(names[i], addr, 1 + i as u32 % 2)
                })
                .collect();
            let maglev = Maglev::new(&BackendSet::new(backends), 65_537);
            let table: Vec<&str> = maglev
                .table()
                .iter()
                .map(|&slot| names[order[slot as usize]])
                .collect();
            table
        };
        assert!(build(&[0, 1, 2, 3, 4]) == build(&[4, 2, 0, 3, 1]));
    }

    #[test]
    fn primes() {
        assert!(is_prime(65_537));
        assert!(is_prime(251));
        assert!(!is_prime(65_536));
        assert!(!is_prime(1));
    }
}
