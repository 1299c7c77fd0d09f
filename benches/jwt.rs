//! Micro-benchmarks of JWT verification: the whole per-request check
//! (`weir_l7::auth::verify::verify`: parse, header policy, key choice,
//! signature, claims) for every algorithm weir supports, with keys made and
//! tokens signed by the same code the integration tests use.
//!
//! Run: `cargo bench --bench jwt -- --warm-up-time 1 --measurement-time 3`.
//! Results and what they mean: docs/benchmarks.md.

#![allow(missing_docs, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use weir_config::auth::{JwtAlgorithm, JwtProvider};
use weir_l7::auth::keys::KeySet;
use weir_l7::auth::verify::{algorithm, verify};

// Test support: panics on a broken key generator are fine here.
#[allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
#[path = "../tests/it/jwt/keys.rs"]
mod keys;

fn provider(alg: JwtAlgorithm) -> JwtProvider {
    let mut p = JwtProvider::with_defaults("bench", "iss", &[alg]);
    p.audiences = vec!["api".into()];
    p.required_claims = vec!["sub".into()];
    p
}

fn verification(c: &mut Criterion) {
    let mut group = c.benchmark_group("jwt_verify");
    for name in keys::ALL {
        let key = keys::TestKey::new(name, "k1");
        let set = KeySet::from_jwks(keys::jwks(&[&key]).as_bytes()).expect("jwks");
        let token = key.sign(&keys::claims("iss", "user-1"));
        let alg = JwtAlgorithm::from_name(name).expect("algorithm");
        let cfg = provider(alg);
        let allowed = [algorithm(alg)];
        let now = keys::now();
        assert!(
            verify(&cfg, &allowed, &[&set], &token, now).is_ok(),
            "{name}"
        );
        group.bench_with_input(BenchmarkId::from_parameter(name), &token, |b, token| {
            b.iter(|| verify(&cfg, &allowed, &[&set], black_box(token), now))
        });
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
