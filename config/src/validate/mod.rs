//! One pure step from [`RawConfig`] to [`Config`], collecting every error.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::duration::parse_duration;
use crate::model::{Config, Protocol, Runtime};
use crate::raw::RawConfig;

mod auth;
mod listener;
mod pool;
mod rate_limit;
mod route;
mod tls;
mod upstream_tls;

/// The validated pools, for resolving names in listeners and routes.
pub(crate) struct Pools<'a> {
    pub(crate) index: &'a HashMap<&'a str, usize>,
    pub(crate) pools: &'a [crate::model::Pool],
}

impl Pools<'_> {
    /// Resolves the pool named `name`, reporting an error at `path` when
    /// there is none.
    pub(crate) fn resolve(&self, r: &mut Report, path: &str, name: &str) -> Option<usize> {
        let found = self.index.get(name).copied();
        if found.is_none() {
            r.error(path, format!("no pool named {name:?}"));
        }
        found
    }
}

use listener::listener;
pub use pool::decode_hex;
use pool::pool;

/// One semantic error: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. `listeners[1].pool`.
    pub path: String,
    /// What is wrong, lowercase.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A validated config plus the warnings worth showing an operator.
#[derive(Debug)]
pub struct Validated {
    /// The config.
    pub config: Config,
    /// Non-fatal findings (same shape as errors).
    pub warnings: Vec<FieldError>,
}

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) errors: Vec<FieldError>,
    pub(crate) warnings: Vec<FieldError>,
    /// Relative file paths are relative to this directory.
    pub(crate) dir: PathBuf,
}

impl Report {
    /// `path` as written in the file, resolved against [`Report::dir`].
    pub(crate) fn file(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }

    pub(crate) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn duration(
        &mut self,
        path: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Duration {
        let Some(text) = value else { return default };
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.error(path, format!("duration {text:?} must be greater than zero"));
                default
            }
            Ok(d) => d,
            Err(msg) => {
                self.error(path, msg);
                default
            }
        }
    }

    pub(crate) fn one_of<T: Copy>(
        &mut self,
        path: &str,
        value: Option<&str>,
        default: T,
        table: &[(&str, T)],
    ) -> T {
        let Some(text) = value else { return default };
        match table.iter().find(|(name, _)| *name == text) {
            Some((_, v)) => *v,
            None => {
                let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
                self.error(
                    path,
                    format!(
                        "unknown value {text:?}; expected one of: {}",
                        names.join(", ")
                    ),
                );
                default
            }
        }
    }

    pub(crate) fn range<T: PartialOrd + fmt::Display + Copy>(
        &mut self,
        path: &str,
        value: Option<T>,
        default: T,
        min: T,
        max: T,
    ) -> T {
        let Some(v) = value else { return default };
        if v < min || v > max {
            self.error(
                path,
                format!("{v} is out of range; expected {min} to {max}"),
            );
            default
        } else {
            v
        }
    }
}

/// Validates `raw` into a [`Config`], or returns every error found. Relative
/// file paths are relative to the current directory.
pub fn validate(raw: &RawConfig) -> Result<Validated, Vec<FieldError>> {
    validate_in(raw, Path::new(""))
}

/// Like [`validate`], with relative file paths (TLS certificates) resolved
/// against `dir`. Certificate files are read and checked here, so `weir
/// check` catches a missing file or a key that does not match.
pub fn validate_in(raw: &RawConfig, dir: &Path) -> Result<Validated, Vec<FieldError>> {
    let mut r = Report {
        dir: dir.to_owned(),
        ..Report::default()
    };

    // Checked even when disabled, so a typo does not wait until it is enabled.
    let admin_text = raw.admin.address.as_deref().unwrap_or("127.0.0.1:9090");
    let admin_addr = match admin_text.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            r.error(
                "admin.address",
                format!("invalid address {admin_text:?}; expected IP:port like \"127.0.0.1:9090\""),
            );
            None
        }
    };
    let admin = admin_addr.filter(|_| raw.admin.enabled != Some(false));

    let runtime = Runtime {
        worker_threads: raw
            .runtime
            .worker_threads
            .map(|n| r.range("runtime.worker_threads", Some(n), 1, 1, 1024)),
        shutdown_grace: r.duration(
            "runtime.shutdown_grace",
            raw.runtime.shutdown_grace.as_deref(),
            Duration::from_secs(30),
        ),
    };

    let mut pool_index: HashMap<&str, usize> = HashMap::new();
    let mut pools = Vec::with_capacity(raw.pools.len());
    for (i, p) in raw.pools.iter().enumerate() {
        let path = format!("pools[{i}]");
        if p.name.trim().is_empty() {
            r.error(format!("{path}.name"), "must not be empty");
        } else if pool_index.contains_key(p.name.as_str()) {
            r.error(
                format!("{path}.name"),
                format!("duplicate pool name {:?}", p.name),
            );
        } else {
            pool_index.insert(&p.name, i);
        }
        pools.push(pool(&mut r, &path, p));
    }

    let (jwt_providers, provider_index) = auth::providers(&mut r, &raw.jwt_providers);
    let (rate_limits, redis) = rate_limit::policies(&mut r, raw);

    if raw.listeners.is_empty() {
        r.error("listeners", "at least one listener is required");
    }
    let mut names = HashSet::new();
    let mut bound: HashMap<(Protocol, SocketAddr), String> = HashMap::new();
    if let Some(a) = admin {
        bound.insert((Protocol::Tcp, a), "admin.address".into());
    }
    let mut used_pools = HashSet::new();
    // Pools HTTP listeners forward to (`http_version` matters only there).
    let mut http_pools = HashSet::new();
    let mut listeners = Vec::with_capacity(raw.listeners.len());
    for (i, l) in raw.listeners.iter().enumerate() {
        let path = format!("listeners[{i}]");
        if l.name.trim().is_empty() {
            r.error(format!("{path}.name"), "must not be empty");
        } else if !names.insert(l.name.as_str()) {
            r.error(
                format!("{path}.name"),
                format!("duplicate listener name {:?}", l.name),
            );
        }
        let pools_ref = Pools {
            index: &pool_index,
            pools: &pools,
        };
        let listener = listener(&mut r, &path, l, &pools_ref, &mut bound);
        used_pools.extend(listener.pool);
        if listener.protocol.is_http() {
            http_pools.extend(listener.pool);
        }
        if let Some(h) = &listener.http {
            for route in &h.routes {
                if let crate::http::RouteAction::Forward { pool, .. } = route.action {
                    used_pools.insert(pool);
                    http_pools.insert(pool);
                }
            }
        }
        listeners.push(listener);
    }
    auth::resolve_routes(&mut r, raw, &provider_index, &mut listeners);
    for (i, p) in raw.pools.iter().enumerate() {
        if !used_pools.contains(&i) {
            r.warn(
                format!("pools[{i}]"),
                format!("pool {:?} is not used by any listener", p.name),
            );
        } else if let Some(version) = pools
            .get(i)
            .map(|p| p.http_version)
            .filter(|v| !http_pools.contains(&i) && *v != crate::http::UpstreamVersion::Http1)
        {
            r.warn(
                format!("pools[{i}].http_version"),
                format!(
                    "pool {:?} is used only by tcp/udp listeners, which forward bytes; {:?} has no effect",
                    p.name,
                    version.name()
                ),
            );
        } else if !http_pools.contains(&i) && p.tls.is_some() {
            r.warn(
                format!("pools[{i}].tls"),
                format!(
                    "pool {:?} is used only by tcp/udp listeners, which forward bytes as they are; [pools.tls] has no effect",
                    p.name
                ),
            );
        }
    }

    rate_limit::resolve_routes(&mut r, raw, &rate_limits, &mut listeners);

    if r.errors.is_empty() {
        Ok(Validated {
            config: Config {
                admin,
                runtime,
                listeners,
                pools,
                jwt_providers,
                rate_limits,
                redis,
            },
            warnings: r.warnings,
        })
    } else {
        Err(r.errors)
    }
}
