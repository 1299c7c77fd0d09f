//! One pure step from [`RawConfig`] to [`Config`], collecting every error.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use weir_common::health::checker::CheckConfig;
use weir_common::health::probe::Probe;

use weir_common::select::{Algorithm, DEFAULT_MAGLEV_TABLE_SIZE, HashKey, is_prime};

use crate::duration::parse_duration;
use crate::model::{BackendConfig, Config, Listener, Pool, Protocol, Runtime};
use crate::raw::{RawConfig, RawHealthCheck, RawListener, RawPool};

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
struct Report {
    errors: Vec<FieldError>,
    warnings: Vec<FieldError>,
}

impl Report {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, path: &str, value: Option<&str>, default: Duration) -> Duration {
        let Some(text) = value else { return default };
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.error(path, "must be greater than zero");
                default
            }
            Ok(d) => d,
            Err(msg) => {
                self.error(path, msg);
                default
            }
        }
    }

    fn one_of<T: Copy>(
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

    fn range<T: PartialOrd + fmt::Display + Copy>(
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

/// Validates `raw` into a [`Config`], or returns every error found.
pub fn validate(raw: &RawConfig) -> Result<Validated, Vec<FieldError>> {
    let mut r = Report::default();

    let admin = if raw.admin.enabled == Some(false) {
        None
    } else {
        let text = raw.admin.address.as_deref().unwrap_or("127.0.0.1:9090");
        match text.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                r.error(
                    "admin.address",
                    format!("invalid address {text:?}; expected IP:port like \"127.0.0.1:9090\""),
                );
                None
            }
        }
    };

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
        } else if pool_index.insert(&p.name, i).is_some() {
            r.error(
                format!("{path}.name"),
                format!("duplicate pool name {:?}", p.name),
            );
        }
        pools.push(pool(&mut r, &path, p));
    }

    if raw.listeners.is_empty() {
        r.error("listeners", "at least one listener is required");
    }
    let mut names = HashSet::new();
    let mut bound: HashMap<SocketAddr, String> = HashMap::new();
    if let Some(a) = admin {
        bound.insert(a, "admin.address".into());
    }
    let mut used_pools = HashSet::new();
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
        let pool = match pool_index.get(l.pool.as_str()) {
            Some(&p) => {
                used_pools.insert(p);
                p
            }
            None => {
                r.error(
                    format!("{path}.pool"),
                    format!("no pool named {:?}", l.pool),
                );
                0
            }
        };
        listeners.push(listener(&mut r, &path, l, pool, &mut bound));
    }
    for (i, p) in raw.pools.iter().enumerate() {
        if !used_pools.contains(&i) {
            r.warn(
                format!("pools[{i}]"),
                format!("pool {:?} is not used by any listener", p.name),
            );
        }
    }

    if r.errors.is_empty() {
        Ok(Validated {
            config: Config {
                admin,
                runtime,
                listeners,
                pools,
            },
            warnings: r.warnings,
        })
    } else {
        Err(r.errors)
    }
}

fn listener(
    r: &mut Report,
    path: &str,
    l: &RawListener,
    pool: usize,
    bound: &mut HashMap<SocketAddr, String>,
) -> Listener {
    let mut bind = Vec::new();
    if l.bind.as_slice().is_empty() {
        r.error(format!("{path}.bind"), "at least one address is required");
    }
    for (j, text) in l.bind.as_slice().iter().enumerate() {
        let field = format!("{path}.bind[{j}]");
        match text.parse::<SocketAddr>() {
            Ok(addr) => {
                // Port 0 asks the kernel for a fresh port each time: never a clash.
                if addr.port() == 0 {
                    bind.push(addr);
                } else if let Some(first) = bound.get(&addr) {
                    r.error(&field, format!("address {addr} is already used by {first}"));
                } else {
                    bound.insert(addr, field);
                    bind.push(addr);
                }
            }
            Err(_) => r.error(field, format!("invalid address {text:?}; expected IP:port like \"0.0.0.0:5432\" or \"[::]:5432\"")),
        }
    }
    let keepalive = match l.keepalive.as_deref() {
        Some("off") => None,
        other => Some(r.duration(&format!("{path}.keepalive"), other, Duration::from_secs(60))),
    };
    Listener {
        name: l.name.clone(),
        bind,
        protocol: r.one_of(
            &format!("{path}.protocol"),
            l.protocol.as_deref(),
            Protocol::Tcp,
            &[("tcp", Protocol::Tcp)],
        ),
        pool,
        max_connections: r.range(
            &format!("{path}.max_connections"),
            l.max_connections,
            10_000,
            1,
            10_000_000,
        ) as usize,
        backlog: r.range(&format!("{path}.backlog"), l.backlog, 1024, 1, 65_535),
        connect_timeout: r.duration(
            &format!("{path}.connect_timeout"),
            l.connect_timeout.as_deref(),
            Duration::from_secs(5),
        ),
        idle_timeout: r.duration(
            &format!("{path}.idle_timeout"),
            l.idle_timeout.as_deref(),
            Duration::from_secs(3600),
        ),
        connect_attempts: r.range(
            &format!("{path}.connect_attempts"),
            l.connect_attempts,
            3,
            1,
            8,
        ),
        splice: l.splice.unwrap_or(true),
        keepalive,
    }
}

fn pool(r: &mut Report, path: &str, p: &RawPool) -> Pool {
    let algo_name = p.algorithm.as_deref().unwrap_or("round_robin");
    let mut algorithm = match algo_name {
        "round_robin" => Algorithm::RoundRobin,
        "weighted_round_robin" => Algorithm::WeightedRoundRobin,
        "least_connections" => Algorithm::LeastConnections,
        "random_two_choices" => Algorithm::RandomTwoChoices,
        "maglev" => Algorithm::Maglev {
            table_size: DEFAULT_MAGLEV_TABLE_SIZE,
        },
        "ring_hash" => Algorithm::RingHash {
            balance_factor: None,
        },
        other => {
            r.error(
                format!("{path}.algorithm"),
                format!(
                    "unknown value {other:?}; expected one of: {}",
                    Algorithm::NAMES.join(", ")
                ),
            );
            Algorithm::RoundRobin
        }
    };
    if let Some(size) = p.maglev_table_size {
        match &mut algorithm {
            Algorithm::Maglev { table_size } => {
                if !is_prime(size) || size > 1_000_003 {
                    r.error(
                        format!("{path}.maglev_table_size"),
                        format!("{size} must be a prime no larger than 1000003 (e.g. 65537)"),
                    );
                } else {
                    *table_size = size;
                }
            }
            _ => r.error(
                format!("{path}.maglev_table_size"),
                format!("only applies to algorithm \"maglev\", not {algo_name:?}"),
            ),
        }
    }
    if let Some(factor) = p.balance_factor {
        match &mut algorithm {
            Algorithm::RingHash { balance_factor } => {
                if factor.is_finite() && factor > 1.0 {
                    *balance_factor = Some(factor);
                } else {
                    r.error(
                        format!("{path}.balance_factor"),
                        format!("{factor} must be greater than 1.0 (e.g. 1.25)"),
                    );
                }
            }
            _ => r.error(
                format!("{path}.balance_factor"),
                format!("only applies to algorithm \"ring_hash\", not {algo_name:?}"),
            ),
        }
    }
    let hash_key = r.one_of(
        &format!("{path}.hash_key"),
        p.hash_key.as_deref(),
        HashKey::ClientIp,
        &[
            ("client_ip", HashKey::ClientIp),
            ("client_ip_port", HashKey::ClientIpPort),
        ],
    );

    if p.backends.is_empty() {
        r.error(
            format!("{path}.backends"),
            "a pool needs at least one backend",
        );
    }
    let mut seen = HashSet::new();
    let mut names = HashSet::new();
    let mut backends = Vec::with_capacity(p.backends.len());
    for (j, b) in p.backends.iter().enumerate() {
        let bpath = format!("{path}.backends[{j}]");
        let weight = match b.weight {
            None => 1,
            Some(w @ 1..=256) => w,
            Some(w) => {
                r.error(format!("{bpath}.weight"), format!("{w} is out of range; expected 1 to 256 (drain a backend instead of weight 0)"));
                1
            }
        };
        let name = b.name.clone().unwrap_or_else(|| b.address.clone());
        if name.trim().is_empty() {
            r.error(format!("{bpath}.name"), "must not be empty");
        }
        if !seen.insert(b.address.as_str()) {
            r.error(
                format!("{bpath}.address"),
                format!("duplicate backend {:?} in this pool", b.address),
            );
            continue;
        }
        if b.name.is_some() && !names.insert(name.clone()) {
            r.error(
                format!("{bpath}.name"),
                format!("duplicate backend name {name:?} in this pool"),
            );
        }
        match resolve(&b.address) {
            Ok(addr) => backends.push(BackendConfig { name, addr, weight }),
            Err(msg) => r.error(format!("{bpath}.address"), msg),
        }
    }
    if let Algorithm::Maglev { table_size } = algorithm
        && (table_size as usize) < 100 * p.backends.len()
    {
        r.warn(format!("{path}.maglev_table_size"), format!("table of {table_size} is smaller than 100 × {} backends; the spread will be uneven", p.backends.len()));
    }
    let health_check = p
        .health_check
        .as_ref()
        .and_then(|c| health_check(r, &format!("{path}.health_check"), c));
    Pool {
        name: p.name.clone(),
        algorithm,
        hash_key,
        backends,
        health_check,
        passive: p.passive.unwrap_or(true),
        fail_timeout: r.duration(
            &format!("{path}.fail_timeout"),
            p.fail_timeout.as_deref(),
            Duration::from_secs(10),
        ),
    }
}

fn resolve(address: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!(
            "invalid address {address:?}; expected host:port like \"db1:5432\""
        ));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!(
            "invalid address {address:?}; expected host:port like \"db1:5432\""
        ));
    }
    match address.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("host {host:?} resolved to no address")),
        Err(e) => Err(format!("cannot resolve host {host:?}: {e}")),
    }
}

fn health_check(r: &mut Report, path: &str, c: &RawHealthCheck) -> Option<CheckConfig> {
    let errors_before = r.errors.len();
    #[derive(Clone, Copy)]
    enum Kind {
        Tcp,
        SendExpect,
    }
    let kind = r.one_of(
        &format!("{path}.type"),
        c.kind.as_deref(),
        Kind::Tcp,
        &[("tcp", Kind::Tcp), ("send_expect", Kind::SendExpect)],
    );
    let interval = r.duration(
        &format!("{path}.interval"),
        c.interval.as_deref(),
        Duration::from_secs(2),
    );
    let timeout = r.duration(
        &format!("{path}.timeout"),
        c.timeout.as_deref(),
        Duration::from_secs(1),
    );
    if timeout > interval {
        r.warn(format!("{path}.timeout"), "is longer than the interval; probes of one backend will not overlap, so checks run less often");
    }
    let rise = r.range(&format!("{path}.rise"), c.rise, 2, 1, 100);
    let fall = r.range(&format!("{path}.fall"), c.fall, 3, 1, 100);
    let send = bytes(r, path, "send", c.send.as_deref(), c.send_hex.as_deref());
    let expect = bytes(
        r,
        path,
        "expect",
        c.expect.as_deref(),
        c.expect_hex.as_deref(),
    );
    let probe = match kind {
        Kind::Tcp => {
            if send.is_some() || expect.is_some() {
                r.error(
                    format!("{path}.type"),
                    "send/expect are set but type is \"tcp\"; use type = \"send_expect\"",
                );
            }
            Probe::Tcp
        }
        Kind::SendExpect => {
            let expect = expect.unwrap_or_default();
            if expect.is_empty() {
                r.error(
                    format!("{path}.expect"),
                    "send_expect checks need a non-empty expect (or expect_hex)",
                );
            }
            Probe::SendExpect {
                send: send.unwrap_or_default(),
                expect,
            }
        }
    };
    (r.errors.len() == errors_before).then_some(CheckConfig {
        probe,
        interval,
        timeout,
        rise,
        fall,
    })
}

fn bytes(
    r: &mut Report,
    path: &str,
    field: &str,
    text: Option<&str>,
    hex: Option<&str>,
) -> Option<Vec<u8>> {
    match (text, hex) {
        (Some(_), Some(_)) => {
            r.error(
                format!("{path}.{field}_hex"),
                format!("set either {field} or {field}_hex, not both"),
            );
            None
        }
        (Some(t), None) => Some(t.as_bytes().to_vec()),
        (None, Some(h)) => match decode_hex(h) {
            Ok(b) => Some(b),
            Err(msg) => {
                r.error(format!("{path}.{field}_hex"), msg);
                None
            }
        },
        (None, None) => None,
    }
}

/// Decodes hex digits, ignoring spaces (`"50 49 4e 47"`).
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err(format!("hex {text:?} has an odd number of digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16);
            let lo = (pair[1] as char).to_digit(16);
            match (hi, lo) {
                (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
                _ => Err(format!("invalid hex {text:?}")),
            }
        })
        .collect()
}
