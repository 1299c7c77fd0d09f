//! HTTP listener validation: limits, access log, routes.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use super::{Pools, Report};
use crate::http::{
    AccessLog, HeaderEdits, HostMatch, HttpOptions, PathMatch, PathRegex, Route, RouteAction,
};
use crate::raw::{RawListener, RawRoute};

/// True for a valid HTTP header field name (RFC 9110 token).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// True for a header value we can send: visible ASCII, spaces and tabs, no
/// CR, LF or NUL (which would split or smuggle a header).
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// The HTTP options of a listener whose protocol is `http`.
pub(super) fn http_options(
    r: &mut Report,
    path: &str,
    l: &RawListener,
    pools: &Pools<'_>,
) -> HttpOptions {
    let access_log = match l.access_log.as_deref() {
        None | Some("stdout") => AccessLog::Stdout,
        Some("off") => AccessLog::Off,
        Some("") => {
            r.error(
                format!("{path}.access_log"),
                "must be \"stdout\", \"off\" or a file path",
            );
            AccessLog::Off
        }
        Some(file) => AccessLog::File(PathBuf::from(file)),
    };
    let raw_routes = l.routes.as_deref().unwrap_or_default();
    if raw_routes.is_empty() && l.pool.is_none() {
        r.error(
            format!("{path}.routes"),
            "an http listener needs at least one route (or a pool for every request)",
        );
    }
    let mut names = HashSet::new();
    let mut routes = Vec::with_capacity(raw_routes.len() + 1);
    for (i, raw) in raw_routes.iter().enumerate() {
        let rpath = format!("{path}.routes[{i}]");
        let route = route(r, &rpath, i, raw, pools);
        if !names.insert(route.name.clone()) {
            r.error(
                format!("{rpath}.name"),
                format!("duplicate route name {:?} in this listener", route.name),
            );
        }
        routes.push(route);
    }
    // The listener's own pool catches what no route matches: a last route
    // for any host and path. (An unknown pool is reported by the listener.)
    if let Some(pool) = l
        .pool
        .as_deref()
        .and_then(|name| pools.index.get(name).copied())
    {
        routes.push(Route {
            name: "default".to_owned(),
            host: None,
            path: PathMatch::Any,
            methods: Vec::new(),
            headers: Vec::new(),
            action: RouteAction::Forward {
                pool,
                strip_prefix: false,
                rewrite_prefix: None,
            },
            request_headers: HeaderEdits::default(),
            response_headers: HeaderEdits::default(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(300),
            retries: 1,
            auth: Vec::new(),
            rate_limits: Vec::new(),
        });
    }
    HttpOptions {
        header_read_timeout: r.duration(
            &format!("{path}.header_read_timeout"),
            l.header_read_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        max_header_bytes: r.range(
            &format!("{path}.max_header_bytes"),
            l.max_header_bytes,
            65_536,
            8_192,
            1_048_576,
        ) as usize,
        max_headers: r.range(&format!("{path}.max_headers"), l.max_headers, 100, 1, 1_000) as usize,
        max_body_bytes: r.range(
            &format!("{path}.max_body_bytes"),
            l.max_body_bytes,
            10 << 20,
            0,
            1 << 40,
        ),
        keepalive_timeout: r.duration(
            &format!("{path}.keepalive_timeout"),
            l.keepalive_timeout.as_deref(),
            Duration::from_secs(60),
        ),
        max_concurrent_streams: r.range(
            &format!("{path}.max_concurrent_streams"),
            l.max_concurrent_streams,
            100,
            1,
            10_000,
        ),
        access_log,
        forwarded: l.forwarded.unwrap_or(false),
        via: via(r, &format!("{path}.via"), l.via.as_deref()),
        routes,
    }
}

/// `via`: an HTTP token (RFC 9110 §5.6.2), the pseudonym `Via` carries.
fn via(r: &mut Report, path: &str, value: Option<&str>) -> Option<String> {
    let v = value?;
    let token = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        Some(v.to_owned())
    } else {
        r.error(
            path,
            format!(
                "{v:?} is not a token; use letters, digits and -._~ (e.g. \"weir\"), at most 64"
            ),
        );
        None
    }
}

fn route(r: &mut Report, path: &str, index: usize, raw: &RawRoute, pools: &Pools<'_>) -> Route {
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| format!("routes[{index}]"));
    if name.trim().is_empty() {
        r.error(format!("{path}.name"), "must not be empty");
    }
    let host = raw
        .host
        .as_deref()
        .map(|h| host(r, &format!("{path}.host"), h));
    let path_match = match (&raw.path, &raw.path_prefix) {
        (Some(_), Some(_)) => {
            r.error(
                format!("{path}.path_prefix"),
                "set path or path_prefix, not both",
            );
            PathMatch::Any
        }
        (Some(p), None) => {
            if !p.starts_with('/') {
                r.error(
                    format!("{path}.path"),
                    format!("path {p:?} must start with \"/\""),
                );
            }
            PathMatch::Exact(p.clone())
        }
        (None, Some(p)) => {
            if !p.starts_with('/') {
                r.error(
                    format!("{path}.path_prefix"),
                    format!("path_prefix {p:?} must start with \"/\""),
                );
            }
            let trimmed = p.trim_end_matches('/');
            PathMatch::Prefix(if trimmed.is_empty() {
                "/".to_owned()
            } else {
                trimmed.to_owned()
            })
        }
        (None, None) => PathMatch::Any,
    };
    let path_match = match &raw.path_regex {
        None => path_match,
        Some(_) if raw.path.is_some() || raw.path_prefix.is_some() => {
            r.error(
                format!("{path}.path_regex"),
                "set one of path, path_prefix and path_regex",
            );
            path_match
        }
        Some(source) => match PathRegex::new(source) {
            Ok(regex) => PathMatch::Regex(regex),
            Err(e) => {
                r.error(
                    format!("{path}.path_regex"),
                    format!("invalid regular expression {source:?}: {e}"),
                );
                PathMatch::Any
            }
        },
    };
    let methods: Vec<String> = raw
        .methods
        .iter()
        .flatten()
        .map(|m| {
            if !is_header_name(m) {
                r.error(format!("{path}.methods"), format!("invalid method {m:?}"));
            }
            m.to_ascii_uppercase()
        })
        .collect();
    let headers = header_map(r, &format!("{path}.headers"), raw.headers.as_ref());
    let is_prefix = matches!(path_match, PathMatch::Prefix(_));
    let strip_prefix = raw.strip_prefix.unwrap_or(false);
    if (strip_prefix || raw.rewrite_prefix.is_some()) && !is_prefix {
        let key = if strip_prefix {
            "strip_prefix"
        } else {
            "rewrite_prefix"
        };
        r.error(
            format!("{path}.{key}"),
            "only applies to a route with path_prefix",
        );
    }
    if strip_prefix && raw.rewrite_prefix.is_some() {
        r.error(
            format!("{path}.rewrite_prefix"),
            "set strip_prefix or rewrite_prefix, not both",
        );
    }
    if let Some(p) = &raw.rewrite_prefix
        && !p.starts_with('/')
    {
        r.error(
            format!("{path}.rewrite_prefix"),
            format!("rewrite_prefix {p:?} must start with \"/\""),
        );
    }
    let action = match (&raw.redirect, &raw.pool) {
        (Some(_), Some(_)) => {
            r.error(format!("{path}.redirect"), "set pool or redirect, not both");
            RouteAction::Redirect {
                code: 302,
                location: String::new(),
            }
        }
        (Some(location), None) => {
            let code = match raw.redirect_code {
                None => 302,
                Some(c @ (301 | 302 | 307 | 308)) => c,
                Some(c) => {
                    r.error(
                        format!("{path}.redirect_code"),
                        format!("{c} is not a redirect; use 301, 302, 307 or 308"),
                    );
                    302
                }
            };
            if location.is_empty() || !is_header_value(location) {
                r.error(
                    format!("{path}.redirect"),
                    format!("invalid location {location:?}"),
                );
            }
            RouteAction::Redirect {
                code,
                location: location.clone(),
            }
        }
        (None, pool) => {
            if raw.redirect_code.is_some() {
                r.error(
                    format!("{path}.redirect_code"),
                    "only applies with redirect",
                );
            }
            let pool = match pool {
                Some(name) => pools.resolve(r, &format!("{path}.pool"), name),
                None => {
                    r.error(
                        format!("{path}.pool"),
                        "a route needs a pool (or a redirect)",
                    );
                    None
                }
            };
            RouteAction::Forward {
                pool: pool.unwrap_or(0),
                strip_prefix,
                rewrite_prefix: raw.rewrite_prefix.clone(),
            }
        }
    };
    Route {
        name,
        host,
        path: path_match,
        methods,
        headers,
        action,
        request_headers: edits(
            r,
            path,
            "request_headers",
            raw.request_headers_set.as_ref(),
            raw.request_headers_add.as_ref(),
            raw.request_headers_remove.as_deref(),
        ),
        response_headers: edits(
            r,
            path,
            "response_headers",
            raw.response_headers_set.as_ref(),
            raw.response_headers_add.as_ref(),
            raw.response_headers_remove.as_deref(),
        ),
        connect_timeout: r.duration(
            &format!("{path}.connect_timeout"),
            raw.connect_timeout.as_deref(),
            Duration::from_secs(5),
        ),
        response_timeout: r.duration(
            &format!("{path}.response_timeout"),
            raw.response_timeout.as_deref(),
            Duration::from_secs(30),
        ),
        request_timeout: r.duration(
            &format!("{path}.request_timeout"),
            raw.request_timeout.as_deref(),
            Duration::from_secs(300),
        ),
        retries: r.range(&format!("{path}.retries"), raw.retries, 1, 0, 5),
        // Resolved once every provider is known (validate/auth.rs).
        auth: Vec::new(),
        rate_limits: Vec::new(),
    }
}

fn host(r: &mut Report, path: &str, text: &str) -> HostMatch {
    let lower = text.to_ascii_lowercase();
    let (wild, rest) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let valid = !rest.is_empty()
        && rest.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        r.error(
            path,
            format!("invalid host {text:?}; expected a name like \"api.example.com\" or \"*.example.com\" (no port)"),
        );
    }
    if wild {
        HostMatch::Suffix(format!(".{rest}"))
    } else {
        HostMatch::Exact(rest.to_owned())
    }
}

fn header_map(
    r: &mut Report,
    path: &str,
    map: Option<&BTreeMap<String, String>>,
) -> Vec<(String, String)> {
    map.into_iter()
        .flatten()
        .map(|(name, value)| {
            if !is_header_name(name) {
                r.error(path, format!("invalid header name {name:?}"));
            }
            if !is_header_value(value) {
                r.error(
                    path,
                    format!(
                        "invalid value for header {name:?}: control characters are not allowed"
                    ),
                );
            }
            (name.to_ascii_lowercase(), value.clone())
        })
        .collect()
}

fn edits(
    r: &mut Report,
    path: &str,
    which: &str,
    set: Option<&BTreeMap<String, String>>,
    add: Option<&BTreeMap<String, String>>,
    remove: Option<&[String]>,
) -> HeaderEdits {
    let remove = remove
        .unwrap_or_default()
        .iter()
        .map(|name| {
            if !is_header_name(name) {
                r.error(
                    format!("{path}.{which}_remove"),
                    format!("invalid header name {name:?}"),
                );
            }
            name.to_ascii_lowercase()
        })
        .collect();
    HeaderEdits {
        set: header_map(r, &format!("{path}.{which}_set"), set),
        add: header_map(r, &format!("{path}.{which}_add"), add),
        remove,
    }
}
