//! Request rate limits: the pipeline's rate-limit step (route → auth →
//! **rate-limit** → select → forward → log).
//!
//! Each `[[rate_limits]]` policy is one `Policy`: a GCRA rate
//! (weir-common's sans-io [`weir_common::rate`]) counted per request
//! [`key`] in a store that is either local (a bounded in-memory
//! [`KeyedStore`], clocked by tokio's clock so tests can pause it) or global
//! ([`redis::RedisStore`], one Lua script per check, shared by a fleet).
//! [`RateLimits::check`] runs a route's policies in order and returns a
//! [`Verdict`]: the `RateLimit` headers for the response, and a rejection
//! (429, or 503 when a `fail_closed` policy cannot reach Redis) or none.
//! Policies are process-wide: every HTTP listener's routes share them.

pub mod headers;
pub mod key;
pub mod redis;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use metrics::{Counter, Gauge, Histogram};
use tokio::time::Instant;
use weir_common::metrics as names;
use weir_common::rate::{Decision, KeyedStore, Rate};
use weir_config::rate_limit::{OnError, RateLimitPolicy, RedisConfig, Scope};

use crate::error::GatewayError;
pub use key::{ClaimSource, JwtClaims, NoClaims};

/// Most keys one local policy tracks (about 40 MB at the worst); idle keys
/// are dropped long before that in normal use.
const MAX_LOCAL_KEYS: usize = 1 << 20;

/// Decision results, in metric label order.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Allowed = 0,
    Limited = 1,
    DryRun = 2,
    FailedOpen = 3,
    FailedClosed = 4,
}

const OUTCOMES: [&str; 5] = [
    "allowed",
    "limited",
    "dry_run",
    "failed_open",
    "failed_closed",
];

/// Metric handles of one policy, registered once.
#[derive(Debug)]
struct PolicyMetrics {
    decisions: [Counter; 5],
    redis_errors: [Counter; 2],
    redis_duration: Histogram,
    keys: Gauge,
}

impl PolicyMetrics {
    fn new(policy: &str) -> Self {
        let p = || policy.to_owned();
        Self {
            decisions: OUTCOMES.map(|r| {
                metrics::counter!(names::RATE_LIMIT_DECISIONS, "policy" => p(), "result" => r)
            }),
            redis_errors: ["timeout", "error"].map(|r| {
                metrics::counter!(names::RATE_LIMIT_REDIS_ERRORS, "policy" => p(), "reason" => r)
            }),
            redis_duration: metrics::histogram!(names::RATE_LIMIT_REDIS_DURATION, "policy" => p()),
            keys: metrics::gauge!(names::RATE_LIMIT_KEYS, "policy" => p()),
        }
    }
}

enum Store {
    Local(KeyedStore),
    Global(Arc<redis::RedisStore>),
    /// A global policy whose Redis client could not be built (a bad
    /// address): every check fails and `on_error` decides.
    Unavailable,
}

/// One policy, ready to check.
struct Policy {
    config: RateLimitPolicy,
    rate: Rate,
    store: Store,
    metrics: PolicyMetrics,
    /// `"name";q=…;w=…`, rendered once.
    policy_item: String,
}

/// Every rate-limit policy of the process, indexed like the configuration's.
pub struct RateLimits {
    policies: Vec<Policy>,
    origin: Instant,
    claims: Box<dyn ClaimSource>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("policies", &self.policies.len())
            .finish_non_exhaustive()
    }
}

/// What the rate-limit step decided for one request.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Headers for the response (`RateLimit-Policy`, `RateLimit`, and on a
    /// 429 `Retry-After`), if any.
    pub headers: Option<HeaderMap>,
    /// Refuse the request with this error (429 or 503); `None` = go on.
    pub reject: Option<GatewayError>,
}

impl RateLimits {
    /// No policies.
    pub fn none() -> Self {
        Self::new(&[], None)
    }

    /// The policies of a configuration. A global policy's Redis client is
    /// created here but connects on first use, so weir starts while Redis is
    /// down. Must be called within a tokio runtime when a policy is global.
    pub fn new(policies: &[RateLimitPolicy], redis: Option<&RedisConfig>) -> Self {
        let needs_redis = policies.iter().any(|p| p.scope == Scope::Global);
        let shared = match redis.filter(|_| needs_redis) {
            Some(cfg) => match redis::RedisStore::new(cfg) {
                Ok(store) => Some(Arc::new(store)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up the redis client of global rate limits; they apply on_error");
                    None
                }
            },
            None => None,
        };
        let policies = policies
            .iter()
            .map(|p| {
                let rate = Rate::new(p.count, p.period, p.burst);
                let store = match (p.scope, &shared) {
                    (Scope::Local, _) => Store::Local(KeyedStore::new(rate, MAX_LOCAL_KEYS)),
                    (Scope::Global, Some(s)) => Store::Global(Arc::clone(s)),
                    (Scope::Global, None) => Store::Unavailable,
                };
                Policy {
                    policy_item: headers::policy_item(&p.name, &rate),
                    metrics: PolicyMetrics::new(&p.name),
                    config: p.clone(),
                    rate,
                    store,
                }
            })
            .collect();
        Self {
            policies,
            origin: Instant::now(),
            claims: Box::new(JwtClaims),
        }
    }

    /// Uses `claims` for `claim:NAME` keys (the JWT step's verified claims).
    pub fn with_claims(mut self, claims: Box<dyn ClaimSource>) -> Self {
        self.claims = claims;
        self
    }

    /// Nanoseconds on tokio's clock since this was built.
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs the policies `ids` (a route's, in order) for one request from
    /// `client` matched by the route named `route`. Stops at the first
    /// policy that refuses.
    pub async fn check(
        &self,
        ids: &[usize],
        route: &str,
        parts: &http::request::Parts,
        client: SocketAddr,
    ) -> Verdict {
        if ids.is_empty() {
            return Verdict::default();
        }
        let mut out = headers::Builder::default();
        for &id in ids {
            let Some(p) = self.policies.get(id) else {
                continue;
            };
            let key = key::request_key(&p.config.key, parts, client.ip(), route, &*self.claims);
            let decision = match &p.store {
                Store::Local(store) => {
                    let before = store.len();
                    let d = store.check(key, self.now());
                    let after = store.len();
                    if after != before {
                        p.metrics.keys.set(after as f64);
                    }
                    Ok(d)
                }
                Store::Global(redis) => self.global(p, redis, key).await,
                Store::Unavailable => Err(()),
            };
            match decision {
                Ok(d) if d.allowed => {
                    p.metrics.decisions[Outcome::Allowed as usize].increment(1);
                    if p.config.headers {
                        out.item(&p.policy_item, &p.config.name, &d);
                    }
                }
                Ok(d) if p.config.dry_run => {
                    p.metrics.decisions[Outcome::DryRun as usize].increment(1);
                    if p.config.headers {
                        out.item(&p.policy_item, &p.config.name, &d);
                    }
                }
                Ok(d) => {
                    p.metrics.decisions[Outcome::Limited as usize].increment(1);
                    out.item(&p.policy_item, &p.config.name, &d);
                    out.retry_after(d.retry_after);
                    return out.reject(GatewayError::TooManyRequests);
                }
                Err(()) if p.config.on_error == OnError::FailClosed && !p.config.dry_run => {
                    p.metrics.decisions[Outcome::FailedClosed as usize].increment(1);
                    return out.reject(GatewayError::RateLimitUnavailable);
                }
                Err(()) => {
                    p.metrics.decisions[Outcome::FailedOpen as usize].increment(1);
                }
            }
        }
        out.allow()
    }

    /// One Redis check within the policy's timeout; errors are counted and
    /// logged (at most once a second per process), never retried.
    async fn global(
        &self,
        p: &Policy,
        redis: &redis::RedisStore,
        key: u64,
    ) -> Result<Decision, ()> {
        let start = Instant::now();
        let result =
            tokio::time::timeout(p.config.timeout, redis.check(&p.config.name, key, &p.rate)).await;
        p.metrics
            .redis_duration
            .record(start.elapsed().as_secs_f64());
        match result {
            Ok(Ok(d)) => Ok(d),
            Ok(Err(e)) => {
                p.metrics.redis_errors[1].increment(1);
                if log_now() {
                    tracing::warn!(policy = %p.config.name, error = %e, "redis rate-limit check failed; applying on_error");
                }
                Err(())
            }
            Err(_) => {
                p.metrics.redis_errors[0].increment(1);
                if log_now() {
                    tracing::warn!(policy = %p.config.name, timeout = ?p.config.timeout, "redis rate-limit check timed out; applying on_error");
                }
                Err(())
            }
        }
    }
}

/// True at most once a second (process-wide): Redis errors under load are
/// one log line a second, not one per request.
fn log_now() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST.load(Ordering::Relaxed);
    now > last
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Whole seconds, rounded up (`Retry-After` and `t=` are integers).
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests;
