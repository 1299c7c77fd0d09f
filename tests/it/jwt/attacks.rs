//! Every attack class of the JWT issue is refused with the right status and
//! reason, and never reaches the backend (its request count stays put).

use serde_json::json;

use super::keys::{TestKey, b64, claims, now};
use super::{decisions, get_with, provider, route, start, write};
use crate::support::fake_http::FakeHttp;
use crate::support::peers::TempDir;
use crate::support::unique;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_refused_before_the_backend() {
    let backend = FakeHttp::start("b0").await;
    let dir = TempDir::new("jwt-attacks");
    let good = TestKey::new("RS256", "k1");
    let jwks_file = write(&dir, "jwks.json", &super::keys::jwks(&[&good]));
    let secret = write(&dir, "secret", "the real hmac secret");
    let (rs, mixed) = (unique("rs"), unique("mixed"));
    let providers = [
        provider(
            &rs,
            "iss",
            &["RS256"],
            &format!("jwks_file = {jwks_file:?}"),
        ),
        provider(
            &mixed,
            "iss",
            &["RS256", "HS256"],
            &format!("jwks_file = {jwks_file:?}\nhmac_secret_file = {secret:?}"),
        ),
    ]
    .concat();
    let routes = [
        route("/rs", &format!("{rs:?}")),
        route("/mixed", &format!("{mixed:?}")),
    ]
    .concat();
    let weir = start(&routes, &providers, &backend).await;

    let valid = good.sign(&claims("iss", "u"));
    let header = |h: serde_json::Value| good.sign_with_header(&h, &claims("iss", "u"));
    let with_claims = |c: serde_json::Value| good.sign(&c);
    // The RS256→HS256 confusion: MAC the token with the RSA public key.
    let confused = TestKey::hmac_with("HS256", good.pem().as_bytes())
        .sign_with_header(&json!({ "alg": "HS256", "kid": "k1" }), &claims("iss", "u"));
    let (h, p, _) = {
        let mut it = valid.split('.');
        (
            it.next().unwrap().to_owned(),
            it.next().unwrap().to_owned(),
            (),
        )
    };
    let sig = valid.rsplit('.').next().unwrap().to_owned();
    let tampered = format!("{h}.{}.{sig}", b64(claims("iss", "admin").to_string()));
    let mut big = claims("iss", "u");
    big["pad"] = json!("x".repeat(9000));

    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("no token", "/rs", String::new(), 401, "missing"),
        (
            "alg none, no signature",
            "/rs",
            format!("{}.{p}.", b64(r#"{"alg":"none"}"#)),
            401,
            "malformed",
        ),
        (
            "alg none with a signature",
            "/rs",
            format!("{}.{p}.{sig}", b64(r#"{"alg":"none"}"#)),
            401,
            "alg_not_allowed",
        ),
        (
            "RS256→HS256 where HS256 is not allowed",
            "/rs",
            confused.clone(),
            401,
            "alg_not_allowed",
        ),
        (
            "RS256→HS256 where HS256 is allowed",
            "/mixed",
            confused,
            401,
            "bad_signature",
        ),
        (
            "unknown kid",
            "/rs",
            header(json!({"alg": "RS256", "kid": "nope"})),
            401,
            "unknown_kid",
        ),
        (
            "expired",
            "/rs",
            with_claims(json!({"iss": "iss", "aud": "api", "exp": now() - 3600})),
            401,
            "expired",
        ),
        (
            "no exp",
            "/rs",
            with_claims(json!({"iss": "iss", "aud": "api"})),
            401,
            "missing_claim",
        ),
        (
            "nbf in the future",
            "/rs",
            with_claims(
                json!({"iss": "iss", "aud": "api", "exp": now() + 7200, "nbf": now() + 3600}),
            ),
            401,
            "not_yet_valid",
        ),
        (
            "wrong iss",
            "/rs",
            good.sign(&claims("evil", "u")),
            401,
            "bad_issuer",
        ),
        (
            "wrong aud",
            "/rs",
            with_claims(json!({"iss": "iss", "aud": "other", "exp": now() + 60})),
            401,
            "bad_audience",
        ),
        (
            "signed by another key",
            "/rs",
            TestKey::foreign_rsa("RS256", "k1").sign(&claims("iss", "u")),
            401,
            "bad_signature",
        ),
        ("tampered payload", "/rs", tampered, 401, "bad_signature"),
        (
            "malformed base64",
            "/rs",
            format!("{h}.!!!{p}.{sig}"),
            401,
            "malformed",
        ),
        (
            "malformed JSON header",
            "/rs",
            format!("{}.{p}.{sig}", b64("{\"alg\":")),
            401,
            "malformed",
        ),
        ("two parts", "/rs", format!("{h}.{p}"), 401, "malformed"),
        (
            "embedded jwk",
            "/rs",
            header(json!({"alg": "RS256", "kid": "k1", "jwk": good.jwk()})),
            401,
            "embedded_key",
        ),
        (
            "jku",
            "/rs",
            header(json!({"alg": "RS256", "kid": "k1", "jku": "http://127.0.0.1:9/jwks"})),
            401,
            "embedded_key",
        ),
        (
            "x5u",
            "/rs",
            header(json!({"alg": "RS256", "kid": "k1", "x5u": "http://127.0.0.1:9/cert"})),
            401,
            "embedded_key",
        ),
        (
            "unknown crit",
            "/rs",
            header(json!({"alg": "RS256", "kid": "k1", "crit": ["urn:x"], "urn:x": 1})),
            401,
            "unknown_crit",
        ),
        ("over 8 KiB", "/rs", good.sign(&big), 401, "oversized"),
    ];
    for (name, path, token, status, reason) in &cases {
        let provider = if *path == "/rs" { &rs } else { &mixed };
        let before = decisions(&weir, provider, reason).await;
        let r = get_with(&weir, path, token, &[]).await;
        assert_eq!(r.status, *status, "{name}: {}", r.text());
        let challenge = r.header("www-authenticate").unwrap_or_default().to_owned();
        if *reason == "missing" {
            assert_eq!(challenge, "Bearer realm=\"weir\"", "{name}");
        } else {
            assert!(
                challenge.starts_with(
                    "Bearer realm=\"weir\", error=\"invalid_token\", error_description=\""
                ),
                "{name}: {challenge}"
            );
        }
        assert!(
            token.is_empty()
                || !challenge.contains(token.as_str()) && !r.text().contains(token.as_str()),
            "{name}: token echoed"
        );
        assert_eq!(r.json()["error"], json!("unauthorized"), "{name}");
        assert_eq!(backend.requests(), 0, "{name} reached the backend");
        let after = decisions(&weir, provider, reason).await;
        assert_eq!(after, before + 1.0, "{name}: reason {reason} counted once");
    }
    // And the real thing still works.
    let r = get_with(&weir, "/rs", &valid, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend.requests(), 1);
    weir.stop().await;
}
