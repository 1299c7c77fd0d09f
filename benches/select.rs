//! Micro-benchmarks of backend selection: the per-connection pick
//! (`Selector::candidates(key, 3)`) for every algorithm at 3, 100 and 1000
//! backends, and the off-path builds of the consistent-hash tables.
//!
//! Run: `cargo bench --bench select -- --warm-up-time 1 --measurement-time 3`.
//! Results and what they mean: docs/benchmarks.md.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use weir_common::backend::{Backend, BackendSet};
use weir_common::hash::hash_ip;
use weir_common::select::{Algorithm, DEFAULT_MAGLEV_TABLE_SIZE, Maglev, Selector};

/// Distinct client keys cycled through, so hashing algorithms touch the
/// table or ring the way a spread of real clients does.
const KEYS: usize = 4096;

/// `n` ready backends named like an operator writes them, weights 1..=4
/// (so the weighted algorithms have weights to honour), nothing in flight.
fn pool(n: usize) -> Arc<BackendSet> {
    let backends = (0..n)
        .map(|i| {
            let addr = SocketAddr::from(([10, 0, (i / 256) as u8, (i % 256) as u8], 5432));
            Backend::healthy(format!("db{i}.internal:5432"), addr, 1 + (i % 4) as u32)
        })
        .collect();
    Arc::new(BackendSet::new(backends))
}

fn keys() -> Vec<u64> {
    (0..KEYS as u32)
        .map(|i| hash_ip(IpAddr::V4(Ipv4Addr::from(0x0a10_0000 + i * 7))))
        .collect()
}

fn algorithms() -> [(&'static str, Algorithm); 7] {
    [
        ("round_robin", Algorithm::RoundRobin),
        ("weighted_round_robin", Algorithm::WeightedRoundRobin),
        ("least_connections", Algorithm::LeastConnections),
        ("random_two_choices", Algorithm::RandomTwoChoices),
        (
            "maglev",
            Algorithm::Maglev {
                table_size: DEFAULT_MAGLEV_TABLE_SIZE,
            },
        ),
        (
            "ring_hash",
            Algorithm::RingHash {
                balance_factor: None,
            },
        ),
        (
            "ring_hash_bounded_1.25",
            Algorithm::RingHash {
                balance_factor: Some(1.25),
            },
        ),
    ]
}

fn candidates(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("candidates");
    for n in [3, 100, 1000] {
        let set = pool(n);
        for (name, algorithm) in algorithms() {
            let selector = Selector::build(&algorithm, Arc::clone(&set));
            group.bench_with_input(BenchmarkId::new(name, n), &selector, |b, selector| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % KEYS;
                    selector.candidates(black_box(keys[i]), 3)
                });
            });
        }
    }
    group.finish();
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    for n in [10, 100] {
        let set = pool(n);
        group.bench_with_input(BenchmarkId::new("Maglev::new/65537", n), &set, |b, set| {
            b.iter(|| Maglev::new(set, DEFAULT_MAGLEV_TABLE_SIZE));
        });
        let maglev = Algorithm::Maglev {
            table_size: DEFAULT_MAGLEV_TABLE_SIZE,
        };
        group.bench_with_input(
            BenchmarkId::new("Selector::build/maglev/65537", n),
            &set,
            |b, set| b.iter(|| Selector::build(&maglev, Arc::clone(set))),
        );
        let ring = Algorithm::RingHash {
            balance_factor: None,
        };
        group.bench_with_input(
            BenchmarkId::new("Selector::build/ring_hash", n),
            &set,
            |b, set| b.iter(|| Selector::build(&ring, Arc::clone(set))),
        );
    }
    group.finish();
}

criterion_group!(benches, candidates, build);
criterion_main!(benches);
