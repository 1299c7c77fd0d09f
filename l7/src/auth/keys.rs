//! Verification keys: an HMAC secret, PEM public keys, and JSON Web Key
//! Sets (from a file or fetched by [`super::jwks`]).
//!
//! A [`KeySet`] is immutable; a refresh builds a new one and swaps it in.
//! Each key knows its algorithm family (from jsonwebtoken's parsing, never
//! from the token), its `kid` and, when the JWK says so, its one `alg`.
//! JWKS parsing is per key: a key weir cannot use (an encryption key, an
//! unsupported type or curve) is skipped, not fatal to the whole set.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// Most keys a JWKS may hold; past it the rest are ignored (a sane IdP
/// publishes a handful).
pub const MAX_JWKS_KEYS: usize = 64;

/// One verification key.
#[derive(Clone)]
pub struct Key {
    /// The JWK `kid`; `None` for local keys (they match any `kid`).
    pub kid: Option<String>,
    /// The one algorithm this key is for, when its JWK names it.
    pub alg: Option<Algorithm>,
    /// The parsed key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("family", &self.key.family())
            .finish_non_exhaustive()
    }
}

impl Key {
    /// The key's algorithm family (HMAC, RSA, EC, Ed).
    pub fn family(&self) -> AlgorithmFamily {
        self.key.family()
    }

    /// An HMAC secret (must not be empty).
    pub fn hmac(secret: &[u8]) -> Result<Key, String> {
        let key = DecodingKey::from_secret(secret).map_err(|_| "the HMAC secret is empty")?;
        Ok(Key {
            kid: None,
            alg: None,
            key,
        })
    }

    /// A PEM public key: RSA (`PUBLIC KEY` or `RSA PUBLIC KEY`), EC or
    /// Ed25519 (`PUBLIC KEY`).
    pub fn pem(pem: &[u8]) -> Result<Key, String> {
        let key = DecodingKey::from_rsa_pem(pem)
            .or_else(|_| DecodingKey::from_ec_pem(pem))
            .or_else(|_| DecodingKey::from_ed_pem(pem))
            .map_err(|_| "not a PEM RSA, EC or Ed25519 public key".to_owned())?;
        Ok(Key {
            kid: None,
            alg: None,
            key,
        })
    }

    /// A signature key from a JWK, or `None` when weir cannot or must not
    /// use it (encryption key, unknown type, curve or algorithm).
    pub fn from_jwk(jwk: &Jwk) -> Option<Key> {
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            return None;
        }
        let alg = match jwk.common.key_algorithm {
            Some(a) => Some(Algorithm::try_from(a).ok()?),
            None => None,
        };
        match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(p) if p.curve != EllipticCurve::Ed25519 => {
                return None;
            }
            AlgorithmParameters::EllipticCurve(p)
                if !matches!(p.curve, EllipticCurve::P256 | EllipticCurve::P384) =>
            {
                return None;
            }
            _ => {}
        }
        let key = DecodingKey::from_jwk(jwk).ok()?;
        if alg.is_some_and(|a| a.family() != key.family()) {
            return None;
        }
        Some(Key {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        })
    }
}

/// An immutable set of keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// A set of `keys`.
    pub fn new(keys: Vec<Key>) -> Self {
        Self { keys }
    }

    /// Parses a JWKS document (`{"keys": [...]}`). Unusable keys are
    /// skipped; a document with no usable key is an error (so a broken
    /// refresh never replaces a good set with an empty one).
    pub fn from_jwks(json: &[u8]) -> Result<KeySet, String> {
        let doc: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
        let list = doc
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or("no \"keys\" array")?;
        let keys: Vec<Key> = list
            .iter()
            .take(MAX_JWKS_KEYS)
            .filter_map(|v| serde_json::from_value::<Jwk>(v.clone()).ok())
            .filter_map(|jwk| Key::from_jwk(&jwk))
            .collect();
        if keys.is_empty() {
            return Err(format!("none of its {} keys is usable", list.len()));
        }
        Ok(KeySet { keys })
    }

    /// The keys.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds the keys of `other`.
    pub fn extend(&mut self, other: KeySet) {
        self.keys.extend(other.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_skips_unusable_keys_and_refuses_an_empty_set() {
        let doc = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"h"},
            {"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB","kid":"enc"},
            {"kty":"OKP","crv":"X25519","x":"AAAA","kid":"x"},
            {"kty":"weird","kid":"w"},
            {"kty":"EC","crv":"P-256","alg":"RS256","x":"AAAA","y":"AAAA","kid":"mismatch"}
        ]}"#;
        let set = KeySet::from_jwks(doc).unwrap();
        let kids: Vec<_> = set.keys().iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("h")]);
        assert!(KeySet::from_jwks(br#"{"keys":[]}"#).is_err());
        assert!(KeySet::from_jwks(b"[]").is_err());
        assert!(KeySet::from_jwks(b"\xff").is_err());
    }

    #[test]
    fn pem_refuses_garbage_and_secrets_must_not_be_empty() {
        assert!(Key::pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
        assert!(Key::pem(b"").is_err());
        assert!(Key::hmac(b"").is_err());
        assert_eq!(Key::hmac(b"s").unwrap().family(), AlgorithmFamily::Hmac);
    }
}
