//! Test keys and tokens: every algorithm's key generated here with aws-lc-rs
//! and every token signed here, independently of the crate weir verifies
//! with. Public halves as JWKs and PEM.

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use aws_lc_rs::{hmac, rsa};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// Every algorithm weir supports.
pub const ALL: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum Signer {
    Hmac(Vec<u8>),
    Rsa(&'static rsa::KeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key for one algorithm, with its `kid`.
pub struct TestKey {
    pub alg: &'static str,
    pub kid: String,
    signer: Signer,
}

/// One RSA key for all RS*/PS* tests (generation is the slow part).
fn rsa_key() -> &'static rsa::KeyPair {
    static KEY: OnceLock<rsa::KeyPair> = OnceLock::new();
    KEY.get_or_init(|| rsa::KeyPair::generate(rsa::KeySize::Rsa2048).unwrap())
}

/// A second RSA key (for "signed by someone else").
pub fn other_rsa_key() -> &'static rsa::KeyPair {
    static KEY: OnceLock<rsa::KeyPair> = OnceLock::new();
    KEY.get_or_init(|| rsa::KeyPair::generate(rsa::KeySize::Rsa2048).unwrap())
}

/// The HMAC secret of the HS* tests.
pub const SECRET: &[u8] = b"a test secret of thirty-two bytes";

impl TestKey {
    /// A fresh key for `alg` (RSA keys are shared).
    pub fn new(alg: &'static str, kid: &str) -> TestKey {
        let signer = match alg {
            "HS256" | "HS384" | "HS512" => Signer::Hmac(SECRET.to_vec()),
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => Signer::Rsa(rsa_key()),
            "ES256" => Signer::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
            ),
            "ES384" => Signer::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap(),
            ),
            "EdDSA" => Signer::Ed(Ed25519KeyPair::generate().unwrap()),
            other => panic!("no such algorithm {other}"),
        };
        TestKey {
            alg,
            kid: kid.to_owned(),
            signer,
        }
    }

    /// An RSA key for `alg` that weir does not know.
    pub fn foreign_rsa(alg: &'static str, kid: &str) -> TestKey {
        TestKey {
            alg,
            kid: kid.to_owned(),
            signer: Signer::Rsa(other_rsa_key()),
        }
    }

    /// An HMAC key with another secret.
    pub fn hmac_with(alg: &'static str, secret: &[u8]) -> TestKey {
        TestKey {
            alg,
            kid: String::new(),
            signer: Signer::Hmac(secret.to_vec()),
        }
    }

    /// Signs `signing_input` as `alg` says (which may lie about the key).
    pub fn raw_sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Hmac(secret) => {
                let a = match alg {
                    "HS384" => hmac::HMAC_SHA384,
                    "HS512" => hmac::HMAC_SHA512,
                    _ => hmac::HMAC_SHA256,
                };
                hmac::sign(&hmac::Key::new(a, secret), input)
                    .as_ref()
                    .to_vec()
            }
            Signer::Rsa(k) => {
                let padding: &'static dyn signature::RsaEncoding = match alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    _ => &signature::RSA_PSS_SHA512,
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(padding, &rng, input, &mut sig).unwrap();
                sig
            }
            Signer::Ec(k) => k.sign(&rng, input).unwrap().as_ref().to_vec(),
            Signer::Ed(k) => k.sign(input).as_ref().to_vec(),
        }
    }

    /// A token with this header and claims, signed with this key.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let alg = header["alg"].as_str().unwrap_or(self.alg).to_owned();
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let sig = self.raw_sign(&alg, input.as_bytes());
        format!("{input}.{}", b64(sig))
    }

    /// A token with the usual header (`alg`, `kid` when set, `typ`).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = json!({ "alg": self.alg, "typ": "JWT" });
        if !self.kid.is_empty() {
            header["kid"] = json!(self.kid);
        }
        self.sign_with_header(&header, claims)
    }

    /// The public key as a JWK (with `kid` and `alg`); HMAC as `oct`.
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.signer {
            Signer::Hmac(secret) => json!({ "kty": "oct", "k": b64(secret) }),
            Signer::Rsa(k) => json!({
                "kty": "RSA",
                "n": b64(k.public_key().modulus().big_endian_without_leading_zero()),
                "e": b64(k.public_key().exponent().big_endian_without_leading_zero()),
            }),
            Signer::Ec(k) => {
                let point = k.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                json!({
                    "kty": "EC",
                    "crv": if half == 32 { "P-256" } else { "P-384" },
                    "x": b64(&point[1..=half]),
                    "y": b64(&point[1 + half..]),
                })
            }
            Signer::Ed(k) => {
                json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref()) })
            }
        };
        if !self.kid.is_empty() {
            jwk["kid"] = json!(self.kid);
        }
        jwk["alg"] = json!(self.alg);
        jwk
    }

    /// The public key as PEM (`BEGIN PUBLIC KEY`).
    pub fn pem(&self) -> String {
        let der: Vec<u8> = match &self.signer {
            Signer::Hmac(_) => panic!("an HMAC secret has no PEM"),
            Signer::Rsa(k) => k.public_key().as_der().unwrap().as_ref().to_vec(),
            Signer::Ec(k) => k.public_key().as_der().unwrap().as_ref().to_vec(),
            Signer::Ed(k) => k.public_key().as_der().unwrap().as_ref().to_vec(),
        };
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }
}

/// A JWKS document of `keys`.
pub fn jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }).to_string()
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Good claims for issuer `iss`, audience `api`, subject `sub`, valid for
/// ten minutes.
pub fn claims(iss: &str, sub: &str) -> Value {
    json!({ "iss": iss, "aud": "api", "sub": sub, "exp": now() + 600, "iat": now(), "scope": "read write" })
}
