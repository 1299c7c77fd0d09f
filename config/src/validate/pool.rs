//! Pool validation: algorithm, backends (resolved), health checks.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use weir_common::health::checker::CheckConfig;
use weir_common::health::probe::Probe;
use weir_common::select::{Algorithm, DEFAULT_MAGLEV_TABLE_SIZE, HashKey, is_prime};

use super::Report;
use crate::duration::format_duration;
use crate::http::{RequestKey, UpstreamVersion};
use crate::model::{BackendConfig, Pool};
use crate::raw::{RawHealthCheck, RawPool};

pub(super) fn pool(r: &mut Report, path: &str, p: &RawPool) -> Pool {
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
            // Stand-in; `known` keeps the options checks below from piling
            // more errors onto one typo.
            Algorithm::RoundRobin
        }
    };
    let known = Algorithm::NAMES.contains(&algo_name);
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
            _ if !known => {}
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
            _ if !known => {}
            _ => r.error(
                format!("{path}.balance_factor"),
                format!("only applies to algorithm \"ring_hash\", not {algo_name:?}"),
            ),
        }
    }
    let (hash_key, request_key) = hash_key(r, &format!("{path}.hash_key"), p.hash_key.as_deref());
    if let Some(key) = &p.hash_key
        && known
        && !algorithm.uses_key()
    {
        r.warn(
            format!("{path}.hash_key"),
            format!("hash_key {key:?} has no effect with algorithm {algo_name:?}; only maglev and ring_hash hash"),
        );
    }

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
        // Default names (the address) count too: two backends must never
        // share an identity, which hashing and metrics key on.
        if !names.insert(name.clone()) {
            r.error(
                format!("{bpath}.name"),
                format!("duplicate backend name {name:?} in this pool"),
            );
        }
        match resolve(&b.address) {
            Ok(addr) if addr.port() == 0 => r.error(
                format!("{bpath}.address"),
                format!(
                    "address {:?} has port 0; a backend needs the port it listens on",
                    b.address
                ),
            ),
            Ok(addr) => backends.push(BackendConfig { name, addr, weight }),
            Err(msg) => r.error(format!("{bpath}.address"), msg),
        }
    }
    if let Algorithm::Maglev { table_size } = algorithm
        && (table_size as usize) < 100 * p.backends.len()
    {
        r.warn(format!("{path}.maglev_table_size"), format!("table of {table_size} is smaller than 100 × {} backends; the spread will be uneven", p.backends.len()));
    }
    let http_version = http_version(
        r,
        &format!("{path}.http_version"),
        p.http_version.as_deref(),
    );
    let tls = p
        .tls
        .as_ref()
        .and_then(|t| super::upstream_tls::upstream_tls(r, &format!("{path}.tls"), t, &p.backends));
    match (http_version, &tls) {
        (UpstreamVersion::H2, None) if p.tls.is_none() => r.error(
            format!("{path}.http_version"),
            "\"h2\" is HTTP/2 over TLS and needs [pools.tls]; use \"h2c\" for cleartext HTTP/2",
        ),
        (UpstreamVersion::H2c, _) if p.tls.is_some() => r.error(
            format!("{path}.http_version"),
            "\"h2c\" is cleartext HTTP/2, but the pool has [pools.tls]; use \"h2\" for HTTP/2 over TLS",
        ),
        _ => {}
    }
    let health_check = p
        .health_check
        .as_ref()
        .and_then(|c| health_check(r, &format!("{path}.health_check"), c));
    Pool {
        name: p.name.clone(),
        algorithm,
        hash_key,
        request_key,
        outlier_detection: outlier_detection(r, path, p),
        backends,
        health_check,
        passive: p.passive.unwrap_or(true),
        fail_timeout: r.duration(
            &format!("{path}.fail_timeout"),
            p.fail_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        http_version,
        tls,
    }
}

/// Parses `http_version`: `"http1"` (the default), `"h2c"` or `"h2"`.
fn http_version(r: &mut Report, path: &str, value: Option<&str>) -> UpstreamVersion {
    match value {
        None | Some("http1") => UpstreamVersion::Http1,
        Some("h2c") => UpstreamVersion::H2c,
        Some("h2") => UpstreamVersion::H2,
        Some(other) => {
            r.error(
                path,
                format!(
                    "unknown value {other:?}; expected one of: {}",
                    UpstreamVersion::NAMES.join(", ")
                ),
            );
            UpstreamVersion::Http1
        }
    }
}

/// Parses `hash_key`: a connection key, or an HTTP request key (whose
/// fallback, for requests without the header or cookie, is the client IP).
fn hash_key(r: &mut Report, path: &str, value: Option<&str>) -> (HashKey, Option<RequestKey>) {
    let Some(text) = value else {
        return (HashKey::ClientIp, None);
    };
    let named = |prefix: &str| text.strip_prefix(prefix).map(str::to_ascii_lowercase);
    let request_key = if text == "path" {
        Some(RequestKey::Path)
    } else if let Some(name) = named("header:") {
        if !super::route::is_header_name(&name) {
            r.error(
                path,
                format!("{text:?} needs a valid header name after \"header:\""),
            );
        }
        Some(RequestKey::Header(name))
    } else if let Some(name) = text.strip_prefix("cookie:") {
        if name.is_empty() || name.contains([';', '=', ' ']) {
            r.error(
                path,
                format!("{text:?} needs a cookie name after \"cookie:\""),
            );
        }
        Some(RequestKey::Cookie(name.to_owned()))
    } else {
        None
    };
    if request_key.is_some() {
        return (HashKey::ClientIp, request_key);
    }
    let key = match text {
        "client_ip" => HashKey::ClientIp,
        "client_ip_port" => HashKey::ClientIpPort,
        other => {
            r.error(
                path,
                format!(
                    "unknown value {other:?}; expected one of: client_ip, client_ip_port, header:NAME, cookie:NAME, path"
                ),
            );
            HashKey::ClientIp
        }
    };
    (key, None)
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
        Udp,
        Http,
    }
    const KINDS: [(&str, Kind); 4] = [
        ("tcp", Kind::Tcp),
        ("send_expect", Kind::SendExpect),
        ("udp", Kind::Udp),
        ("http", Kind::Http),
    ];
    let kind = r.one_of(
        &format!("{path}.type"),
        c.kind.as_deref(),
        Kind::Tcp,
        &KINDS,
    );
    let kind_name = c.kind.as_deref().unwrap_or("tcp");
    let known = KINDS.iter().any(|(name, _)| *name == kind_name);
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
        r.warn(
            format!("{path}.timeout"),
            format!(
                "timeout {} is longer than interval {}; probes of one backend never overlap, so checks run less often",
                format_duration(timeout),
                format_duration(interval)
            ),
        );
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
    if !known {
        // The type is already reported; still check the http values so one
        // round shows every mistake.
        http_fields(r, path, c);
    } else if !matches!(kind, Kind::Http) {
        for (key, set) in [
            ("path", c.path.is_some()),
            ("method", c.method.is_some()),
            ("host", c.host.is_some()),
            ("expect_status", c.expect_status.is_some()),
        ] {
            if set {
                r.error(
                    format!("{path}.{key}"),
                    format!("only applies to type \"http\", not {kind_name:?}"),
                );
            }
        }
    }
    let probe = match kind {
        Kind::Http => {
            for (key, set) in [
                ("send", c.send.is_some()),
                ("send_hex", c.send_hex.is_some()),
                ("expect", c.expect.is_some()),
                ("expect_hex", c.expect_hex.is_some()),
            ] {
                if set {
                    r.error(
                        format!("{path}.{key}"),
                        "only applies to type \"send_expect\" or \"udp\", not \"http\"",
                    );
                }
            }
            http_fields(r, path, c)
        }
        Kind::Tcp => {
            if send.is_some() || expect.is_some() {
                r.error(
                    format!("{path}.type"),
                    "send/expect are set but type is \"tcp\"; use type = \"send_expect\"",
                );
            }
            Probe::Tcp
        }
        Kind::SendExpect | Kind::Udp => {
            let name = if matches!(kind, Kind::Udp) {
                "udp"
            } else {
                "send_expect"
            };
            // A bad expect_hex (or both given) is already reported.
            let given = c.expect.is_some() || c.expect_hex.is_some();
            let reported = given && expect.is_none();
            let expect = expect.unwrap_or_default();
            if expect.is_empty() && !reported {
                r.error(
                    format!("{path}.expect"),
                    format!("{name} checks need a non-empty expect (or expect_hex)"),
                );
            }
            let send_given = c.send.is_some() || c.send_hex.is_some();
            let send = send.unwrap_or_default();
            if matches!(kind, Kind::Udp) {
                if !send_given {
                    r.error(
                        format!("{path}.send"),
                        "udp checks need a non-empty send (or send_hex): a datagram to ask with",
                    );
                }
                Probe::Udp { send, expect }
            } else {
                Probe::SendExpect { send, expect }
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

/// The probe of an `http` check, reporting bad values of its keys.
fn http_fields(r: &mut Report, path: &str, c: &RawHealthCheck) -> Probe {
    // Request line and Host header: visible ASCII only, so nothing can split
    // or smuggle into the request.
    let visible = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic());
    let target = c.path.clone().unwrap_or_else(|| "/".to_owned());
    if !target.starts_with('/') {
        r.error(
            format!("{path}.path"),
            format!("path {target:?} must start with \"/\""),
        );
    } else if !visible(&target) {
        r.error(
            format!("{path}.path"),
            format!(
                "path {target:?} must be visible ASCII without spaces (percent-encode the rest)"
            ),
        );
    }
    let method = c.method.as_deref().unwrap_or("GET");
    if !super::route::is_header_name(method) {
        r.error(
            format!("{path}.method"),
            format!("invalid method {method:?}; expected an HTTP token like \"GET\" or \"HEAD\""),
        );
    }
    if let Some(host) = &c.host
        && !visible(host)
    {
        r.error(
            format!("{path}.host"),
            format!("host {host:?} must be non-empty visible ASCII, without spaces or control characters"),
        );
    }
    let expect_status = match c.expect_status.as_deref() {
        None => (200, 399),
        Some(text) => status_range(text).unwrap_or_else(|msg| {
            r.error(format!("{path}.expect_status"), msg);
            (200, 399)
        }),
    };
    Probe::Http {
        method: method.to_ascii_uppercase(),
        path: target,
        host: c.host.clone(),
        expect_status,
    }
}

/// Parses `"200-399"` or `"204"` into an inclusive range within 100..=599.
fn status_range(text: &str) -> Result<(u16, u16), String> {
    let code = |part: &str| {
        let part = part.trim();
        (part.len() == 3 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u16>().ok())
            .flatten()
    };
    let parsed = match text.split_once('-') {
        Some((low, high)) => code(low).zip(code(high)),
        None => code(text).map(|c| (c, c)),
    };
    let Some((low, high)) = parsed else {
        return Err(format!(
            "invalid status {text:?}; expected a code like \"204\" or a range like \"200-399\""
        ));
    };
    if !(100..=599).contains(&low) || !(100..=599).contains(&high) {
        return Err(format!("status {text:?} is outside 100 to 599"));
    }
    if low > high {
        return Err(format!(
            "status range {text:?} is reversed; write \"{high}-{low}\""
        ));
    }
    Ok((low, high))
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

/// `[pools.outlier_detection]`.
fn outlier_detection(
    r: &mut Report,
    path: &str,
    p: &RawPool,
) -> Option<crate::http::OutlierDetection> {
    let o = p.outlier_detection.as_ref()?;
    let path = format!("{path}.outlier_detection");
    let base = r.duration(
        &format!("{path}.base_ejection"),
        o.base_ejection.as_deref(),
        Duration::from_secs(30),
    );
    let max = r.duration(
        &format!("{path}.max_ejection"),
        o.max_ejection.as_deref(),
        Duration::from_secs(300),
    );
    if max < base {
        r.error(
            format!("{path}.max_ejection"),
            format!(
                "max_ejection {} is shorter than base_ejection {}",
                format_duration(max),
                format_duration(base)
            ),
        );
    }
    Some(crate::http::OutlierDetection {
        consecutive_failures: r.range(
            &format!("{path}.consecutive_failures"),
            o.consecutive_failures,
            5,
            1,
            1000,
        ),
        base_ejection: base,
        max_ejection: max,
    })
}
