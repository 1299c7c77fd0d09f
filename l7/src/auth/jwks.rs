//! A provider's remote JWKS: fetched over `https` (rustls, the system's
//! authorities or `jwks_ca_file`, the URL's host verified) or `http` on a
//! fresh connection per fetch (fetches are minutes apart), cached in an
//! `ArcSwap`, refreshed on an interval and on an unknown `kid`.
//!
//! - The refresh task fetches at start-up and then every `jwks_refresh`;
//!   after a failure it retries sooner (1 s, doubling, at most a minute or
//!   the interval), so weir started with its IdP down picks the keys up soon
//!   after the IdP comes back. Until then tokens get 401 (`no_keys`).
//! - A token whose `kid` is unknown may trigger one fetch per
//!   `jwks_cooldown`, whatever the number of such tokens; requests arriving
//!   while a fetch is running wait for it (single flight), then look again.
//! - A failed fetch (refused, timed out, not 200, too large, no usable key)
//!   keeps the last good set; each failure is logged once and counted.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use metrics::{Counter, Gauge};
use rustls_pki_types::ServerName;
use tokio::time::Instant;
use weir_common::metrics as names;
use weir_common::shutdown::Shutdown;
use weir_config::auth::JwksUrl;

use super::keys::KeySet;

/// Bound on one fetch, connect to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Longest wait between retries after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the key-set age gauge is brought up to date.
const AGE_TICK: Duration = Duration::from_secs(5);

/// A remote JWKS and its cache.
pub struct RemoteJwks {
    provider: String,
    url: Uri,
    refresh: Duration,
    cooldown: Duration,
    /// For an `https` URL: the rustls client configuration.
    tls: Option<rustls::ClientConfig>,
    keys: ArcSwap<KeySet>,
    /// Held while a fetch runs: one at a time, and waiters see its result.
    fetching: tokio::sync::Mutex<()>,
    /// When the last fetch for an unknown `kid` started.
    last_on_demand: Mutex<Option<Instant>>,
    /// Fetches finished (either way): a waiter that sees it move knows
    /// the keys it wanted have just been looked for.
    generation: AtomicU64,
    /// Successful fetches: the version of the keys (cached verifications
    /// are tagged with it).
    version: AtomicU64,
    last_success: Mutex<Option<Instant>>,
    fetch_ok: Counter,
    fetch_error: Counter,
    keys_gauge: Gauge,
    age_gauge: Gauge,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("provider", &self.provider)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    /// A JWKS for `provider` at `cfg.url`, empty until the first fetch.
    pub fn new(provider: &str, cfg: &JwksUrl) -> Result<Self, String> {
        let url: Uri = cfg
            .url
            .parse()
            .map_err(|e| format!("invalid jwks_url {:?}: {e}", cfg.url))?;
        let tls = match url.scheme_str() {
            Some("https") => {
                let trust = weir_config::upstream_tls::UpstreamTls {
                    ca_file: cfg.ca_file.clone(),
                    server_names: Vec::new(),
                    client_cert: None,
                };
                let config = weir_config::upstream_tls::client_config(
                    &trust,
                    weir_config::upstream_tls::Alpn::Http1,
                )
                .map_err(|e| format!("jwks_url {:?}: {e}", cfg.url))?;
                Some(config)
            }
            Some("http") => None,
            _ => {
                return Err(format!(
                    "jwks_url {:?}: expected https:// or http://",
                    cfg.url
                ));
            }
        };
        let label = || provider.to_owned();
        let age_gauge = metrics::gauge!(names::JWKS_AGE, "provider" => label());
        age_gauge.set(-1.0);
        Ok(Self {
            provider: provider.to_owned(),
            url,
            refresh: cfg.refresh,
            cooldown: cfg.cooldown,
            tls,
            keys: ArcSwap::from_pointee(KeySet::default()),
            fetching: tokio::sync::Mutex::new(()),
            last_on_demand: Mutex::new(None),
            generation: AtomicU64::new(0),
            version: AtomicU64::new(0),
            last_success: Mutex::new(None),
            fetch_ok: metrics::counter!(names::JWKS_FETCHES, "provider" => label(), "result" => "ok"),
            fetch_error: metrics::counter!(names::JWKS_FETCHES, "provider" => label(), "result" => "error"),
            keys_gauge: metrics::gauge!(names::JWKS_KEYS, "provider" => label()),
            age_gauge,
        })
    }

    /// Bumped by every successful fetch.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// The current key set (empty before the first successful fetch).
    pub fn current(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }

    async fn get(&self) -> Result<KeySet, String> {
        let host = self.url.host().unwrap_or_default();
        let port = self
            .url
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let path = self
            .url
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        let authority = self
            .url
            .authority()
            .map_or(host, http::uri::Authority::as_str);
        let req = Request::get(path)
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
                    .await
                    .map_err(|e| format!("cannot resolve {host}: {e}"))?
                    .collect();
            let tls = match &self.tls {
                None => None,
                Some(config) => {
                    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                        .map_err(|e| format!("invalid host {host}: {e}"))?;
                    Some(crate::connector::TlsSide::new(
                        config.clone(),
                        vec![Some(name)],
                    ))
                }
            };
            // Each address in turn (an IdP with several, one of them down
            // or of an unreachable family), within the fetch's bound.
            let mut last = format!("{host} resolved to no address");
            let mut stream = None;
            for addr in addrs {
                match crate::connector::connect(addr, FETCH_TIMEOUT, tls.as_ref().map(|t| (t, 0)))
                    .await
                {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) => last = format!("{addr}: {e}"),
                }
            }
            let stream = stream.ok_or(last)?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            if resp.status() != StatusCode::OK {
                return Err(format!("answered {}", resp.status()));
            }
            let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the body: {e}"))?
                .to_bytes();
            KeySet::from_jwks(&body)
        };
        tokio::time::timeout(FETCH_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("timed out after {FETCH_TIMEOUT:?}"))?
    }

    /// One fetch, single flight; true when new keys are in place.
    async fn fetch(&self) -> bool {
        let _one = self.fetching.lock().await;
        self.fetch_locked().await
    }

    /// One fetch; the caller holds `fetching`.
    async fn fetch_locked(&self) -> bool {
        let result = self.get().await;
        self.generation.fetch_add(1, Ordering::SeqCst);
        match result {
            Ok(set) => {
                let n = set.len();
                self.keys.store(Arc::new(set));
                self.version.fetch_add(1, Ordering::SeqCst);
                self.fetch_ok.increment(1);
                self.keys_gauge.set(n as f64);
                self.age_gauge.set(0.0);
                if let Ok(mut last) = self.last_success.lock() {
                    *last = Some(Instant::now());
                }
                tracing::debug!(provider = %self.provider, keys = n, "jwks fetched");
                true
            }
            Err(error) => {
                self.fetch_error.increment(1);
                tracing::warn!(
                    provider = %self.provider,
                    url = %self.url,
                    %error,
                    keys_kept = self.keys.load().len(),
                    "jwks fetch failed; keeping the last good keys"
                );
                false
            }
        }
    }

    /// A token named a `kid` no key has (or there are no keys yet): fetch
    /// again, at most once per cooldown. Requests that queue behind a fetch
    /// do not fetch again: they return once it is done, to look at the new
    /// keys.
    pub async fn refresh_for_unknown_kid(&self) {
        let seen = self.generation.load(Ordering::SeqCst);
        let _one = self.fetching.lock().await;
        if self.generation.load(Ordering::SeqCst) != seen {
            return;
        }
        let allowed = match self.last_on_demand.lock() {
            Ok(mut last) => {
                let now = Instant::now();
                if last.is_some_and(|t| now.duration_since(t) < self.cooldown) {
                    false
                } else {
                    *last = Some(now);
                    true
                }
            }
            Err(_) => false,
        };
        if allowed {
            self.fetch_locked().await;
        }
    }

    fn update_age(&self) {
        if let Ok(last) = self.last_success.lock()
            && let Some(t) = *last
        {
            self.age_gauge.set(t.elapsed().as_secs_f64());
        }
    }

    /// Fetches now, then on the interval (sooner after a failure) until
    /// `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let wait = if self.fetch().await {
                backoff = Duration::from_secs(1);
                self.refresh
            } else {
                let wait = backoff.min(self.refresh);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            };
            let until = Instant::now() + wait;
            loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep((until - now).min(AGE_TICK)) => {}
                    _ = shutdown.wait() => return,
                }
                self.update_age();
            }
        }
    }
}
