//! Micro-benchmarks of a local rate-limit check: the GCRA step alone, the
//! keyed store (one hot key, 4096 cycled keys, a flood of ever-new keys with
//! eviction) and the request key (client IP, an API key header + route).
//!
//! Run: `cargo bench --bench ratelimit -- --warm-up-time 1 --measurement-time 3`.
//! Results: docs/benchmarks.md.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use weir_common::hash::mix64;
use weir_common::rate::{KeyedStore, Rate, gcra};
use weir_config::rate_limit::KeyPart;
use weir_l7::ratelimit::NoClaims;
use weir_l7::ratelimit::key::request_key;

fn bench(c: &mut Criterion) {
    // Generous enough that nothing is refused: the allowed path is measured.
    let rate = Rate::new(1_000_000_000, Duration::from_secs(1), 1_000_000_000);
    let mut g = c.benchmark_group("ratelimit");
    g.bench_function("gcra_step", |b| {
        let mut tat = None;
        let mut now = 0u64;
        b.iter(|| {
            now += 1_000;
            let (d, new) = gcra::check(&rate, black_box(tat), now);
            tat = new;
            d
        });
    });
    let store = KeyedStore::new(rate, 1 << 20);
    g.bench_function("store_hot_key", |b| {
        let mut now = 0u64;
        b.iter(|| {
            now += 1_000;
            store.check(black_box(42), now)
        });
    });
    let keys: Vec<u64> = (0..4096u64).map(mix64).collect();
    let store = KeyedStore::new(rate, 1 << 20);
    g.bench_function("store_4096_keys", |b| {
        let (mut i, mut now) = (0usize, 0u64);
        b.iter(|| {
            i = (i + 1) % keys.len();
            now += 1_000;
            store.check(keys[i], now)
        });
    });
    // Every request a new client, keys idle after 1 µs: the sweep path.
    let short = Rate::new(1_000_000, Duration::from_secs(1), 1);
    let store = KeyedStore::new(short, 1 << 20);
    g.bench_function("store_new_key_each_time", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            store.check(mix64(n), n * 1_000)
        });
    });
    let parts = http::Request::builder()
        .uri("/api/users")
        .header("x-api-key", "k-3f2a9c1e5b7d")
        .body(())
        .map(|r| r.into_parts().0)
        .unwrap_or_else(|_| http::Request::new(()).into_parts().0);
    let ip = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    let by_ip = [KeyPart::ClientIp];
    g.bench_function("key_client_ip", |b| {
        b.iter(|| request_key(&by_ip, black_box(&parts), ip, "api", &NoClaims));
    });
    let by_key = [KeyPart::Header("x-api-key".into()), KeyPart::Route];
    g.bench_function("key_header_and_route", |b| {
        b.iter(|| request_key(&by_key, black_box(&parts), ip, "api", &NoClaims));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
