//! Rate-limit validation: `[[rate_limits]]` policies, `[redis]`, the routes'
//! references to policies, and TCP listeners' per-client limits.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::Report;
use super::route::is_header_name;
use crate::model::Listener;
use crate::rate_limit::{
    ClientLimitOptions, KeyPart, OnError, RateLimitPolicy, RedisConfig, Scope, Secret, parse_rate,
};
use crate::raw::{RawConfig, RawListener, RawRateLimit, RawRedis};

/// The policies and the Redis server, validated.
pub(super) fn policies(
    r: &mut Report,
    raw: &RawConfig,
) -> (Vec<RateLimitPolicy>, Option<RedisConfig>) {
    let redis = raw.redis.as_ref().map(|c| redis(r, c));
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(raw.rate_limits.len());
    for (i, p) in raw.rate_limits.iter().enumerate() {
        let path = format!("rate_limits[{i}]");
        if p.name.trim().is_empty() {
            r.error(format!("{path}.name"), "must not be empty");
        } else if !names.insert(p.name.as_str()) {
            r.error(
                format!("{path}.name"),
                format!("duplicate rate limit name {:?}", p.name),
            );
        }
        let policy = policy(r, &path, p);
        if policy.scope == Scope::Global && raw.redis.is_none() {
            r.error(
                format!("{path}.scope"),
                "a global rate limit needs a [redis] section",
            );
        }
        out.push(policy);
    }
    if raw.redis.is_some() && !out.iter().any(|p| p.scope == Scope::Global) {
        r.warn(
            "redis",
            "no rate limit has scope = \"global\"; [redis] is unused",
        );
    }
    (out, redis)
}

fn policy(r: &mut Report, path: &str, p: &RawRateLimit) -> RateLimitPolicy {
    let (count, period) = match parse_rate(&p.rate) {
        Ok(rate) => rate,
        Err(msg) => {
            r.error(format!("{path}.rate"), msg);
            (1, Duration::from_secs(1))
        }
    };
    let burst = r.range(&format!("{path}.burst"), p.burst, count, 1, 1_000_000_000);
    let key = match &p.key {
        None => vec![KeyPart::ClientIp],
        Some(k) => key(r, &format!("{path}.key"), k.as_slice()),
    };
    let scope = r.one_of(
        &format!("{path}.scope"),
        p.scope.as_deref(),
        Scope::Local,
        &[("local", Scope::Local), ("global", Scope::Global)],
    );
    let on_error = r.one_of(
        &format!("{path}.on_error"),
        p.on_error.as_deref(),
        OnError::FailOpen,
        &[
            ("fail_open", OnError::FailOpen),
            ("fail_closed", OnError::FailClosed),
        ],
    );
    let timeout = r.duration(
        &format!("{path}.timeout"),
        p.timeout.as_deref(),
        Duration::from_millis(50),
    );
    if scope == Scope::Local {
        for (field, set) in [
            ("on_error", p.on_error.is_some()),
            ("timeout", p.timeout.is_some()),
        ] {
            if set {
                r.error(
                    format!("{path}.{field}"),
                    "only applies to a rate limit with scope = \"global\"",
                );
            }
        }
    }
    RateLimitPolicy {
        name: p.name.clone(),
        count,
        period,
        burst,
        key,
        scope,
        on_error,
        timeout,
        dry_run: p.dry_run.unwrap_or(false),
        headers: p.headers.unwrap_or(false),
    }
}

fn key(r: &mut Report, path: &str, parts: &[String]) -> Vec<KeyPart> {
    if parts.is_empty() {
        r.error(path, "at least one key part is required");
    }
    let mut out = Vec::with_capacity(parts.len());
    for text in parts {
        let part = match text.as_str() {
            "client_ip" => Some(KeyPart::ClientIp),
            "route" => Some(KeyPart::Route),
            t => match t.split_once(':') {
                Some(("header", name)) if is_header_name(name) => {
                    Some(KeyPart::Header(name.to_ascii_lowercase()))
                }
                Some(("claim", name))
                    if !name.is_empty() && !name.contains(char::is_whitespace) =>
                {
                    Some(KeyPart::Claim(name.to_owned()))
                }
                _ => None,
            },
        };
        match part {
            Some(p) if out.contains(&p) => {
                r.error(path, format!("key part {text:?} is listed twice"));
            }
            Some(p) => out.push(p),
            None => r.error(
                path,
                format!(
                    "unknown key {text:?}; expected \"client_ip\", \"header:NAME\", \"claim:NAME\" or \"route\""
                ),
            ),
        }
    }
    out
}

fn redis(r: &mut Report, c: &RawRedis) -> RedisConfig {
    let (host, port) = match c.address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => match port.parse::<u16>() {
            Ok(p) if p > 0 => (host.trim_start_matches('[').trim_end_matches(']'), p),
            _ => {
                r.error("redis.address", format!("invalid port in {:?}", c.address));
                ("", 0)
            }
        },
        _ => {
            r.error(
                "redis.address",
                format!(
                    "invalid address {:?}; expected host:port like \"127.0.0.1:6379\"",
                    c.address
                ),
            );
            ("", 0)
        }
    };
    // The environment wins when its variable is set (a deployment can
    // override the file without editing the configuration).
    let from_env = c
        .password_env
        .as_deref()
        .and_then(|var| std::env::var(var).ok().map(Secret::new));
    let password = match (from_env, &c.password_file, &c.password_env) {
        (Some(p), _, _) => Some(p),
        (None, Some(file), _) => match std::fs::read_to_string(r.file(file)) {
            Ok(text) => Some(Secret::new(text.trim_end_matches(['\r', '\n']).to_owned())),
            Err(e) => {
                r.error("redis.password_file", format!("cannot read {file:?}: {e}"));
                None
            }
        },
        (None, None, Some(var)) => {
            r.error(
                "redis.password_env",
                format!("environment variable {var:?} is not set (or not UTF-8)"),
            );
            None
        }
        (None, None, None) => None,
    };
    if password.is_none() && c.username.is_some() {
        r.error("redis.username", "a username needs a password");
    }
    RedisConfig {
        host: host.to_owned(),
        port,
        username: c.username.clone(),
        password,
        key_prefix: c
            .key_prefix
            .clone()
            .unwrap_or_else(|| "weir:rl:".to_owned()),
        connect_timeout: r.duration(
            "redis.connect_timeout",
            c.connect_timeout.as_deref(),
            Duration::from_secs(1),
        ),
    }
}

/// Resolves every route's `rate_limits` names into policy indices (routes
/// are validated in file order, so route `j` of listener `i` is
/// `raw.listeners[i].routes[j]`), and warns about unused policies.
pub(super) fn resolve_routes(
    r: &mut Report,
    raw: &RawConfig,
    policies: &[RateLimitPolicy],
    listeners: &mut [Listener],
) {
    let index: HashMap<&str, usize> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    let mut used = HashSet::new();
    for (i, (raw_l, l)) in raw.listeners.iter().zip(listeners.iter_mut()).enumerate() {
        let raw_routes = raw_l.routes.as_deref().unwrap_or_default();
        let Some(http) = l.http.as_mut() else {
            continue;
        };
        for (j, (raw_r, route)) in raw_routes.iter().zip(http.routes.iter_mut()).enumerate() {
            let Some(names) = &raw_r.rate_limits else {
                continue;
            };
            let path = format!("listeners[{i}].routes[{j}].rate_limits");
            if raw_r.redirect.is_some() {
                r.error(&path, "only applies to a route with a pool");
                continue;
            }
            for name in names {
                match index.get(name.as_str()) {
                    Some(&p) if route.rate_limits.contains(&p) => {
                        r.error(&path, format!("rate limit {name:?} is listed twice"));
                    }
                    Some(&p) => {
                        used.insert(p);
                        route.rate_limits.push(p);
                    }
                    None => r.error(&path, format!("no rate limit named {name:?}")),
                }
            }
        }
    }
    for (i, p) in policies.iter().enumerate() {
        if !used.contains(&i) {
            r.warn(
                format!("rate_limits[{i}]"),
                format!("rate limit {:?} is not used by any route", p.name),
            );
        }
    }
}

/// The per-client connection limits of a listener.
pub(super) fn client_limits(r: &mut Report, path: &str, l: &RawListener) -> ClientLimitOptions {
    let max_connections = l.max_connections_per_client.map(|n| {
        r.range(
            &format!("{path}.max_connections_per_client"),
            Some(n),
            1,
            1,
            1_000_000,
        )
    });
    let rate = l
        .connection_rate_per_client
        .as_deref()
        .and_then(|text| match parse_rate(text) {
            Ok((count, period)) => {
                let burst = r.range(
                    &format!("{path}.connection_burst_per_client"),
                    l.connection_burst_per_client,
                    count.min(1_000_000) as u32,
                    1,
                    1_000_000,
                );
                Some((count, period, u64::from(burst)))
            }
            Err(msg) => {
                r.error(format!("{path}.connection_rate_per_client"), msg);
                None
            }
        });
    if l.connection_burst_per_client.is_some() && l.connection_rate_per_client.is_none() {
        r.error(
            format!("{path}.connection_burst_per_client"),
            "only applies with connection_rate_per_client",
        );
    }
    ClientLimitOptions {
        max_connections,
        rate,
    }
}
