//! JWT providers: the validated settings routes refer to with `auth`.
//!
//! Only settings live here: key material is read by the gateway at
//! start-up (weir-l7 `auth`), from the files, environment variable or URL
//! named here. Validation checks that the files can be read, so `weir
//! check` reports a missing key file at the field that names it.

use std::path::PathBuf;
use std::time::Duration;

/// A JWS signature algorithm weir verifies. There is no `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256.
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl JwtAlgorithm {
    /// Every algorithm with its `alg` name.
    pub const ALL: [(&'static str, JwtAlgorithm); 12] = [
        ("HS256", Self::Hs256),
        ("HS384", Self::Hs384),
        ("HS512", Self::Hs512),
        ("RS256", Self::Rs256),
        ("RS384", Self::Rs384),
        ("RS512", Self::Rs512),
        ("PS256", Self::Ps256),
        ("PS384", Self::Ps384),
        ("PS512", Self::Ps512),
        ("ES256", Self::Es256),
        ("ES384", Self::Es384),
        ("EdDSA", Self::EdDsa),
    ];

    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("?", |(n, _)| n)
    }

    /// The algorithm named `name` (exact JWS spelling).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// True for the HMAC (shared secret) algorithms.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::Hs256 | Self::Hs384 | Self::Hs512)
    }
}

/// Where a request carries its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// A request header (lowercase name); a leading `Bearer ` is accepted.
    Header(String),
    /// A cookie.
    Cookie(String),
    /// A query parameter.
    Query(String),
}

/// Where an HMAC secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file (resolved against the configuration file's directory).
    File(PathBuf),
    /// An environment variable, read at start-up.
    Env(String),
}

impl std::fmt::Debug for SecretSource {
    // Names only; the secret itself is never in the config.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "File({})", p.display()),
            Self::Env(n) => write!(f, "Env({n})"),
        }
    }
}

/// A remote JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrl {
    /// The URL (`https://host[:port]/path` or `http://…`).
    pub url: String,
    /// Trusted authorities for an `https` URL; `None` = the system bundle.
    pub ca_file: Option<std::path::PathBuf>,
    /// Fetched again this often.
    pub refresh: Duration,
    /// Least time between two fetches caused by an unknown `kid`.
    pub cooldown: Duration,
}

/// The key sources of a provider (any mix; at least one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeySources {
    /// The HMAC secret.
    pub hmac_secret: Option<SecretSource>,
    /// PEM public key files.
    pub public_key_files: Vec<PathBuf>,
    /// A JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL.
    pub jwks_url: Option<JwksUrl>,
}

/// A validated `[[jwt_providers]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtProvider {
    /// Unique name (metric label).
    pub name: String,
    /// The required `iss`.
    pub issuer: String,
    /// Accepted audiences; empty = `aud` not checked.
    pub audiences: Vec<String>,
    /// Allowed algorithms (at least one, no duplicates).
    pub algorithms: Vec<JwtAlgorithm>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Claims that must be present (besides `exp`).
    pub required_claims: Vec<String>,
    /// Scopes that must all be granted.
    pub required_scopes: Vec<String>,
    /// Where the token is read from.
    pub source: TokenSource,
    /// Where the keys come from.
    pub keys: KeySources,
    /// `(claim, lowercase header name)` pairs forwarded to the backend.
    pub claims_to_headers: Vec<(String, String)>,
    /// Forward the token to the backend (else it is removed).
    pub forward_token: bool,
    /// Longest token accepted, bytes.
    pub max_token_bytes: usize,
    /// The challenge's realm.
    pub realm: String,
}

impl JwtProvider {
    /// A provider with the configuration file's defaults (Bearer token,
    /// 60 s leeway, 8 KiB tokens, token stripped, realm `weir`, no keys,
    /// audiences, required claims or scopes): for tests and benchmarks.
    pub fn with_defaults(name: &str, issuer: &str, algorithms: &[JwtAlgorithm]) -> Self {
        Self {
            name: name.to_owned(),
            issuer: issuer.to_owned(),
            audiences: Vec::new(),
            algorithms: algorithms.to_vec(),
            leeway: Duration::from_secs(60),
            required_claims: Vec::new(),
            required_scopes: Vec::new(),
            source: TokenSource::Bearer,
            keys: KeySources::default(),
            claims_to_headers: Vec::new(),
            forward_token: false,
            max_token_bytes: 8192,
            realm: "weir".to_owned(),
        }
    }

    /// One line for `weir check`: names and counts, never secrets.
    pub fn summary(&self) -> String {
        let algs: Vec<&str> = self.algorithms.iter().map(|a| a.name()).collect();
        let mut keys = Vec::new();
        match &self.keys.hmac_secret {
            Some(SecretSource::File(p)) => keys.push(format!("secret file {}", p.display())),
            Some(SecretSource::Env(v)) => keys.push(format!("secret from ${v}")),
            None => {}
        }
        if !self.keys.public_key_files.is_empty() {
            keys.push(format!("{} PEM key(s)", self.keys.public_key_files.len()));
        }
        if let Some(f) = &self.keys.jwks_file {
            keys.push(format!("jwks {}", f.display()));
        }
        if let Some(u) = &self.keys.jwks_url {
            keys.push(format!(
                "jwks {} every {}",
                u.url,
                crate::duration::format_duration(u.refresh)
            ));
        }
        format!(
            "jwt       {} iss {:?} {}, {}",
            self.name,
            self.issuer,
            algs.join(","),
            keys.join(", ")
        )
    }
}
