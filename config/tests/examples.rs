//! Every example config a user starts from must validate, with no warnings:
//! an example that `weir check` complains about teaches the wrong thing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(EXAMPLES)
        .unwrap_or_else(|e| panic!("cannot read {EXAMPLES}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_validates_without_warnings() {
    let files = example_files();
    let mut failures = Vec::new();
    for path in &files {
        let origin = path.display().to_string();
        // `load`, as `weir check` does: certificate paths are relative to
        // the file (reference.toml's point into examples/tls/).
        match weir_config::load(path) {
            Ok(v) => failures.extend(v.warnings.iter().map(|w| format!("{origin}: warning: {w}"))),
            Err(e) => failures.extend(e.lines().into_iter().map(|l| format!("{origin}: {l}"))),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Examples must validate anywhere, without DNS: backends are IP literals or
/// `localhost`.
#[test]
fn examples_need_no_dns() {
    for path in example_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let raw: weir_config::raw::RawConfig = toml::from_str(&text).unwrap();
        for pool in &raw.pools {
            for b in &pool.backends {
                let literal = b.address.parse::<std::net::SocketAddr>().is_ok();
                let localhost = b
                    .address
                    .rsplit_once(':')
                    .is_some_and(|(h, _)| h == "localhost");
                assert!(
                    literal || localhost,
                    "{}: backend {:?} needs DNS; use an IP literal or localhost",
                    path.display(),
                    b.address
                );
            }
        }
    }
}

#[test]
fn the_documented_examples_exist() {
    let names: Vec<String> = example_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "jwt.toml",
        "maglev.toml",
        "postgres.toml",
        "redis.toml",
        "reference.toml",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "examples/{want} is missing; found {names:?}"
        );
    }
}

/// The examples promise what their comments say; pin the main points so an
/// edit that breaks the promise fails here rather than in a user's hands.
#[test]
fn examples_configure_what_they_claim() {
    use weir_common::health::probe::Probe;
    use weir_common::select::{Algorithm, HashKey};

    let load = |name: &str| {
        weir_config::load(&PathBuf::from(EXAMPLES).join(name))
            .unwrap()
            .config
    };

    let pg = load("postgres.toml");
    assert_eq!(pg.pools[0].algorithm, Algorithm::LeastConnections);
    assert_eq!(pg.pools[0].backends.len(), 2);
    assert_eq!(pg.pools[0].health_check.as_ref().unwrap().probe, Probe::Tcp);

    let redis = load("redis.toml");
    assert_eq!(
        redis.pools[0].health_check.as_ref().unwrap().probe,
        Probe::SendExpect {
            send: b"PING\r\n".to_vec(),
            expect: b"+PONG".to_vec()
        }
    );

    let maglev = load("maglev.toml");
    let pool = &maglev.pools[0];
    assert_eq!(pool.algorithm, Algorithm::Maglev { table_size: 65_537 });
    assert_eq!(pool.hash_key, HashKey::ClientIp);
    assert!(pool.backends.len() >= 3);
    assert!(pool.backends.iter().any(|b| b.weight > 1));

    let reference = load("reference.toml");
    let https = reference
        .listeners
        .iter()
        .find(|l| l.protocol == weir_config::Protocol::Https)
        .expect("reference.toml has an https listener");
    let tls = https.tls.as_ref().unwrap();
    assert!(
        tls.certificates[0].cert.is_file(),
        "{:?}",
        tls.certificates[0].cert
    );
    let jwt = load("jwt.toml");
    let routes = &jwt.listeners[0].http.as_ref().unwrap().routes;
    assert!(routes[0].auth.is_empty(), "the health check stays open");
    assert_eq!(routes[1].auth, vec![0]);
    assert!(jwt.jwt_providers[0].keys.jwks_url.is_some());

    let memcached = &reference.pools[1];
    assert_eq!(
        memcached.health_check.as_ref().unwrap().probe,
        Probe::SendExpect {
            send: b"version\r\n".to_vec(),
            expect: b"VERSION ".to_vec()
        }
    );
}
