//! The verification core: token text in, claims or a [`Reason`] out.
//!
//! Pure and synchronous, with the clock passed in (`now`, Unix seconds) so
//! tests can pin it. The order is fixed and cheap checks come first: size,
//! shape, header policy (`alg` allowed and never `none`; no `jwk`, `jku`,
//! `x5u`, `x5c`; no `crit`), key choice by `kid` and by the algorithm's
//! family (an HMAC `alg` is only ever checked against an HMAC secret, so a
//! public key can never serve as one), then the signature (jsonwebtoken,
//! aws-lc-rs), and only then the claims.

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use weir_config::auth::JwtProvider;

use super::keys::{Key, KeySet};
use super::reason::Reason;

/// Most keys one token's signature is tried against (a token without
/// `kid` against a large set): bounds the CPU a bogus token can cost.
const MAX_CANDIDATES: usize = 8;

/// The claims of a token, as JSON.
pub type ClaimMap = Map<String, Value>;

/// A token whose signature verified.
#[derive(Debug)]
pub struct Signed {
    /// The algorithm it was signed with.
    pub alg: Algorithm,
    /// The decoded payload (not yet known to be JSON).
    pub payload: Vec<u8>,
}

fn b64(part: &str) -> Result<Vec<u8>, Reason> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| Reason::Malformed)
}

/// The unverified `kid`, read only to pick keys.
fn header_kid(header: &Map<String, Value>) -> Result<Option<&str>, Reason> {
    match header.get("kid") {
        None => Ok(None),
        Some(Value::String(k)) => Ok(Some(k)),
        Some(_) => Err(Reason::Malformed),
    }
}

/// Checks size, shape, header policy, key choice and signature.
/// `sets` are searched in order; `allowed` are the provider's algorithms.
pub fn verify_signature(
    token: &str,
    max_bytes: usize,
    allowed: &[Algorithm],
    sets: &[&KeySet],
) -> Result<Signed, Reason> {
    if token.len() > max_bytes {
        return Err(Reason::Oversized);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reason::Malformed);
    };
    if h.is_empty() || s.is_empty() {
        return Err(Reason::Malformed);
    }
    let header: Map<String, Value> =
        serde_json::from_slice(&b64(h)?).map_err(|_| Reason::Malformed)?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => name,
        _ => return Err(Reason::Malformed),
    };
    // `none` (any spelling) and anything not listed.
    let alg = Algorithm::from_str(alg)
        .ok()
        .filter(|a| allowed.contains(a))
        .ok_or(Reason::AlgNotAllowed)?;
    if ["jwk", "jku", "x5u", "x5c"]
        .iter()
        .any(|k| header.contains_key(*k))
    {
        return Err(Reason::EmbeddedKey);
    }
    if header.contains_key("crit") {
        return Err(Reason::UnknownCrit);
    }
    if header.get("b64").is_some_and(|v| v != &Value::Bool(true)) {
        return Err(Reason::Malformed);
    }
    let kid = header_kid(&header)?;
    let payload = b64(p)?;
    let signature_ok = b64(s)?;
    if signature_ok.is_empty() {
        return Err(Reason::Malformed);
    }

    let by_kid: Vec<&Key> = sets
        .iter()
        .flat_map(|set| set.keys())
        .filter(|k| match (&k.kid, kid) {
            (Some(have), Some(want)) => have == want,
            _ => true,
        })
        .collect();
    if by_kid.is_empty() {
        return Err(if sets.iter().all(|s| s.is_empty()) {
            Reason::NoKeys
        } else {
            Reason::UnknownKid
        });
    }
    let candidates: Vec<&Key> = by_kid
        .into_iter()
        .filter(|k| k.family() == alg.family() && k.alg.is_none_or(|a| a == alg))
        .take(MAX_CANDIDATES)
        .collect();
    if candidates.is_empty() {
        return Err(Reason::KeyMismatch);
    }
    let signing_input = &token[..h.len() + 1 + p.len()];
    for key in candidates {
        if let Ok(true) = jsonwebtoken::crypto::verify(s, signing_input.as_bytes(), &key.key, alg) {
            return Ok(Signed { alg, payload });
        }
    }
    Err(Reason::BadSignature)
}

/// Reads a NumericDate claim: absent, a number of seconds, or malformed.
fn numeric(claims: &ClaimMap, name: &str) -> Result<Option<f64>, Reason> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(Reason::Malformed),
        },
    }
}

/// The scopes a token grants: `scope` (space separated) and `scp` (a list,
/// or a space-separated string).
fn scopes(claims: &ClaimMap) -> Vec<&str> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split_ascii_whitespace()),
            Some(Value::Array(list)) => out.extend(list.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    out
}

/// Checks the claims of a verified token at `now` (Unix seconds).
pub fn check_claims(cfg: &JwtProvider, claims: &ClaimMap, now: u64) -> Result<(), Reason> {
    let now = now as f64;
    let leeway = cfg.leeway.as_secs_f64();
    match numeric(claims, "exp")? {
        None => return Err(Reason::MissingClaim),
        Some(exp) if now >= exp + leeway => return Err(Reason::Expired),
        Some(_) => {}
    }
    if let Some(nbf) = numeric(claims, "nbf")?
        && nbf > now + leeway
    {
        return Err(Reason::NotYetValid);
    }
    if claims.get("iss").and_then(Value::as_str) != Some(cfg.issuer.as_str()) {
        return Err(Reason::BadIssuer);
    }
    if !cfg.audiences.is_empty() {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => cfg.audiences.iter().any(|w| w == a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| cfg.audiences.iter().any(|w| w == a)),
            _ => false,
        };
        if !ok {
            return Err(Reason::BadAudience);
        }
    }
    if cfg
        .required_claims
        .iter()
        .any(|c| claims.get(c).is_none_or(Value::is_null))
    {
        return Err(Reason::MissingClaim);
    }
    if !cfg.required_scopes.is_empty() {
        let granted = scopes(claims);
        if !cfg
            .required_scopes
            .iter()
            .all(|s| granted.contains(&s.as_str()))
        {
            return Err(Reason::InsufficientScope);
        }
    }
    Ok(())
}

/// The whole check: signature, then claims.
pub fn verify(
    cfg: &JwtProvider,
    allowed: &[Algorithm],
    sets: &[&KeySet],
    token: &str,
    now: u64,
) -> Result<ClaimMap, Reason> {
    let signed = verify_signature(token, cfg.max_token_bytes, allowed, sets)?;
    let claims: ClaimMap =
        serde_json::from_slice(&signed.payload).map_err(|_| Reason::Malformed)?;
    check_claims(cfg, &claims, now)?;
    Ok(claims)
}

/// The unverified `iss` of a token, to try the provider it names first
/// when a route accepts several. Never trusted for anything else.
pub fn peek_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let claims: ClaimMap = serde_json::from_slice(&b64(payload).ok()?).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Maps our configuration's algorithm to jsonwebtoken's.
pub fn algorithm(a: weir_config::auth::JwtAlgorithm) -> Algorithm {
    use weir_config::auth::JwtAlgorithm as J;
    match a {
        J::Hs256 => Algorithm::HS256,
        J::Hs384 => Algorithm::HS384,
        J::Hs512 => Algorithm::HS512,
        J::Rs256 => Algorithm::RS256,
        J::Rs384 => Algorithm::RS384,
        J::Rs512 => Algorithm::RS512,
        J::Ps256 => Algorithm::PS256,
        J::Ps384 => Algorithm::PS384,
        J::Ps512 => Algorithm::PS512,
        J::Es256 => Algorithm::ES256,
        J::Es384 => Algorithm::ES384,
        J::EdDsa => Algorithm::EdDSA,
    }
}
