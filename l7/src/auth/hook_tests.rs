//! [`Auth::check`] on a request head: claims to headers (forged copies
//! removed), the token stripped, [`Claims`] in the extensions; start-up
//! errors name the file, never the secret.

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use weir_config::auth::{JwtAlgorithm, JwtProvider, SecretSource};

use super::{Auth, Claims, Provider};

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("weir-auth-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn config(secret: std::path::PathBuf) -> JwtProvider {
    let mut p = JwtProvider::with_defaults("unit", "iss", &[JwtAlgorithm::Hs256]);
    p.keys.hmac_secret = Some(SecretSource::File(secret));
    p.claims_to_headers = vec![
        ("sub".into(), "x-user".into()),
        ("roles".into(), "x-roles".into()),
    ];
    p
}

fn hs256(secret: &[u8], claims: &str) -> String {
    let b64 = |s: &[u8]| URL_SAFE_NO_PAD.encode(s);
    let input = format!("{}.{}", b64(br#"{"alg":"HS256"}"#), b64(claims.as_bytes()));
    let key = hmac_sha256(secret, input.as_bytes());
    format!("{input}.{}", b64(&key))
}

/// HMAC-SHA256 through jsonwebtoken's signer (the same backend).
fn hmac_sha256(secret: &[u8], input: &[u8]) -> Vec<u8> {
    let key = jsonwebtoken::EncodingKey::from_secret(secret).unwrap();
    let sig = jsonwebtoken::crypto::sign(input, &key, jsonwebtoken::Algorithm::HS256).unwrap();
    URL_SAFE_NO_PAD.decode(sig).unwrap()
}

#[tokio::test]
async fn admits_with_claim_headers_and_claims_in_extensions() {
    // A trailing newline in the file is not part of the secret.
    let path = temp_file("secret", b"s3cret\n");
    let auth = Auth::new(&[config(path.clone())]).unwrap();
    let exp = super::unix_now() + 60;
    let token = hs256(
        b"s3cret",
        &format!(r#"{{"iss":"iss","exp":{exp},"sub":"alice","roles":["a","b"]}}"#),
    );
    let mut parts = http::Request::builder()
        .uri("/")
        .header("authorization", format!("Bearer {token}"))
        .header("x-user", "mallory")
        .header("x-roles", "admin")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    auth.check(&[0], &mut parts, "rid").await.unwrap();
    assert_eq!(parts.headers.get_all("x-user").iter().count(), 1);
    assert_eq!(parts.headers["x-user"], "alice");
    assert_eq!(parts.headers["x-roles"], "a,b");
    assert!(parts.headers.get("authorization").is_none());
    let claims = parts.extensions.get::<Claims>().unwrap();
    assert_eq!(claims.provider(), "unit");
    assert_eq!(claims.str("sub"), Some("alice"));

    // Refused: forged headers are gone too, and the answer is the challenge.
    let mut parts = http::Request::builder()
        .uri("/")
        .header("x-user", "mallory")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let refusal = auth.check(&[0], &mut parts, "rid").await.unwrap_err();
    assert_eq!(refusal.status(), 401);
    assert!(parts.headers.get("x-user").is_none());
    assert!(parts.extensions.get::<Claims>().is_none());
    let _ = std::fs::remove_file(path);
}

#[test]
fn start_up_errors_name_the_file_not_the_secret() {
    let garbage = temp_file(
        "garbage.pem",
        b"-----BEGIN PUBLIC KEY-----\nc2VjcmV0\n-----END PUBLIC KEY-----\n",
    );
    let mut cfg = config(temp_file("s2", b"topsecret"));
    cfg.keys.public_key_files = vec![garbage.clone()];
    let err = Provider::new(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("garbage.pem") && !err.contains("topsecret"),
        "{err}"
    );
    cfg.keys.public_key_files.clear();
    cfg.keys.hmac_secret = Some(SecretSource::Env("WEIR_TEST_SURELY_UNSET_VARIABLE".into()));
    let err = Provider::new(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("WEIR_TEST_SURELY_UNSET_VARIABLE is not set"),
        "{err}"
    );
    let _ = std::fs::remove_file(garbage);
}

#[tokio::test]
async fn a_cached_token_is_still_checked_for_expiry() {
    let path = temp_file("secret-cache", b"k");
    let p = Provider::new(&config(path.clone())).unwrap();
    let token = hs256(b"k", r#"{"iss":"iss","exp":1000}"#);
    assert!(p.authenticate(&token, 900).await.is_ok());
    assert_eq!(p.cache.len(), 1);
    assert_eq!(
        p.authenticate(&token, 1060).await.unwrap_err(),
        super::Reason::Expired,
        "exp + leeway passed: the cache does not help"
    );
    // A token that never verified is never cached.
    let forged = hs256(b"other", r#"{"iss":"iss","exp":1000}"#);
    assert!(p.authenticate(&forged, 900).await.is_err());
    assert_eq!(p.cache.len(), 1);
    let _ = std::fs::remove_file(path);
}
