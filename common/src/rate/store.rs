//! A local, keyed GCRA store with bounded memory.
//!
//! Keys are 64-bit hashes (the caller hashes what identifies a client), kept
//! in a fixed number of shards, each a small `Mutex<HashMap<key, TAT>>`, so
//! concurrent requests rarely contend. Memory stays flat under a flood of
//! distinct keys: a shard that grows past its sweep mark first drops every
//! idle key (TAT in the past, which a fresh key reproduces exactly), and the
//! mark doubles from what survives (amortised O(1) per insert). At the hard
//! cap, a shard that is still full of active keys evicts arbitrary entries:
//! those clients get a fresh burst, the price of bounded memory.
//!
//! Sans-io: `now` is passed in (nanoseconds, any monotonic origin).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::gcra::{self, Decision, Rate};

const SHARDS: usize = 64;
/// A shard is never swept below this many keys (sweeping tiny maps is waste).
const MIN_SWEEP: usize = 256;

#[derive(Debug, Default)]
struct Shard {
    tats: HashMap<u64, u64>,
    /// Sweep idle keys when an insert would reach this length.
    sweep_at: usize,
}

/// Keyed GCRA state for one rate, at most `max_keys` keys.
#[derive(Debug)]
pub struct KeyedStore {
    rate: Rate,
    shards: Vec<Mutex<Shard>>,
    per_shard_cap: usize,
    keys: AtomicUsize,
}

impl KeyedStore {
    /// A store for `rate` tracking at most about `max_keys` keys.
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        let per_shard_cap = (max_keys / SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    tats: HashMap::new(),
                    sweep_at: MIN_SWEEP.min(per_shard_cap),
                })
            })
            .collect();
        Self {
            rate,
            shards,
            per_shard_cap,
            keys: AtomicUsize::new(0),
        }
    }

    /// The rate.
    pub fn rate(&self) -> &Rate {
        &self.rate
    }

    /// Keys tracked now (idle ones included until their shard is swept).
    pub fn len(&self) -> usize {
        self.keys.load(Ordering::Relaxed)
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys this store will hold.
    pub fn capacity(&self) -> usize {
        self.per_shard_cap * SHARDS
    }

    /// Checks one request for `key` at `now` and records it if allowed.
    pub fn check(&self, key: u64, now: u64) -> Decision {
        // The high bits pick the shard; the map hashes the key again itself.
        let index = (key >> 58) as usize % SHARDS;
        let Some(shard) = self.shards.get(index) else {
            return gcra::check(&self.rate, None, now).0;
        };
        // A poisoned lock only means another thread panicked mid-update of a
        // plain map of integers: the data is still usable.
        let mut shard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stored = shard.tats.get(&key).copied();
        let (decision, new_tat) = gcra::check(&self.rate, stored, now);
        let Some(new_tat) = new_tat else {
            return decision;
        };
        if let Some(slot) = shard.tats.get_mut(&key) {
            *slot = new_tat;
            return decision;
        }
        if shard.tats.len() + 1 >= shard.sweep_at {
            self.make_room(&mut shard, now);
        }
        shard.tats.insert(key, new_tat);
        self.keys.fetch_add(1, Ordering::Relaxed);
        decision
    }

    /// Drops idle keys; at the cap, drops arbitrary ones too.
    fn make_room(&self, shard: &mut Shard, now: u64) {
        let before = shard.tats.len();
        shard.tats.retain(|_, tat| *tat > now);
        if shard.tats.len() >= self.per_shard_cap {
            let excess = shard.tats.len() + 1 - self.per_shard_cap;
            let victims: Vec<u64> = shard.tats.keys().take(excess).copied().collect();
            for k in victims {
                shard.tats.remove(&k);
            }
        }
        let removed = before - shard.tats.len();
        self.keys.fetch_sub(removed, Ordering::Relaxed);
        shard.sweep_at = (shard.tats.len() * 2)
            .max(MIN_SWEEP)
            .min(self.per_shard_cap);
        if shard.tats.capacity() > shard.sweep_at * 4 {
            shard.tats.shrink_to(shard.sweep_at);
        }
    }

    /// Drops every idle key now (for a periodic sweep; not needed for the
    /// bound, which inserts keep on their own).
    pub fn sweep(&self, now: u64) {
        for shard in &self.shards {
            let mut shard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let before = shard.tats.len();
            shard.tats.retain(|_, tat| *tat > now);
            self.keys
                .fetch_sub(before - shard.tats.len(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: u64 = 1_000_000;

    #[test]
    fn keys_are_independent() {
        let store = KeyedStore::new(Rate::new(1, Duration::from_secs(1), 2), 1000);
        assert!(store.check(1, 0).allowed);
        assert!(store.check(1, 0).allowed);
        assert!(!store.check(1, 0).allowed);
        assert!(store.check(2, 0).allowed);
        assert_eq!(store.len(), 2);
    }

    /// 200k distinct clients, each sending one request, 1 ms apart per
    /// thousand: keys idle after 100 ms, so tracked keys stay near the
    /// number active in any 100 ms window (100k/s × 0.1 s = 10k), far below
    /// 200k, and the map's capacity with them.
    #[test]
    fn a_flood_of_distinct_keys_keeps_memory_flat() {
        let store = KeyedStore::new(Rate::new(10, Duration::from_secs(1), 1), 1_000_000);
        let mut peak = 0;
        for i in 0..200_000u64 {
            let now = (i / 1000) * MS * 10;
            let key = crate::hash::mix64(i);
            assert!(store.check(key, now).allowed);
            peak = peak.max(store.len());
        }
        // Active window: 100 ms = 10 steps of 1000 keys; sweeps are lazy
        // (a shard doubles before sweeping), so allow a factor of 4 and the
        // per-shard floor.
        let bound = 4 * 10_000 + SHARDS * MIN_SWEEP;
        assert!(peak <= bound, "peak {peak} keys > bound {bound}");
        let capacity: usize = store
            .shards
            .iter()
            .map(|s| s.lock().unwrap().tats.capacity())
            .sum();
        assert!(capacity <= 2 * bound, "map capacity {capacity}");
    }

    /// All keys active (no time passes): the hard cap holds.
    #[test]
    fn the_hard_cap_holds_when_every_key_is_active() {
        let store = KeyedStore::new(Rate::new(1, Duration::from_secs(3600), 1), 10_000);
        for i in 0..200_000u64 {
            store.check(crate::hash::mix64(i), 0);
        }
        assert!(store.len() <= store.capacity(), "{}", store.len());
        let real: usize = store
            .shards
            .iter()
            .map(|s| s.lock().unwrap().tats.len())
            .sum();
        assert_eq!(real, store.len());
    }

    #[test]
    fn sweep_drops_idle_keys() {
        let store = KeyedStore::new(Rate::new(10, Duration::from_secs(1), 1), 1_000_000);
        for k in 0..100 {
            store.check(crate::hash::mix64(k), 0);
        }
        store.sweep(50 * MS);
        assert_eq!(store.len(), 100);
        store.sweep(100 * MS);
        assert_eq!(store.len(), 0);
    }
}
