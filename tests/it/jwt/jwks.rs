//! JWKS over HTTP from a fake identity provider: a new `kid` is picked up
//! on first sight, a flood of unknown kids costs at most one fetch per
//! cooldown, an outage keeps the last good keys, and weir started with the
//! IdP down answers 401 until the keys arrive. Readiness is polled with a
//! deadline, never slept for.

use std::time::Duration;

use super::idp::Idp;
use super::keys::{TestKey, claims, jwks};
use super::{decisions, get_with, provider, route, start};
use crate::support::fake_http::FakeHttp;
use crate::support::{Weir, eventually, unique};

/// weir with one route `/api` guarded by a provider reading `idp`'s JWKS.
async fn weir_for(idp: &Idp, refresh: &str, cooldown: &str, backend: &FakeHttp) -> (Weir, String) {
    let name = unique("idp");
    let providers = provider(
        &name,
        "iss",
        &["RS256", "ES256"],
        &format!(
            "jwks_url = \"{}\"\njwks_refresh = \"{refresh}\"\njwks_cooldown = \"{cooldown}\"",
            idp.url()
        ),
    );
    let weir = start(&route("/api", &format!("{name:?}")), &providers, backend).await;
    (weir, name)
}

/// Waits for the start-up fetch through the metrics (a request would fetch
/// on its own and use up the cooldown).
async fn keys_loaded(weir: &Weir, name: &str, n: f64) {
    eventually(Duration::from_secs(10), "the first JWKS fetch", || async {
        weir.metric("weir_jwks_keys", &[("provider", name)]).await == n
    })
    .await;
}

async fn status(weir: &Weir, token: &str) -> u16 {
    get_with(weir, "/api", token, &[]).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_picked_up_on_first_sight() {
    let backend = FakeHttp::start("b0").await;
    let k1 = TestKey::new("RS256", "k1");
    let k2 = TestKey::new("ES256", "k2");
    let idp = Idp::start(&jwks(&[&k1])).await;
    let (weir, name) = weir_for(&idp, "1h", "1h", &backend).await;
    let t1 = k1.sign(&claims("iss", "u"));
    keys_loaded(&weir, &name, 1.0).await;
    assert_eq!(status(&weir, &t1).await, 200);
    assert_eq!(idp.hits(), 1);
    // The IdP rotates: the first token with the new kid gets through.
    idp.set(&jwks(&[&k1, &k2]));
    let r = get_with(&weir, "/api", &k2.sign(&claims("iss", "u")), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(idp.hits(), 2);
    assert_eq!(
        weir.metric(
            "weir_jwks_fetches_total",
            &[("provider", &name), ("result", "ok")]
        )
        .await,
        2.0
    );
    assert_eq!(
        weir.metric("weir_jwks_keys", &[("provider", &name)]).await,
        2.0
    );
    let age = weir
        .metric("weir_jwks_age_seconds", &[("provider", &name)])
        .await;
    assert!((0.0..60.0).contains(&age), "{age}");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_cooldown() {
    let backend = FakeHttp::start("b0").await;
    let k1 = TestKey::new("RS256", "k1");
    let idp = Idp::start(&jwks(&[&k1])).await;
    let (weir, name) = weir_for(&idp, "1h", "1h", &backend).await;
    let t1 = k1.sign(&claims("iss", "u"));
    keys_loaded(&weir, &name, 1.0).await;
    assert_eq!(status(&weir, &t1).await, 200);
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..200 {
        let token = TestKey::new("ES256", &format!("bogus-{i}")).sign(&claims("iss", "u"));
        let addr = weir.addr;
        flood.spawn(async move {
            let r = crate::support::fake_http::send(
                addr,
                crate::support::fake_http::req_with(
                    "GET",
                    "/api",
                    &[("host", "t"), ("authorization", &format!("Bearer {token}"))],
                    "",
                ),
            )
            .await;
            r.status
        });
    }
    while let Some(s) = flood.join_next().await {
        assert_eq!(s.unwrap(), 401);
    }
    assert_eq!(
        idp.hits(),
        2,
        "the start-up fetch and one for all the unknown kids"
    );
    assert_eq!(decisions(&weir, &name, "unknown_kid").await, 200.0);
    assert_eq!(backend.requests(), 1);
    assert_eq!(status(&weir, &t1).await, 200);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_outage_keeps_the_last_good_keys() {
    let backend = FakeHttp::start("b0").await;
    let k1 = TestKey::new("RS256", "k1");
    let mut idp = Idp::start(&jwks(&[&k1])).await;
    let (weir, name) = weir_for(&idp, "1h", "1s", &backend).await;
    let t1 = k1.sign(&claims("iss", "u"));
    keys_loaded(&weir, &name, 1.0).await;
    assert_eq!(status(&weir, &t1).await, 200);
    idp.stop();
    // An unknown kid makes weir fetch; the fetch fails and is counted...
    let stranger = TestKey::new("RS256", "k9").sign(&claims("iss", "u"));
    assert_eq!(status(&weir, &stranger).await, 401);
    let errors = weir
        .metric(
            "weir_jwks_fetches_total",
            &[("provider", &name), ("result", "error")],
        )
        .await;
    assert_eq!(errors, 1.0);
    // ...and the keys it had still admit their tokens.
    assert_eq!(status(&weir, &t1).await, 200);
    assert_eq!(
        weir.metric("weir_jwks_keys", &[("provider", &name)]).await,
        1.0
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_starts_with_the_idp_down_and_admits_once_keys_arrive() {
    let backend = FakeHttp::start("b0").await;
    let k1 = TestKey::new("RS256", "k1");
    let mut idp = Idp::down_at_free_port(&jwks(&[&k1]));
    let (weir, name) = weir_for(&idp, "1h", "1s", &backend).await;
    let t1 = k1.sign(&claims("iss", "u"));
    let r = get_with(&weir, "/api", &t1, &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            "Bearer realm=\"weir\", error=\"invalid_token\", error_description=\"signing keys unavailable\""
        )
    );
    idp.restart().await;
    eventually(
        Duration::from_secs(15),
        "keys after the IdP comes up",
        || async { status(&weir, &t1).await == 200 },
    )
    .await;
    assert!(decisions(&weir, &name, "no_keys").await >= 1.0);
    assert_eq!(backend.requests(), 1);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_idp_removes_stops_admitting_even_cached_tokens() {
    let backend = FakeHttp::start("b0").await;
    let k1 = TestKey::new("RS256", "k1");
    let k2 = TestKey::new("ES256", "k2");
    let idp = Idp::start(&jwks(&[&k1])).await;
    let (weir, name) = weir_for(&idp, "1h", "1h", &backend).await;
    keys_loaded(&weir, &name, 1.0).await;
    let t1 = k1.sign(&claims("iss", "u"));
    // Verified once, then served from the cache of verified tokens.
    assert_eq!(status(&weir, &t1).await, 200);
    assert_eq!(status(&weir, &t1).await, 200);
    // The IdP drops k1; a token with the new kid makes weir fetch.
    idp.set(&jwks(&[&k2]));
    assert_eq!(status(&weir, &k2.sign(&claims("iss", "u"))).await, 200);
    assert_eq!(idp.hits(), 2);
    let r = get_with(&weir, "/api", &t1, &[]).await;
    assert_eq!(r.status, 401, "a removed key must not admit a cached token");
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            "Bearer realm=\"weir\", error=\"invalid_token\", error_description=\"unknown key id\""
        )
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_over_https_is_verified_against_the_configured_authority() {
    use crate::support::pki::{Pki, server_config};

    let backend = FakeHttp::start("b0").await;
    let k1 = TestKey::new("RS256", "k1");
    let pki = Pki::new();
    let tls = server_config(&pki, "idp", &["127.0.0.1"], &["http/1.1"], None);
    let idp = Idp::start_tls(&jwks(&[&k1]), tls).await;
    assert!(idp.url().starts_with("https://"));
    let stranger = Pki::new();
    // Trusting the IdP's CA: the keys load and tokens pass. Trusting
    // another CA: no key ever loads, tokens get 401 (no_keys).
    for (ca, ok) in [(pki.ca_pem(), true), (stranger.ca_pem(), false)] {
        let name = unique("idp-tls");
        let providers = provider(
            &name,
            "iss",
            &["RS256"],
            &format!(
                "jwks_url = \"{}\"\njwks_ca_file = {:?}",
                idp.url(),
                ca.display().to_string()
            ),
        );
        let weir = start(&route("/api", &format!("{name:?}")), &providers, &backend).await;
        let token = k1.sign(&claims("iss", "u"));
        if ok {
            keys_loaded(&weir, &name, 1.0).await;
            assert_eq!(status(&weir, &token).await, 200);
        } else {
            eventually(Duration::from_secs(10), "a failed fetch", || async {
                weir.metric(
                    "weir_jwks_fetches_total",
                    &[("provider", name.as_str()), ("result", "error")],
                )
                .await
                    >= 1.0
            })
            .await;
            assert_eq!(status(&weir, &token).await, 401);
            assert_eq!(decisions(&weir, &name, "no_keys").await, 1.0);
        }
        weir.stop().await;
    }
}
