//! Property tests for the selectors, and the golden file that pins placement.
//!
//! One test per property of the issue. Each case builds a small pool (names
//! carry a random prefix so every case sees other hash permutations), puts
//! backends down, draining or under load, and checks what every algorithm
//! answers. Case counts are kept low: the whole crate's tests must stay quick
//! in debug builds, where this crate is compiled without optimisation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use proptest::prelude::*;

use super::{
    Algorithm, Candidates, DEFAULT_RING_POINTS_PER_WEIGHT, MAX_CANDIDATES, Maglev, Selector,
};
use crate::backend::{Backend, BackendSet, InFlight};
use crate::hash::hash_ip;

/// What an operator or a health check did to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admin {
    Ready,
    Down,
    Draining,
}

fn admin() -> impl Strategy<Value = Admin> {
    prop_oneof![
        2 => Just(Admin::Ready),
        1 => Just(Admin::Down),
        1 => Just(Admin::Draining),
    ]
}

/// Backends named `{prefix}{i}:5432`, one per weight.
fn pool(prefix: &str, weights: &[u32]) -> Arc<BackendSet> {
    let names: Vec<String> = (0..weights.len())
        .map(|i| format!("{prefix}{i}:5432"))
        .collect();
    named(&names, weights)
}

fn named(names: &[String], weights: &[u32]) -> Arc<BackendSet> {
    let backends = names
        .iter()
        .zip(weights)
        .enumerate()
        .map(|(i, (name, &weight))| {
            let addr = SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16));
            Backend::healthy(name.as_str(), addr, weight)
        })
        .collect();
    Arc::new(BackendSet::new(backends))
}

fn apply(set: &BackendSet, states: &[Admin]) {
    for (backend, state) in set.backends().iter().zip(states) {
        backend.state.force(*state != Admin::Down);
        backend.state.set_draining(*state == Admin::Draining);
    }
}

/// Holds `loads[i]` in-flight units on backend `i` until dropped.
fn hold(set: &BackendSet, loads: &[u32]) -> Vec<InFlight> {
    set.backends()
        .iter()
        .zip(loads)
        .flat_map(|(b, &n)| (0..n).map(|_| b.state.begin()))
        .collect()
}

fn ready_count(set: &BackendSet) -> usize {
    set.backends().iter().filter(|b| b.state.is_ready()).count()
}

/// Every algorithm, with a Maglev table of `table_size`.
fn all_algorithms(table_size: u32) -> Vec<Algorithm> {
    vec![
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastConnections,
        Algorithm::RandomTwoChoices,
        Algorithm::Maglev { table_size },
        Algorithm::RingHash {
            balance_factor: None,
        },
        Algorithm::RingHash {
            balance_factor: Some(1.25),
        },
    ]
}

/// The consistent-hash algorithms, whose placement is the property.
fn hashing_algorithms() -> Vec<Algorithm> {
    vec![
        Algorithm::Maglev { table_size: 4099 },
        Algorithm::RingHash {
            balance_factor: None,
        },
        Algorithm::RingHash {
            balance_factor: Some(1.25),
        },
    ]
}

/// The selection keys of `count` consecutive IPv4 clients from `base`.
fn client_keys(base: u32, count: u32) -> Vec<u64> {
    (0..count)
        .map(|i| hash_ip(IpAddr::V4(Ipv4Addr::from(base.wrapping_add(i)))))
        .collect()
}

fn first(selector: &Selector, key: u64) -> Option<u32> {
    selector.candidates(key, 1).first()
}

/// `in_flight / weight` as a fraction, compared without division.
fn load_le(set: &BackendSet, a: u32, b: u32) -> bool {
    let (a, b) = (set.get(a as usize).unwrap(), set.get(b as usize).unwrap());
    u64::from(a.state.in_flight()) * u64::from(b.weight.max(1))
        <= u64::from(b.state.in_flight()) * u64::from(a.weight.max(1))
}

/// Primes used as Maglev table sizes.
const PRIMES: [u32; 6] = [1009, 2003, 4099, 10_007, 32_771, 65_537];

/// The smallest of [`PRIMES`] that is at least `at_least`.
fn prime_at_least(at_least: u64) -> u32 {
    PRIMES
        .into_iter()
        .find(|&p| u64::from(p) >= at_least)
        .expect("table size within PRIMES")
}

fn check_shape(selector: &Selector, got: Candidates, max: usize) -> Result<(), TestCaseError> {
    let set = selector.backends();
    let ready = ready_count(set);
    let want = max.clamp(1, MAX_CANDIDATES).min(ready);
    let distinct: HashSet<u32> = got.as_slice().iter().copied().collect();
    prop_assert_eq!(distinct.len(), got.len(), "duplicates in {:?}", got);
    // Not just bounded: a caller that asks for `max` gets every ready backend
    // up to `max`, so failover never gives up while one is left.
    prop_assert_eq!(
        got.len(),
        want,
        "{:?} for max {} with {} ready",
        got,
        max,
        ready
    );
    for &i in got.as_slice() {
        let backend = selector.backend(i);
        prop_assert!(backend.is_some_and(|b| b.state.is_ready()), "{i} not ready");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// No algorithm ever offers a backend that is down or draining, under any
    /// load, whatever the key, however often it is asked.
    #[test]
    fn never_selects_an_unready_backend(
        prefix in "[a-z]{1,6}",
        pool_spec in prop::collection::vec((1u32..=6, admin(), 0u32..=4), 1..=10),
        table in prop::sample::select(&PRIMES[..3]),
        key_base in any::<u32>(),
    ) {
        let weights: Vec<u32> = pool_spec.iter().map(|s| s.0).collect();
        let states: Vec<Admin> = pool_spec.iter().map(|s| s.1).collect();
        let loads: Vec<u32> = pool_spec.iter().map(|s| s.2).collect();
        for algorithm in all_algorithms(table) {
            let set = pool(&prefix, &weights);
            apply(&set, &states);
            let _load = hold(&set, &loads);
            let selector = Selector::build(&algorithm, Arc::clone(&set));
            for key in client_keys(key_base, 40) {
                for &i in selector.candidates(key, MAX_CANDIDATES).as_slice() {
                    let state = states[i as usize];
                    prop_assert_eq!(state, Admin::Ready, "{} picked {}", algorithm.name(), i);
                }
            }
        }
    }

    /// Candidates are distinct, ready, and exactly `min(max, ready)` of them
    /// (`max` clamped to 1..=MAX_CANDIDATES); none when nothing is ready.
    #[test]
    fn candidates_are_distinct_bounded_and_ready(
        prefix in "[a-z]{1,6}",
        pool_spec in prop::collection::vec((1u32..=6, admin(), 0u32..=4), 1..=12),
        none_ready in prop::bool::weighted(0.2),
        max in 0usize..=12,
        key_base in any::<u32>(),
    ) {
        let weights: Vec<u32> = pool_spec.iter().map(|s| s.0).collect();
        let mut states: Vec<Admin> = pool_spec.iter().map(|s| s.1).collect();
        if none_ready {
            for (i, s) in states.iter_mut().enumerate() {
                *s = if i % 2 == 0 { Admin::Down } else { Admin::Draining };
            }
        }
        let loads: Vec<u32> = pool_spec.iter().map(|s| s.2).collect();
        for algorithm in all_algorithms(1009) {
            let set = pool(&prefix, &weights);
            apply(&set, &states);
            let _load = hold(&set, &loads);
            let selector = Selector::build(&algorithm, Arc::clone(&set));
            for key in client_keys(key_base, 16) {
                let got = selector.candidates(key, max);
                if none_ready {
                    prop_assert!(got.is_empty(), "{}: {:?}", algorithm.name(), got);
                }
                check_shape(&selector, got, max)?;
            }
        }
    }

    /// Weighted round robin is exact: over any whole number of periods
    /// (Σ weight / gcd picks) each backend is first exactly its weight's share.
    #[test]
    fn weighted_round_robin_is_exact_over_a_period(
        weights in prop::collection::vec(1u32..=20, 1..=8),
        periods in 1usize..=3,
    ) {
        let set = pool("w", &weights);
        let selector = Selector::build(&Algorithm::WeightedRoundRobin, Arc::clone(&set));
        let gcd = weights.iter().fold(0, |g, &w| gcd(g, w));
        let period: usize = weights.iter().map(|&w| (w / gcd) as usize).sum();
        let mut counts = vec![0usize; weights.len()];
        for _ in 0..period * periods {
            counts[first(&selector, 0).unwrap() as usize] += 1;
        }
        let want: Vec<usize> = weights.iter().map(|&w| (w / gcd) as usize * periods).collect();
        prop_assert_eq!(counts, want);
    }

    /// Maglev's table follows the weights: a backend of weight w owns within
    /// 1 % of w/Σw of the slots (the table is filled in rounds of w turns, so
    /// the error is one partial round: at most Σw/M).
    #[test]
    fn maglev_table_share_follows_weights(
        prefix in "[a-z]{1,6}",
        weights in prop::collection::vec(1u32..=16, 1..=10),
    ) {
        let total: u32 = weights.iter().sum();
        let set = pool(&prefix, &weights);
        let maglev = Maglev::new(&set, 65_537);
        let mut counts = vec![0usize; weights.len()];
        for &i in maglev.table() {
            counts[i as usize] += 1;
        }
        for (i, (&count, &w)) in counts.iter().zip(&weights).enumerate() {
            let share = count as f64 / 65_537.0;
            let want = f64::from(w) / f64::from(total);
            prop_assert!((share / want - 1.0).abs() <= 0.01, "b{i}: {share} vs {want}: {counts:?}");
        }
    }

    /// Ring hash: a backend's share of real client keys (hash_ip of 20 000
    /// consecutive addresses) is within 5 percentage points, and within 20 %
    /// of itself, of its weight share. A ring is random, so this is looser
    /// than Maglev: with 1024 points per weight unit a weight-1 backend's
    /// share strays by σ ≈ 3 % (plus ≈ 2.6 % sampling noise here), so 20 %
    /// is ~5σ; the worst seen over 40 pools and 100 000 keys was 7.7 %. For
    /// large shares the absolute bound binds: two equal backends stray by
    /// σ ≈ 1.1 points, and a 600-case run saw 0.53 against 0.5 (3 points was
    /// 2.7σ; 5 is 4.5σ).
    #[test]
    fn ring_hash_key_share_follows_weights(
        prefix in "[a-z]{1,6}",
        weights in prop::collection::vec(1u32..=4, 2..=8),
        key_base in any::<u32>(),
    ) {
        let total: u32 = weights.iter().sum();
        let set = pool(&prefix, &weights);
        let algorithm = Algorithm::RingHash { balance_factor: None };
        let selector = Selector::build(&algorithm, Arc::clone(&set));
        let keys = client_keys(key_base, 20_000);
        let mut counts = vec![0usize; weights.len()];
        for &key in &keys {
            counts[first(&selector, key).unwrap() as usize] += 1;
        }
        for (i, (&count, &w)) in counts.iter().zip(&weights).enumerate() {
            let share = count as f64 / keys.len() as f64;
            let want = f64::from(w) / f64::from(total);
            prop_assert!((share - want).abs() <= 0.05, "b{i}: {share} vs {want}: {counts:?}");
            prop_assert!((share / want - 1.0).abs() <= 0.20, "b{i}: {share} vs {want}: {counts:?}");
        }
    }

    /// The load-aware algorithms honour weights through load: every pick
    /// becomes a connection that stays open (its InFlight guard is held), so
    /// after k × Σw picks a backend of weight w should carry k × w of them.
    /// Least connections reaches that exactly (it always tops up the lowest
    /// in_flight/weight). Two random choices is random, so each backend's
    /// share of the load must be within 1 percentage point of its weight
    /// share (0.3 seen); it only gets there because both choices are drawn
    /// by weight.
    #[test]
    fn load_aware_algorithms_fill_backends_in_proportion_to_weight(
        weights in prop::collection::vec(1u32..=10, 2..=8),
        // Enough picks that random draws settle: with ~20 rounds a 1-point
        // tolerance failed by chance about once in thirty runs.
        rounds in 80u32..=120,
    ) {
        let total: u32 = weights.iter().sum();
        for algorithm in [Algorithm::LeastConnections, Algorithm::RandomTwoChoices] {
            let set = pool("c", &weights);
            let selector = Selector::build(&algorithm, Arc::clone(&set));
            let mut open = Vec::new();
            for _ in 0..rounds * total {
                let i = first(&selector, 0).unwrap();
                open.push(set.get(i as usize).unwrap().state.begin());
            }
            let loads: Vec<u32> = set.backends().iter().map(|b| b.state.in_flight()).collect();
            let want: Vec<u32> = weights.iter().map(|&w| w * rounds).collect();
            if algorithm == Algorithm::LeastConnections {
                prop_assert_eq!(&loads, &want);
            } else {
                for (load, w) in loads.iter().zip(&want) {
                    let share = f64::from(*load) / f64::from(rounds * total);
                    let want_share = f64::from(*w) / f64::from(rounds * total);
                    prop_assert!((share - want_share).abs() <= 0.01, "{loads:?} vs {want:?}");
                }
            }
        }
    }

    /// Maglev balance: with M ≥ 100 × N slots the fullest backend holds at
    /// most 1 % more than the average (per unit of weight, M ≥ 100 × Σw).
    #[test]
    fn maglev_max_over_average_is_at_most_1_01(
        prefix in "[a-z]{1,6}",
        n in 1usize..=10,
        weighted in any::<bool>(),
        weights in prop::collection::vec(1u32..=4, 10),
    ) {
        let weights: Vec<u32> = if weighted { weights[..n].to_vec() } else { vec![1; n] };
        let total: u32 = weights.iter().sum();
        let size = prime_at_least(100 * u64::from(total));
        let maglev = Maglev::new(&pool(&prefix, &weights), size);
        let mut counts = vec![0usize; n];
        for &i in maglev.table() {
            counts[i as usize] += 1;
        }
        let per_unit: Vec<f64> = counts.iter().zip(&weights).map(|(&c, &w)| c as f64 / f64::from(w)).collect();
        let average = f64::from(size) / f64::from(total);
        let max = per_unit.iter().copied().fold(0.0, f64::max);
        prop_assert!(max / average <= 1.01, "max/avg {} for M {size}: {counts:?}", max / average);
    }

    /// Removing one of N equal backends remaps at most 1.3/N of the key space
    /// in Maglev (exactly: compared slot by slot, by name): 1/N is the
    /// removed backend's share, and Maglev's table fill moves some keys
    /// between survivors too — 0–17% more for N ≤ 10 in a sweep of names
    /// (the worst, 1.17/N, with N = 10; a CI run found 1.12/N with N = 7,
    /// kept in proptest-regressions). Ring hash moves only the removed
    /// backend's keys (no key whose backend stays moves), which are 1/N ±
    /// the ring's spread: at most 1.3/N.
    #[test]
    fn removing_one_of_n_backends_moves_about_one_nth(
        prefix in "[a-z]{1,6}",
        n in 2usize..=10,
        removed in any::<prop::sample::Index>(),
        key_base in any::<u32>(),
    ) {
        let removed = removed.index(n);
        let names: Vec<String> = (0..n).map(|i| format!("{prefix}{i}:5432")).collect();
        let mut rest = names.clone();
        rest.remove(removed);
        let (before, after) = (named(&names, &vec![1; n]), named(&rest, &vec![1; n - 1]));

        let (old, new) = (Maglev::new(&before, 65_537), Maglev::new(&after, 65_537));
        let moved = old.table().iter().zip(new.table())
            .filter(|&(&a, &b)| names[a as usize] != rest[b as usize])
            .count();
        let fraction = moved as f64 / 65_537.0;
        prop_assert!(fraction * n as f64 <= 1.3, "maglev moved {fraction} of keys, N = {n}");

        let ring = Algorithm::RingHash { balance_factor: None };
        let old = Selector::build(&ring, Arc::clone(&before));
        let new = Selector::build(&ring, Arc::clone(&after));
        let keys = client_keys(key_base, 4000);
        let mut moved = 0;
        for &key in &keys {
            let a = &names[first(&old, key).unwrap() as usize];
            let b = &rest[first(&new, key).unwrap() as usize];
            if a != b {
                prop_assert_eq!(a, &names[removed], "ring hash moved a key off a staying backend");
                moved += 1;
            }
        }
        let fraction = f64::from(moved) / keys.len() as f64;
        prop_assert!(fraction * n as f64 <= 1.3, "ring hash moved {fraction} of keys, N = {n}");
    }

    /// Marking backends down or draining moves only their keys: every key
    /// whose first candidate is still ready keeps it, and when they come back
    /// every key returns where it was.
    #[test]
    fn unready_backends_move_only_their_own_keys(
        prefix in "[a-z]{1,6}",
        weights in prop::collection::vec(1u32..=4, 2..=10),
        states in prop::collection::vec(admin(), 10),
        key_base in any::<u32>(),
    ) {
        let states = &states[..weights.len()];
        let keys = client_keys(key_base, 500);
        for algorithm in hashing_algorithms() {
            let set = pool(&prefix, &weights);
            let selector = Selector::build(&algorithm, Arc::clone(&set));
            let before: Vec<Option<u32>> = keys.iter().map(|&k| first(&selector, k)).collect();
            apply(&set, states);
            for (&key, &was) in keys.iter().zip(&before) {
                let was = was.unwrap();
                let now = first(&selector, key);
                if states[was as usize] == Admin::Ready {
                    prop_assert_eq!(now, Some(was), "{}: a key left a ready backend", algorithm.name());
                } else if let Some(now) = now {
                    prop_assert_eq!(states[now as usize], Admin::Ready);
                }
            }
            apply(&set, &vec![Admin::Ready; weights.len()]);
            let again: Vec<Option<u32>> = keys.iter().map(|&k| first(&selector, k)).collect();
            prop_assert_eq!(&again, &before, "{}: keys did not come back", algorithm.name());
        }
    }

    /// Least connections always picks a ready backend with the minimum
    /// in_flight / weight, and lists the rest in order of that load.
    #[test]
    fn least_connections_picks_a_minimum(
        pool_spec in prop::collection::vec((1u32..=8, admin(), 0u32..=20), 1..=10),
        calls in 1usize..=6,
    ) {
        let weights: Vec<u32> = pool_spec.iter().map(|s| s.0).collect();
        let states: Vec<Admin> = pool_spec.iter().map(|s| s.1).collect();
        let loads: Vec<u32> = pool_spec.iter().map(|s| s.2).collect();
        let set = pool("l", &weights);
        apply(&set, &states);
        let _load = hold(&set, &loads);
        let selector = Selector::build(&Algorithm::LeastConnections, Arc::clone(&set));
        let ready: Vec<u32> = (0..weights.len() as u32).filter(|&i| states[i as usize] == Admin::Ready).collect();
        for _ in 0..calls {
            let got = selector.candidates(0, MAX_CANDIDATES);
            let Some(best) = got.first() else {
                prop_assert!(ready.is_empty());
                continue;
            };
            for &other in &ready {
                prop_assert!(load_le(&set, best, other), "{best} is not lighter than {other}");
            }
            for pair in got.as_slice().windows(2) {
                prop_assert!(load_le(&set, pair[0], pair[1]), "{:?} out of load order", got);
            }
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

// ---------------------------------------------------------------------------
// Golden placement

/// The file that pins placement; `WEIR_BLESS=1` rewrites it.
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/placement.txt");

/// The fixed pool of the golden file: names as an operator writes them, weights.
const GOLDEN_POOL: [(&str, u32); 5] = [
    ("db1.internal:5432", 1),
    ("db2.internal:5432", 2),
    ("db3.internal:5432", 1),
    ("db4.internal:5432", 3),
    ("db5.internal:5432", 1),
];

/// 64 fixed clients: 48 IPv4 addresses spread over a few networks, 16 IPv6.
fn golden_clients() -> Vec<IpAddr> {
    let v4 = (0..48u32).map(|i| {
        let net: [u8; 2] = [[10, 0], [10, 17], [172, 16], [192, 168]][(i % 4) as usize];
        IpAddr::V4(Ipv4Addr::new(
            net[0],
            net[1],
            (i * 37 % 256) as u8,
            (i * 11 % 254 + 1) as u8,
        ))
    });
    let v6 = (0..16u16).map(|i| {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            i * 0x101,
            0,
            0,
            0,
            0x4000 + i * 13,
            i + 1,
        ))
    });
    v4.chain(v6).collect()
}

fn render_placement() -> String {
    let names: Vec<String> = GOLDEN_POOL.iter().map(|(n, _)| (*n).to_owned()).collect();
    let weights: Vec<u32> = GOLDEN_POOL.iter().map(|&(_, w)| w).collect();
    let set = named(&names, &weights);
    let maglev = Selector::build(&Algorithm::Maglev { table_size: 65_537 }, Arc::clone(&set));
    let ring = Selector::build(
        &Algorithm::RingHash {
            balance_factor: None,
        },
        Arc::clone(&set),
    );
    let mut out = String::from(
        "# Key -> backend placement, pinned. Every line that changes here moves real\n\
         # clients to another backend: review the diff as such.\n\
         # Regenerate: WEIR_BLESS=1 cargo test -p weir-common --lib golden_placement\n#\n",
    );
    let pool: Vec<String> = GOLDEN_POOL
        .iter()
        .map(|(n, w)| format!("{n} (weight {w})"))
        .collect();
    out.push_str(&format!("# pool: {}\n", pool.join(", ")));
    out.push_str(&format!(
        "# key: hash_ip(client); maglev: table_size 65537; ring_hash: {} points per weight, no balance factor\n",
        DEFAULT_RING_POINTS_PER_WEIGHT
    ));
    out.push_str("# first candidate of each algorithm, all backends ready\n#\n");
    out.push_str(&format!(
        "# {:<24} {:<18} {:<18} {}\n",
        "client", "key", "maglev", "ring_hash"
    ));
    for ip in golden_clients() {
        let key = hash_ip(ip);
        out.push_str(&format!(
            "{:<26} {:#018x} {:<18} {}\n",
            ip.to_string(),
            key,
            name_of(&maglev, key),
            name_of(&ring, key),
        ));
    }
    out
}

fn name_of(selector: &Selector, key: u64) -> String {
    first(selector, key)
        .and_then(|i| selector.backend(i))
        .map_or_else(|| "-".to_owned(), |b| b.name.to_string())
}

#[test]
fn golden_placement() {
    let got = render_placement();
    if std::env::var_os("WEIR_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(std::path::Path::new(GOLDEN).parent().unwrap()).unwrap();
        std::fs::write(GOLDEN, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(GOLDEN)
        .unwrap_or_else(|e| panic!("read {GOLDEN}: {e} (WEIR_BLESS=1 creates it)"));
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .filter(|(w, g)| w != g)
            .map(|(w, g)| format!("- {w}\n+ {g}"))
            .collect();
        panic!(
            "placement changed ({} lines); if intended, rerun with WEIR_BLESS=1 and review the diff:\n{}",
            diff.len(),
            diff.join("\n")
        );
    }
}
