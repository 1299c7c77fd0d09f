//! Published test vectors verify with their published keys: RFC 7515
//! appendix A.1–A.3 (HS256, RS256, ES256) and RFC 8037 A.4 (Ed25519), with
//! the clock pinned before the vectors' `exp` (2011-03-22). Plus the policy
//! checks that need no network: tampering, `alg`, headers, claims.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use weir_config::auth::{JwtAlgorithm, JwtProvider};

use super::keys::{Key, KeySet};
use super::reason::Reason;
use super::verify::{check_claims, verify, verify_signature};

/// The vectors' payload: `{"iss":"joe", "exp":1300819380, "http://example.com/is_root":true}`.
const PAYLOAD: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
/// Shortly before the vectors' `exp`.
const THEN: u64 = 1_300_819_000;

const A1: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const A1_KEY: &str = r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#;

const A2_SIG: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const A2_KEY: &str = r#"{"kty":"RSA","e":"AQAB","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"}"#;

const A3_SIG: &str =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
const A3_KEY: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

/// RFC 8037 A.4: payload "Example of Ed25519 signing" (not a claims set).
const ED: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
const ED_KEY: &str =
    r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

fn set(jwk: &str) -> KeySet {
    let jwk: Jwk = serde_json::from_str(jwk).unwrap();
    KeySet::new(vec![Key::from_jwk(&jwk).unwrap()])
}

fn provider(algorithms: &[JwtAlgorithm]) -> JwtProvider {
    let mut p = JwtProvider::with_defaults("rfc", "joe", algorithms);
    p.leeway = Duration::from_secs(0);
    p
}

fn check(token: &str, alg: JwtAlgorithm, key: &str, now: u64) -> Result<(), Reason> {
    let cfg = provider(&[alg]);
    let allowed = [super::verify::algorithm(alg)];
    verify(&cfg, &allowed, &[&set(key)], token, now).map(|_| ())
}

#[test]
fn rfc7515_a1_hs256() {
    assert_eq!(check(A1, JwtAlgorithm::Hs256, A1_KEY, THEN), Ok(()));
    assert_eq!(
        check(A1, JwtAlgorithm::Hs256, A1_KEY, 1_300_819_380),
        Err(Reason::Expired),
        "exp is exclusive"
    );
}

#[test]
fn rfc7515_a2_rs256() {
    let token = format!("eyJhbGciOiJSUzI1NiJ9.{PAYLOAD}.{A2_SIG}");
    assert_eq!(check(&token, JwtAlgorithm::Rs256, A2_KEY, THEN), Ok(()));
    assert_eq!(
        check(&token, JwtAlgorithm::Rs256, A2_KEY, THEN + 10_000),
        Err(Reason::Expired)
    );
}

#[test]
fn rfc7515_a3_es256() {
    let token = format!("eyJhbGciOiJFUzI1NiJ9.{PAYLOAD}.{A3_SIG}");
    assert_eq!(check(&token, JwtAlgorithm::Es256, A3_KEY, THEN), Ok(()));
}

#[test]
fn rfc8037_a4_ed25519() {
    let signed = verify_signature(ED, 8192, &[Algorithm::EdDSA], &[&set(ED_KEY)]).unwrap();
    assert_eq!(signed.payload, b"Example of Ed25519 signing");
    // Its payload is not a claims set: as a JWT it is malformed, after the
    // signature verified.
    assert_eq!(
        check(ED, JwtAlgorithm::EdDsa, ED_KEY, THEN),
        Err(Reason::Malformed)
    );
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn tampering_and_header_policy() {
    let (h, p, s) = {
        let mut it = A1.split('.');
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
    };
    let hs = |token: &str| check(token, JwtAlgorithm::Hs256, A1_KEY, THEN);
    // Tampered payload, same signature.
    let evil = b64(r#"{"iss":"joe","exp":1300819380,"http://example.com/is_root":false}"#);
    assert_eq!(hs(&format!("{h}.{evil}.{s}")), Err(Reason::BadSignature));
    // alg none, in any spelling, and with no signature.
    for none in ["none", "None", "NONE"] {
        let header = b64(&format!(r#"{{"alg":"{none}"}}"#));
        assert_eq!(hs(&format!("{header}.{p}.")), Err(Reason::Malformed));
        assert_eq!(hs(&format!("{header}.{p}.{s}")), Err(Reason::AlgNotAllowed));
    }
    // An algorithm not in the list.
    let hs384 = b64(r#"{"alg":"HS384"}"#);
    assert_eq!(hs(&format!("{hs384}.{p}.{s}")), Err(Reason::AlgNotAllowed));
    // Embedded and remote keys, crit.
    for extra in [
        r#""jwk":{"kty":"oct","k":"AAAA"}"#,
        r#""jku":"http://127.0.0.1:1/keys""#,
        r#""x5u":"http://127.0.0.1:1/cert""#,
        r#""x5c":["AAAA"]"#,
    ] {
        let header = b64(&format!(r#"{{"alg":"HS256",{extra}}}"#));
        assert_eq!(
            hs(&format!("{header}.{p}.{s}")),
            Err(Reason::EmbeddedKey),
            "{extra}"
        );
    }
    let crit = b64(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#);
    assert_eq!(hs(&format!("{crit}.{p}.{s}")), Err(Reason::UnknownCrit));
    // Malformed shapes.
    for bad in [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "!!.b.c",
        &format!("{h}.{p}.{s}=="),
        &format!("{}.{p}.{s}", b64("[1]")),
        &format!("{}.{p}.{s}", b64(r#"{"alg":5}"#)),
        &format!("{}.{p}.{s}", b64(r#"{"alg":"HS256","kid":7}"#)),
    ] {
        assert_eq!(hs(bad), Err(Reason::Malformed), "{bad:?}");
    }
    // Too large, before any decoding.
    let big = format!("{h}.{}.{s}", "A".repeat(9000));
    assert_eq!(hs(&big), Err(Reason::Oversized));
}

#[test]
fn algorithm_confusion_and_kid_choice() {
    // RS256 → HS256: a token MACed with the RSA public key's bytes as the
    // secret, against a provider that allows both: the RSA key is never an
    // HMAC key.
    let rsa = set(A2_KEY);
    let header = b64(r#"{"alg":"HS256"}"#);
    let token = format!("{header}.{PAYLOAD}.{}", b64("forged-mac-of-any-kind"));
    let allowed = [Algorithm::RS256, Algorithm::HS256];
    let cfg = provider(&[JwtAlgorithm::Rs256, JwtAlgorithm::Hs256]);
    assert_eq!(
        verify(&cfg, &allowed, &[&rsa], &token, THEN).map(|_| ()),
        Err(Reason::KeyMismatch)
    );

    // A kid no key has; an empty set.
    let with_kid: Jwk =
        serde_json::from_str(&A1_KEY.replace("\"kty\"", "\"kid\":\"k1\",\"kty\"")).unwrap();
    let kids = KeySet::new(vec![Key::from_jwk(&with_kid).unwrap()]);
    let header = b64(r#"{"alg":"HS256","kid":"other"}"#);
    let token = format!("{header}.{PAYLOAD}.{}", b64("x"));
    let hs = [Algorithm::HS256];
    let cfg = provider(&[JwtAlgorithm::Hs256]);
    assert_eq!(
        verify(&cfg, &hs, &[&kids], &token, THEN).map(|_| ()),
        Err(Reason::UnknownKid)
    );
    let empty = KeySet::default();
    assert_eq!(
        verify(&cfg, &hs, &[&empty], &token, THEN).map(|_| ()),
        Err(Reason::NoKeys)
    );
}

#[test]
fn claims_policy() {
    let claims = |json: &str| serde_json::from_str::<super::verify::ClaimMap>(json).unwrap();
    let mut cfg = provider(&[JwtAlgorithm::Hs256]);
    cfg.leeway = Duration::from_secs(60);
    cfg.audiences = vec!["api".into()];
    cfg.required_claims = vec!["sub".into()];
    cfg.required_scopes = vec!["read".into(), "write".into()];
    let ok = r#"{"iss":"joe","exp":1000,"aud":["x","api"],"sub":"u","scope":"read write"}"#;
    assert_eq!(
        check_claims(&cfg, &claims(ok), 1000 + 59),
        Ok(()),
        "within leeway"
    );
    assert_eq!(
        check_claims(&cfg, &claims(ok), 1000 + 60),
        Err(Reason::Expired)
    );
    let cases = [
        (
            r#"{"iss":"joe","aud":"api","sub":"u","scope":"read write"}"#,
            Reason::MissingClaim,
        ),
        (
            r#"{"iss":"joe","exp":"soon","aud":"api","sub":"u"}"#,
            Reason::Malformed,
        ),
        (
            r#"{"iss":"joe","exp":2000,"nbf":1061,"aud":"api","sub":"u","scope":"read write"}"#,
            Reason::NotYetValid,
        ),
        (
            r#"{"iss":"eve","exp":2000,"aud":"api","sub":"u","scope":"read write"}"#,
            Reason::BadIssuer,
        ),
        (
            r#"{"exp":2000,"aud":"api","sub":"u","scope":"read write"}"#,
            Reason::BadIssuer,
        ),
        (
            r#"{"iss":"joe","exp":2000,"aud":"other","sub":"u","scope":"read write"}"#,
            Reason::BadAudience,
        ),
        (
            r#"{"iss":"joe","exp":2000,"sub":"u","scope":"read write"}"#,
            Reason::BadAudience,
        ),
        (
            r#"{"iss":"joe","exp":2000,"aud":"api","scope":"read write"}"#,
            Reason::MissingClaim,
        ),
        (
            r#"{"iss":"joe","exp":2000,"aud":"api","sub":"u","scope":"read"}"#,
            Reason::InsufficientScope,
        ),
    ];
    for (json, want) in cases {
        assert_eq!(check_claims(&cfg, &claims(json), 1000), Err(want), "{json}");
    }
    let scp = r#"{"iss":"joe","exp":2000,"aud":"api","sub":"u","scp":["write","read"]}"#;
    assert_eq!(check_claims(&cfg, &claims(scp), 1000), Ok(()));
}

/// The A.1 provider's decision on `token` (fuzzing entry point).
pub(super) fn hs256_case(token: &str) -> Result<(), Reason> {
    check(token, JwtAlgorithm::Hs256, A1_KEY, THEN)
}

/// A.1 with byte `pos` (mod its length) replaced by `byte`: refused, unless
/// the replacement changed nothing (or only the signature's unused bits
/// are at stake, which strict base64 refuses as malformed anyway).
pub(super) fn mutate_check(pos: usize, byte: u8) {
    let mut bytes = A1.as_bytes().to_vec();
    let pos = pos % bytes.len();
    let same = bytes[pos] == byte;
    bytes[pos] = byte;
    let Ok(token) = std::str::from_utf8(&bytes) else {
        return;
    };
    let got = hs256_case(token);
    if same {
        assert_eq!(got, Ok(()));
    } else {
        assert!(got.is_err(), "mutation at {pos} to {byte:#x} accepted");
    }
}
