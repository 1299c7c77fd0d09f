//! The validated configuration the runtime trusts.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use weir_common::health::checker::CheckConfig;
use weir_common::health::probe::Probe;
use weir_common::select::{Algorithm, HashKey};

use crate::duration::format_duration;
use crate::http::{HttpOptions, OutlierDetection, RequestKey, UpstreamVersion};
use crate::tls::TlsOptions;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The admin listener's address, or `None` when disabled.
    pub admin: Option<SocketAddr>,
    /// Process-wide settings.
    pub runtime: Runtime,
    /// Listeners, in file order.
    pub listeners: Vec<Listener>,
    /// Pools, in file order.
    pub pools: Vec<Pool>,
    /// JWT providers, in file order (routes refer to them by index).
    pub jwt_providers: Vec<crate::auth::JwtProvider>,
    /// Request rate-limit policies, in file order (routes hold indices).
    pub rate_limits: Vec<crate::rate_limit::RateLimitPolicy>,
    /// The Redis server of global rate limits.
    pub redis: Option<crate::rate_limit::RedisConfig>,
}

/// Process-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Runtime {
    /// Runtime worker threads; `None` = one per core.
    pub worker_threads: Option<usize>,
    /// Grace period for open connections on shutdown.
    pub shutdown_grace: Duration,
}

/// The protocol of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Raw TCP streams (L4).
    Tcp,
    /// UDP datagrams, grouped into flows (L4).
    Udp,
    /// HTTP/1.1 and cleartext HTTP/2 (L7 gateway).
    Http,
    /// HTTP/1.1 and HTTP/2 over TLS (L7 gateway).
    Https,
}

impl Protocol {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    /// True for the L7 gateway's protocols, `http` and `https`.
    pub fn is_http(self) -> bool {
        matches!(self, Self::Http | Self::Https)
    }
}

/// A validated listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Unique name.
    pub name: String,
    /// Addresses to bind (at least one, distinct across the file).
    pub bind: Vec<SocketAddr>,
    /// Protocol.
    pub protocol: Protocol,
    /// Index into [`Config::pools`]: the listener's pool (TCP, UDP) or the
    /// pool of requests no route matches (HTTP; `None` = 404).
    pub pool: Option<usize>,
    /// Connection limit.
    pub max_connections: usize,
    /// Listen backlog.
    pub backlog: u32,
    /// Bound on one backend connection attempt.
    pub connect_timeout: Duration,
    /// Idle timeout for both directions.
    pub idle_timeout: Duration,
    /// Backends tried per client connection.
    pub connect_attempts: u32,
    /// Use splice(2) where available.
    pub splice: bool,
    /// TCP keepalive idle time; `None` = off.
    pub keepalive: Option<Duration>,
    /// UDP settings (`Some` exactly when `protocol` is UDP).
    pub udp: Option<UdpOptions>,
    /// HTTP settings and routes (`Some` exactly when `protocol` is HTTP or
    /// HTTPS).
    pub http: Option<HttpOptions>,
    /// TLS settings (`Some` exactly when `protocol` is HTTPS).
    pub tls: Option<TlsOptions>,
    /// Per-client connection limits (TCP listeners).
    pub client_limits: crate::rate_limit::ClientLimitOptions,
}

/// Settings only UDP listeners have.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpOptions {
    /// End a flow after this many replies.
    pub responses: Option<u32>,
    /// Flow limit; `None` = derived from the open-file limit at start-up.
    pub max_flows: Option<usize>,
    /// Larger datagrams are dropped.
    pub max_datagram_size: usize,
    /// SO_REUSEPORT sockets per address; `None` = one per core.
    pub sockets: Option<usize>,
}

/// A validated pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Unique name.
    pub name: String,
    /// Selection algorithm.
    pub algorithm: Algorithm,
    /// Hash key for consistent-hash algorithms.
    pub hash_key: HashKey,
    /// For HTTP pools: hash a request header, cookie or the path instead of
    /// the client address (falling back to `hash_key` when absent).
    pub request_key: Option<RequestKey>,
    /// HTTP passive outlier detection (`None` = off).
    pub outlier_detection: Option<OutlierDetection>,
    /// Backends, in file order (at least one).
    pub backends: Vec<BackendConfig>,
    /// Active health checks.
    pub health_check: Option<CheckConfig>,
    /// Passive checks on real traffic.
    pub passive: bool,
    /// Rest period for passively-failed backends without active checks.
    pub fail_timeout: Duration,
    /// The HTTP version HTTP listeners speak to the backends.
    pub http_version: UpstreamVersion,
    /// TLS to the backends (HTTP listeners only); `None` = cleartext.
    pub tls: Option<crate::upstream_tls::UpstreamTls>,
}

impl Pool {
    /// Rise/fall thresholds the backends' health machines use: the active
    /// check's, or rise 1 / fall 3 for passive-only pools.
    pub fn thresholds(&self) -> (u32, u32) {
        self.health_check
            .as_ref()
            .map_or((1, 3), |c| (c.rise, c.fall))
    }
}

/// A validated backend.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// The backend's name: configured, or the address as written (stable
    /// identity for hashing and metrics).
    pub name: String,
    /// The resolved address.
    pub addr: SocketAddr,
    /// Weight, 1..=256.
    pub weight: u32,
}

impl Config {
    /// The one-screen summary `weir check` prints.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        match self.admin {
            Some(addr) => {
                let _ = writeln!(out, "admin     http://{addr}/metrics");
            }
            None => {
                let _ = writeln!(out, "admin     disabled");
            }
        }
        for l in &self.listeners {
            let binds: Vec<String> = l.bind.iter().map(ToString::to_string).collect();
            let details = match (&l.udp, &l.http) {
                (Some(u), _) => format!(
                    "{}, idle {}, {}",
                    u.max_flows.map_or_else(
                        || "max flows from the fd limit".to_owned(),
                        |n| format!("max {n} flows")
                    ),
                    format_duration(l.idle_timeout),
                    u.responses.map_or_else(
                        || "no reply limit".to_owned(),
                        |n| format!(
                            "{n} {} per request",
                            if n == 1 { "reply" } else { "replies" }
                        )
                    ),
                ),
                (_, Some(h)) => format!(
                    "{} routes, header timeout {}, body up to {} bytes",
                    h.routes.len(),
                    format_duration(h.header_read_timeout),
                    h.max_body_bytes
                ),
                _ => format!(
                    "max {} conns, connect {}, idle {}, {}",
                    l.max_connections,
                    format_duration(l.connect_timeout),
                    format_duration(l.idle_timeout),
                    if l.splice { "splice" } else { "copy" },
                ),
            };
            let target = match l.pool {
                Some(p) => format!("pool {}", self.pools[p].name),
                None => "routes".to_owned(),
            };
            let _ = writeln!(
                out,
                "listener  {} {} {} -> {target} ({details})",
                l.name,
                l.protocol.name(),
                binds.join(", "),
            );
            if let Some(line) = l.client_limits.summary() {
                let _ = writeln!(out, "          {line}");
            }
            if let Some(t) = &l.tls {
                let _ = writeln!(
                    out,
                    "          tls {}+, {} certificate(s), the first is the default",
                    t.min_version.name(),
                    t.certificates.len()
                );
                for c in &t.certificates {
                    let names = c
                        .server_names
                        .as_ref()
                        .map_or_else(|| "names from the certificate".to_owned(), |n| n.join(", "));
                    let _ = writeln!(out, "          - cert {} ({names})", c.cert.display());
                }
            }
            if let Some(h) = &l.http {
                for r in &h.routes {
                    let auth: Vec<&str> = r
                        .auth
                        .iter()
                        .filter_map(|&i| self.jwt_providers.get(i).map(|p| p.name.as_str()))
                        .collect();
                    let auth = if auth.is_empty() {
                        String::new()
                    } else {
                        format!(", auth {}", auth.join(" or "))
                    };
                    let _ = writeln!(out, "          {}{auth}", r.summary(&self.pools));
                }
            }
        }
        for p in &self.pools {
            let algo = match &p.algorithm {
                Algorithm::Maglev { table_size } => {
                    format!("maglev/{} table {table_size}", p.hash_key.name())
                }
                Algorithm::RingHash {
                    balance_factor: Some(f),
                } => {
                    format!("ring_hash/{} bounded {f}", p.hash_key.name())
                }
                a if a.uses_key() => format!("{}/{}", a.name(), p.hash_key.name()),
                a => a.name().to_owned(),
            };
            let check = match &p.health_check {
                Some(c) => format!(
                    "{} every {} (rise {}, fall {})",
                    match &c.probe {
                        Probe::Tcp => "tcp".to_owned(),
                        Probe::SendExpect { .. } => "send_expect".to_owned(),
                        Probe::Udp { .. } => "udp".to_owned(),
                        Probe::Http {
                            method,
                            path,
                            host,
                            expect_status: (low, high),
                        } => {
                            let host = host
                                .as_ref()
                                .map(|h| format!(" Host {h}"))
                                .unwrap_or_default();
                            let status = if low == high {
                                low.to_string()
                            } else {
                                format!("{low}-{high}")
                            };
                            format!("http {method} {path}{host} expecting {status}")
                        }
                    },
                    format_duration(c.interval),
                    c.rise,
                    c.fall
                ),
                None => "no active checks".to_owned(),
            };
            let h2c = match (p.http_version, &p.tls) {
                (UpstreamVersion::H2c, _) => ", h2c to backends",
                (UpstreamVersion::H2, _) => ", HTTP/2 over TLS to backends",
                (UpstreamVersion::Http1, Some(_)) => ", TLS to backends",
                (UpstreamVersion::Http1, None) => "",
            };
            let _ = writeln!(
                out,
                "pool      {} {algo}, {} backends, {check}{h2c}",
                p.name,
                p.backends.len()
            );
            for b in &p.backends {
                if b.name == b.addr.to_string() {
                    let _ = writeln!(out, "          - {} weight {}", b.addr, b.weight);
                } else {
                    let _ = writeln!(out, "          - {} {} weight {}", b.name, b.addr, b.weight);
                }
            }
        }
        for p in &self.jwt_providers {
            let _ = writeln!(out, "{}", p.summary());
        }
        crate::rate_limit::summary(&mut out, &self.rate_limits, self.redis.as_ref());
        out
    }
}
