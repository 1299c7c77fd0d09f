//! Listener validation: addresses, protocol, limits and timeouts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Pools, Report};
use crate::duration::parse_duration;
use crate::model::{Listener, Protocol, UdpOptions};
use crate::raw::RawListener;

pub(super) fn listener(
    r: &mut Report,
    path: &str,
    l: &RawListener,
    pools: &Pools<'_>,
    bound: &mut HashMap<(Protocol, SocketAddr), String>,
) -> Listener {
    let protocol = r.one_of(
        &format!("{path}.protocol"),
        l.protocol.as_deref(),
        Protocol::Tcp,
        &[
            ("tcp", Protocol::Tcp),
            ("udp", Protocol::Udp),
            ("http", Protocol::Http),
            ("https", Protocol::Https),
        ],
    );
    // HTTP and HTTPS ride on TCP: they share its port space.
    let transport = if protocol == Protocol::Udp {
        Protocol::Udp
    } else {
        Protocol::Tcp
    };
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
                } else if let Some(first) = bound.get(&(transport, addr)) {
                    r.error(&field, format!("address {addr} is already used by {first}"));
                } else {
                    warn_overlaps(r, path, &field, transport, addr, bound);
                    bound.insert((transport, addr), field);
                    bind.push(addr);
                }
            }
            Err(_) => r.error(
                field,
                format!("invalid address {text:?}; expected IP:port like \"0.0.0.0:5432\" or \"[::]:5432\""),
            ),
        }
    }
    wrong_protocol(r, path, l, protocol);
    let pool = match (&l.pool, protocol) {
        (Some(name), _) => pools.resolve(r, &format!("{path}.pool"), name),
        (None, p) if p.is_http() => None,
        (None, _) => {
            r.error(
                format!("{path}.pool"),
                format!("{} listeners need a pool", protocol.name()),
            );
            None
        }
    };
    if let Some(p) = pool.and_then(|i| pools.pools.get(i))
        && !protocol.is_http()
        && p.request_key.is_some()
    {
        r.error(
            format!("{path}.pool"),
            format!(
                "pool {:?} hashes on an HTTP request key; only http listeners can use it",
                p.name
            ),
        );
    }
    let keepalive = keepalive(r, &format!("{path}.keepalive"), l.keepalive.as_deref());
    let default_idle = match protocol {
        Protocol::Udp => Duration::from_secs(30),
        _ => Duration::from_secs(3600),
    };
    let udp = (protocol == Protocol::Udp).then(|| UdpOptions {
        responses: l
            .responses
            .map(|n| r.range(&format!("{path}.responses"), Some(n), 1, 1, 1_000_000)),
        max_flows: l
            .max_flows
            .map(|n| r.range(&format!("{path}.max_flows"), Some(n), 1, 1, 1_000_000) as usize),
        max_datagram_size: r.range(
            &format!("{path}.max_datagram_size"),
            l.max_datagram_size,
            65_507,
            1,
            65_507,
        ) as usize,
        sockets: l
            .sockets
            .map(|n| r.range(&format!("{path}.sockets"), Some(n), 1, 1, 64) as usize),
    });
    let http = protocol
        .is_http()
        .then(|| super::route::http_options(r, path, l, pools));
    let tls = (protocol == Protocol::Https).then(|| super::tls::tls_options(r, path, l));
    Listener {
        name: l.name.clone(),
        bind,
        protocol,
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
            default_idle,
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
        udp,
        http,
        tls,
        client_limits: super::rate_limit::client_limits(r, path, l),
    }
}

/// Keys that only mean something for other protocols are errors, not
/// silently ignored settings.
fn wrong_protocol(r: &mut Report, path: &str, l: &RawListener, protocol: Protocol) {
    use Protocol::{Http, Https, Tcp, Udp};
    // What applies to http applies to https (HTTP over TLS) too.
    const HTTP: &[Protocol] = &[Http, Https];
    const TCP_HTTP: &[Protocol] = &[Tcp, Http, Https];
    let keys: [(&str, bool, &[Protocol]); 26] = [
        ("max_connections", l.max_connections.is_some(), TCP_HTTP),
        ("backlog", l.backlog.is_some(), TCP_HTTP),
        ("keepalive", l.keepalive.is_some(), TCP_HTTP),
        ("connect_timeout", l.connect_timeout.is_some(), &[Tcp]),
        ("connect_attempts", l.connect_attempts.is_some(), &[Tcp]),
        ("splice", l.splice.is_some(), &[Tcp]),
        ("idle_timeout", l.idle_timeout.is_some(), &[Tcp, Udp]),
        ("responses", l.responses.is_some(), &[Udp]),
        ("max_flows", l.max_flows.is_some(), &[Udp]),
        ("max_datagram_size", l.max_datagram_size.is_some(), &[Udp]),
        ("sockets", l.sockets.is_some(), &[Udp]),
        ("header_read_timeout", l.header_read_timeout.is_some(), HTTP),
        ("max_header_bytes", l.max_header_bytes.is_some(), HTTP),
        ("max_headers", l.max_headers.is_some(), HTTP),
        ("max_body_bytes", l.max_body_bytes.is_some(), HTTP),
        ("keepalive_timeout", l.keepalive_timeout.is_some(), HTTP),
        (
            "max_concurrent_streams",
            l.max_concurrent_streams.is_some(),
            HTTP,
        ),
        ("access_log", l.access_log.is_some(), HTTP),
        ("forwarded", l.forwarded.is_some(), HTTP),
        ("via", l.via.is_some(), HTTP),
        ("routes", l.routes.is_some(), HTTP),
        ("certificates", l.certificates.is_some(), &[Https]),
        ("tls_min_version", l.tls_min_version.is_some(), &[Https]),
        (
            "max_connections_per_client",
            l.max_connections_per_client.is_some(),
            &[Tcp],
        ),
        (
            "connection_rate_per_client",
            l.connection_rate_per_client.is_some(),
            &[Tcp],
        ),
        (
            "connection_burst_per_client",
            l.connection_burst_per_client.is_some(),
            &[Tcp],
        ),
    ];
    for (key, set, allowed) in keys {
        if set && !allowed.contains(&protocol) {
            let names: Vec<&str> = allowed.iter().map(|p| p.name()).collect();
            let names = match names.split_last() {
                Some((last, rest)) if !rest.is_empty() => {
                    format!("{} and {last}", rest.join(", "))
                }
                _ => names.concat(),
            };
            r.error(
                format!("{path}.{key}"),
                format!(
                    "only applies to {names} listeners; this listener's protocol is {:?}",
                    protocol.name()
                ),
            );
        }
    }
}

/// Linux refuses TCP_KEEPIDLE outside 1..=32767 seconds, and the proxy
/// ignores a failed setsockopt, so an out-of-range value would silently not
/// apply: the range is checked here instead.
const KEEPALIVE_MAX: Duration = Duration::from_secs(32_767);

fn keepalive(r: &mut Report, path: &str, value: Option<&str>) -> Option<Duration> {
    let default = Duration::from_secs(60);
    let text = match value {
        None => return Some(default),
        Some("off") => return None,
        Some(text) => text,
    };
    match parse_duration(text) {
        Ok(d) if (Duration::from_secs(1)..=KEEPALIVE_MAX).contains(&d) => Some(d),
        Ok(_) => {
            r.error(
                path,
                format!(
                    "keepalive {text:?} is out of range; expected 1s to 32767s (the kernel's limit), or \"off\""
                ),
            );
            Some(default)
        }
        Err(msg) => {
            r.error(path, format!("{msg}; or \"off\" to disable keepalive"));
            Some(default)
        }
    }
}

/// Warns when `addr` and an address already bound by another listener (or the
/// admin listener) share a port and one of them is the wildcard: both binds
/// succeed (SO_REUSEPORT), and the kernel quietly sends connections for the
/// specific address to its socket only.
fn warn_overlaps(
    r: &mut Report,
    listener: &str,
    field: &str,
    protocol: Protocol,
    addr: SocketAddr,
    bound: &HashMap<(Protocol, SocketAddr), String>,
) {
    let mut overlaps: Vec<(&SocketAddr, &String)> = bound
        .iter()
        .filter(|((p, _), _)| *p == protocol)
        .map(|((_, a), owner)| (a, owner))
        .filter(|(other, owner)| {
            other.port() == addr.port()
                && other.is_ipv4() == addr.is_ipv4()
                && other.ip().is_unspecified() != addr.ip().is_unspecified()
                && !owner.starts_with(&format!("{listener}."))
        })
        .collect();
    overlaps.sort_by(|a, b| a.1.cmp(b.1));
    for (other, owner) in overlaps {
        let specific = if addr.ip().is_unspecified() {
            other
        } else {
            &addr
        };
        r.warn(
            field,
            format!(
                "address {addr} overlaps {other} of {owner}; connections to {specific} go only to the socket bound to it"
            ),
        );
    }
}
