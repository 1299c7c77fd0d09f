//! JWT authentication: the pipeline's second step (route → **authenticate**
//! → select → forward → log).
//!
//! A route with `auth` names one or more [`Provider`]s; a request passes
//! when one of them accepts its token. [`Auth::check`] is the whole hook:
//! it removes client-sent copies of the claim headers (anti-forgery), finds
//! the token ([`token`]), verifies it ([`verify`], pure, clock passed in),
//! and on success sets the claim headers, strips the token unless
//! `forward_token`, and puts the verified [`Claims`] in the request's
//! extensions. On failure it returns the ready 401/403 ([`challenge`]) and
//! the request never reaches a backend. Keys come from [`keys`] (secret,
//! PEM, JWKS file) and [`jwks`] (a fetched, cached, refreshed JWKS).
//! Every decision is counted per provider and [`reason`].

pub mod cache;
pub mod challenge;
pub mod jwks;
pub mod keys;
pub mod reason;
pub mod token;
pub mod verify;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod hook_tests;
#[cfg(test)]
mod vectors;

use std::sync::Arc;

use http::Response;
use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use jsonwebtoken::Algorithm;
use serde_json::Value;
use tokio::task::JoinHandle;
use weir_common::shutdown::Shutdown;
use weir_config::auth::{JwtProvider, SecretSource};

use crate::body::ProxyBody;
use jwks::RemoteJwks;
use keys::{Key, KeySet};
use reason::{DecisionMetrics, Reason};
use token::Found;
use verify::ClaimMap;

/// A provider's keys or JWKS URL could not be loaded at start-up.
#[derive(Debug, thiserror::Error)]
#[error("jwt provider {provider:?}: {message}")]
pub struct AuthStartError {
    /// The provider.
    pub provider: String,
    /// What failed (names files and variables, never secrets).
    pub message: String,
}

/// The verified claims of a request's token, in its extensions (rate
/// limits and logs may key on a claim). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Claims(Arc<(Arc<str>, ClaimMap)>);

impl Claims {
    /// A claims set from `provider` (tests and other modules).
    pub fn new(provider: &str, claims: ClaimMap) -> Self {
        Self(Arc::new((Arc::from(provider), claims)))
    }

    /// The provider that verified the token.
    pub fn provider(&self) -> &str {
        &self.0.0
    }

    /// A claim.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.1.get(name)
    }

    /// A claim that is a string.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// Every claim.
    pub fn all(&self) -> &ClaimMap {
        &self.0.1
    }
}

/// One configured provider with its keys.
pub struct Provider {
    config: JwtProvider,
    allowed: Vec<Algorithm>,
    local: KeySet,
    remote: Option<Arc<RemoteJwks>>,
    claim_headers: Vec<(String, HeaderName)>,
    scope: String,
    metrics: DecisionMetrics,
    cache: cache::TokenCache,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.config.name)
            .field("local_keys", &self.local.len())
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

fn read(provider: &str, path: &std::path::Path) -> Result<Vec<u8>, AuthStartError> {
    std::fs::read(path).map_err(|e| AuthStartError {
        provider: provider.to_owned(),
        message: format!("cannot read {}: {e}", path.display()),
    })
}

fn secret(provider: &str, source: &SecretSource) -> Result<Vec<u8>, AuthStartError> {
    let mut bytes = match source {
        SecretSource::File(path) => read(provider, path)?,
        SecretSource::Env(var) => std::env::var_os(var)
            .map(|v| v.into_encoded_bytes())
            .ok_or_else(|| AuthStartError {
                provider: provider.to_owned(),
                message: format!("environment variable {var} is not set"),
            })?,
    };
    // Editors and `echo` add one; nobody means it as part of the secret.
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Ok(bytes)
}

impl Provider {
    /// Loads the provider's keys (files and environment read now; a JWKS
    /// URL is fetched by the task [`Auth::spawn_refresh`] starts).
    pub fn new(config: &JwtProvider) -> Result<Self, AuthStartError> {
        let name = config.name.as_str();
        let fail = |message: String| AuthStartError {
            provider: name.to_owned(),
            message,
        };
        let mut keys = Vec::new();
        if let Some(source) = &config.keys.hmac_secret {
            keys.push(Key::hmac(&secret(name, source)?).map_err(|e| fail(e.to_owned()))?);
        }
        for path in &config.keys.public_key_files {
            let key = Key::pem(&read(name, path)?)
                .map_err(|e| fail(format!("{}: {e}", path.display())))?;
            keys.push(key);
        }
        let mut local = KeySet::new(keys);
        if let Some(path) = &config.keys.jwks_file {
            let set = KeySet::from_jwks(&read(name, path)?)
                .map_err(|e| fail(format!("{}: {e}", path.display())))?;
            local.extend(set);
        }
        let remote = match &config.keys.jwks_url {
            Some(url) => Some(Arc::new(RemoteJwks::new(name, url).map_err(fail)?)),
            None => None,
        };
        let claim_headers = config
            .claims_to_headers
            .iter()
            .map(|(claim, header)| {
                HeaderName::from_bytes(header.as_bytes())
                    .map(|h| (claim.clone(), h))
                    .map_err(|_| fail(format!("invalid header name {header:?}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allowed: config
                .algorithms
                .iter()
                .map(|a| verify::algorithm(*a))
                .collect(),
            local,
            remote,
            claim_headers,
            scope: config.required_scopes.join(" "),
            metrics: DecisionMetrics::new(name),
            cache: cache::TokenCache::default(),
            config: config.clone(),
        })
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Verifies `token` at `now` (Unix seconds) with the keys held now.
    pub fn verify_at(&self, token: &str, now: u64) -> Result<ClaimMap, Reason> {
        let remote = self.remote.as_ref().map(|r| r.current());
        let mut sets: Vec<&KeySet> = vec![&self.local];
        if let Some(r) = &remote {
            sets.push(r);
        }
        verify::verify(&self.config, &self.allowed, &sets, token, now)
    }

    /// Like [`Provider::verify_at`], through the cache of verified tokens
    /// (claims are checked again at `now` on a hit); an unknown `kid` (or
    /// no keys yet) may fetch the JWKS again first (at most once per
    /// cooldown).
    pub async fn authenticate(&self, token: &str, now: u64) -> Result<Claims, Reason> {
        let version = self.remote.as_ref().map_or(0, |r| r.version());
        if let Some(claims) = self.cache.get(token, version) {
            verify::check_claims(&self.config, claims.all(), now)?;
            return Ok(claims);
        }
        let verified = match (self.verify_at(token, now), &self.remote) {
            (Err(Reason::UnknownKid | Reason::NoKeys), Some(remote)) => {
                remote.refresh_for_unknown_kid().await;
                self.verify_at(token, now)
            }
            (outcome, _) => outcome,
        };
        let claims = Claims::new(&self.config.name, verified?);
        // Tagged with the version from before verifying: if the keys
        // changed meanwhile the entry is merely never hit.
        self.cache.insert(token, version, claims.clone());
        Ok(claims)
    }

    /// Sets the claim headers, strips the token unless it is forwarded, and
    /// stores the claims in the request's extensions.
    fn admit(&self, claims: Claims, parts: &mut Parts) {
        for (claim, header) in &self.claim_headers {
            if let Some(v) = claims.get(claim).and_then(header_value) {
                parts.headers.insert(header.clone(), v);
            }
        }
        if !self.config.forward_token {
            token::strip(&self.config.source, parts);
        }
        parts.extensions.insert(claims);
    }
}

/// A claim as a header value: strings as they are, numbers and booleans
/// printed, a list of those joined with `,`; anything else (objects, or
/// control characters) is not forwarded.
fn header_value(v: &Value) -> Option<HeaderValue> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    let text = match v {
        Value::Array(items) => items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()?
            .join(","),
        other => scalar(other)?,
    };
    HeaderValue::from_str(&text).ok()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Every provider of the configuration, shared by all HTTP listeners.
#[derive(Debug, Default)]
pub struct Auth {
    providers: Vec<Provider>,
}

impl Auth {
    /// Loads every provider's keys; an unreadable or unusable key is a
    /// start-up error.
    pub fn new(configs: &[JwtProvider]) -> Result<Self, AuthStartError> {
        Ok(Self {
            providers: configs
                .iter()
                .map(Provider::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The provider at `index`.
    pub fn provider(&self, index: usize) -> Option<&Provider> {
        self.providers.get(index)
    }

    /// Starts the JWKS refresh task of every provider with a `jwks_url`.
    pub fn spawn_refresh(&self, shutdown: &Shutdown) -> Vec<JoinHandle<()>> {
        self.providers
            .iter()
            .filter_map(|p| p.remote.clone())
            .map(|r| tokio::spawn(r.run(shutdown.clone())))
            .collect()
    }

    /// The pipeline hook for a route requiring `providers` (indexes):
    /// `Ok` with the request edited for forwarding, or the refusal.
    pub async fn check(
        &self,
        providers: &[usize],
        parts: &mut Parts,
        request_id: &str,
    ) -> Result<(), Response<ProxyBody>> {
        let route: Vec<&Provider> = providers.iter().filter_map(|&i| self.provider(i)).collect();
        for p in &route {
            for (_, header) in &p.claim_headers {
                parts.headers.remove(header);
            }
        }
        let now = unix_now();
        let mut worst: Option<(Reason, &Provider)> = None;
        for &p in &route {
            let outcome = match token::extract(&p.config.source, parts) {
                Found::Missing => Err(Reason::Missing),
                Found::Malformed => Err(Reason::Malformed),
                Found::Token(t) => {
                    if route.len() > 1 && meant_for_another(&route, p, &t) {
                        continue;
                    }
                    p.authenticate(&t, now).await
                }
            };
            match outcome {
                Ok(claims) => {
                    p.metrics.count(Reason::Ok);
                    p.admit(claims, parts);
                    return Ok(());
                }
                Err(reason) => {
                    p.metrics.count(reason);
                    if worst.is_none_or(|(w, _)| reason.rank() > w.rank()) {
                        worst = Some((reason, p));
                    }
                }
            }
        }
        // No provider (cannot happen with a validated config): fail closed.
        let (reason, p) = match worst {
            Some((r, p)) => (r, Some(p)),
            None => (Reason::NoKeys, None),
        };
        Err(challenge::refuse(
            reason,
            p.map_or("weir", |p| p.config.realm.as_str()),
            p.map_or("", |p| p.scope.as_str()),
            request_id,
        ))
    }
}

/// With several providers on a route: the token's (unverified) `iss` names
/// another of them, so this one need not try (nor fetch keys for) it.
fn meant_for_another(route: &[&Provider], this: &Provider, token: &str) -> bool {
    let Some(iss) = verify::peek_issuer(token) else {
        return false;
    };
    iss != this.config.issuer && route.iter().any(|p| p.config.issuer == iss)
}
