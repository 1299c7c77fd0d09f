//! Backend selection: one enum of algorithms shared by L4 and L7.
//!
//! A [`Selector`] is built from an immutable [`BackendSet`] off the hot path
//! (a Maglev table or a hash ring is built once per membership change) and
//! queried per connection or request with a hash key. It answers with a
//! bounded list of *distinct*, *ready* backends in preference order, so the
//! caller can fail over without asking again. Backends that are unhealthy or
//! draining are skipped by walking on — never by rebuilding — so keys that
//! live on healthy backends do not move when another backend fails.
//!
//! Everything here is pure: no I/O, no tokio, no locks.

mod least_conn;
mod maglev;
mod ring_hash;
mod round_robin;
mod two_choices;
mod weighted;

#[cfg(test)]
mod props;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::backend::{Backend, BackendSet};
use crate::hash;

pub use least_conn::LeastConnections;
pub use maglev::{Maglev, is_prime};
pub use ring_hash::{MAX_RING_POINTS, RingHash};
pub use round_robin::RoundRobin;
pub use two_choices::TwoChoices;
pub use weighted::WeightedRoundRobin;

/// The most candidates one query can return.
pub const MAX_CANDIDATES: usize = 8;

/// Default Maglev lookup table size (a prime, as Maglev requires).
pub const DEFAULT_MAGLEV_TABLE_SIZE: u32 = 65_537;

/// Default number of points a hash ring gives each unit of a backend's weight.
/// More points spread keys closer to the weights: at 1024 a backend's share
/// of the keys strays from its weight share by about 1/√(1024 × weight)
/// (3 % for weight 1). Each point costs 12 bytes; lookup is a binary search.
pub const DEFAULT_RING_POINTS_PER_WEIGHT: u32 = 1024;

/// A load-balancing algorithm, as named in the configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Algorithm {
    /// Each ready backend in turn, weights ignored.
    RoundRobin,
    /// Smooth weighted round robin (nginx's): weights honoured, picks interleaved.
    WeightedRoundRobin,
    /// The ready backend with the fewest in-flight units per weight; ties rotate.
    LeastConnections,
    /// Two random ready backends, the less loaded (per weight) wins.
    RandomTwoChoices,
    /// Maglev consistent hashing with a prime lookup table.
    Maglev {
        /// Lookup table size; a prime.
        table_size: u32,
    },
    /// Consistent hashing on a ring, optionally with bounded loads.
    RingHash {
        /// When set, no backend takes more than `factor × average` in-flight load.
        balance_factor: Option<f64>,
    },
}

impl Algorithm {
    /// The configuration name of the algorithm.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::WeightedRoundRobin => "weighted_round_robin",
            Self::LeastConnections => "least_connections",
            Self::RandomTwoChoices => "random_two_choices",
            Self::Maglev { .. } => "maglev",
            Self::RingHash { .. } => "ring_hash",
        }
    }

    /// All configuration names, for error messages.
    pub const NAMES: &'static [&'static str] = &[
        "round_robin",
        "weighted_round_robin",
        "least_connections",
        "random_two_choices",
        "maglev",
        "ring_hash",
    ];

    /// True when the algorithm places by hash key (the key then matters).
    pub fn uses_key(&self) -> bool {
        matches!(self, Self::Maglev { .. } | Self::RingHash { .. })
    }
}

/// What a connection's selection key is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashKey {
    /// The client's IP address: one client sticks to one backend.
    #[default]
    ClientIp,
    /// The client's IP address and port: each connection hashed on its own.
    ClientIpPort,
}

impl HashKey {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientIp => "client_ip",
            Self::ClientIpPort => "client_ip_port",
        }
    }

    /// All configuration names, for error messages.
    pub const NAMES: &'static [&'static str] = &["client_ip", "client_ip_port"];

    /// The key of a client address.
    #[inline]
    pub fn key(self, client: SocketAddr) -> u64 {
        match self {
            Self::ClientIp => hash::hash_ip(client.ip()),
            Self::ClientIpPort => hash::hash_ip_port(client),
        }
    }
}

/// Distinct backend indices in preference order; at most [`MAX_CANDIDATES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Candidates {
    len: u8,
    items: [u32; MAX_CANDIDATES],
}

impl Candidates {
    /// The indices, best first.
    pub fn as_slice(&self) -> &[u32] {
        &self.items[..usize::from(self.len)]
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when no backend is ready.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The preferred candidate.
    pub fn first(&self) -> Option<u32> {
        self.as_slice().first().copied()
    }

    pub(crate) fn contains(&self, index: u32) -> bool {
        self.as_slice().contains(&index)
    }

    /// Appends `index` unless present or full; returns true when now full.
    pub(crate) fn push(&mut self, index: u32, max: usize) -> bool {
        let max = max.min(MAX_CANDIDATES);
        if usize::from(self.len) < max && !self.contains(index) {
            self.items[usize::from(self.len)] = index;
            self.len += 1;
        }
        usize::from(self.len) >= max
    }
}

/// A built selector over one snapshot of a pool.
#[derive(Debug)]
pub struct Selector {
    set: Arc<BackendSet>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    RoundRobin(RoundRobin),
    Weighted(WeightedRoundRobin),
    LeastConn(LeastConnections),
    TwoChoices(TwoChoices),
    Maglev(Maglev),
    RingHash(RingHash),
}

impl Selector {
    /// Builds the selector for `algorithm` over `set`. This is the expensive
    /// step (a Maglev table or a ring); do it off the data path.
    pub fn build(algorithm: &Algorithm, set: Arc<BackendSet>) -> Self {
        let kind = match algorithm {
            Algorithm::RoundRobin => Kind::RoundRobin(RoundRobin::new()),
            Algorithm::WeightedRoundRobin => Kind::Weighted(WeightedRoundRobin::new(&set)),
            Algorithm::LeastConnections => Kind::LeastConn(LeastConnections::new()),
            Algorithm::RandomTwoChoices => Kind::TwoChoices(TwoChoices::new(&set)),
            Algorithm::Maglev { table_size } => Kind::Maglev(Maglev::new(&set, *table_size)),
            Algorithm::RingHash { balance_factor } => Kind::RingHash(RingHash::new(
                &set,
                DEFAULT_RING_POINTS_PER_WEIGHT,
                *balance_factor,
            )),
        };
        Self { set, kind }
    }

    /// The snapshot this selector was built over.
    pub fn backends(&self) -> &Arc<BackendSet> {
        &self.set
    }

    /// Up to `max` distinct ready backends for `key`, best first. The key is
    /// ignored by algorithms that do not hash.
    #[inline]
    pub fn candidates(&self, key: u64, max: usize) -> Candidates {
        let backends = self.set.backends();
        let max = max.clamp(1, MAX_CANDIDATES);
        match &self.kind {
            Kind::RoundRobin(s) => s.candidates(backends, max),
            Kind::Weighted(s) => s.candidates(backends, max),
            Kind::LeastConn(s) => s.candidates(backends, max),
            Kind::TwoChoices(s) => s.candidates(backends, max),
            Kind::Maglev(s) => s.candidates(backends, key, max),
            Kind::RingHash(s) => s.candidates(backends, key, max),
        }
    }

    /// The backend at a candidate index.
    pub fn backend(&self, index: u32) -> Option<&Backend> {
        self.set.get(index as usize)
    }
}

/// True when the backend at `i` may take new traffic.
#[inline]
pub(crate) fn ready(backends: &[Backend], i: usize) -> bool {
    backends.get(i).is_some_and(|b| b.state.is_ready())
}

/// Walks the backends in index order from `start`, appending ready ones.
pub(crate) fn walk_ready(backends: &[Backend], start: usize, out: &mut Candidates, max: usize) {
    let n = backends.len();
    for step in 0..n {
        let i = (start + step) % n;
        if ready(backends, i) && out.push(i as u32, max) {
            return;
        }
    }
}

/// Compares weighted loads: `a_load / a_weight < b_load / b_weight`, without division.
#[inline]
pub(crate) fn lighter(a: &Backend, b: &Backend) -> std::cmp::Ordering {
    let left = u64::from(a.state.in_flight()) * u64::from(b.weight.max(1));
    let right = u64::from(b.state.in_flight()) * u64::from(a.weight.max(1));
    left.cmp(&right)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// `n` healthy backends named `b0..`, weights from `weights` (or 1).
    pub fn set(n: usize, weights: &[u32]) -> Arc<BackendSet> {
        let backends = (0..n)
            .map(|i| {
                let addr = SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16));
                Backend::healthy(format!("b{i}"), addr, weights.get(i).copied().unwrap_or(1))
            })
            .collect();
        Arc::new(BackendSet::new(backends))
    }
}
