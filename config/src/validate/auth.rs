//! `[[jwt_providers]]` validation, and resolving routes' `auth` names.
//!
//! Key files are read here (not parsed: the gateway does that at start-up)
//! so `weir check` reports a missing or empty file at its field. Messages
//! name files and variables, never their contents.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::Report;
use super::route::is_header_name;
use crate::auth::{JwksUrl, JwtAlgorithm, JwtProvider, KeySources, SecretSource, TokenSource};
use crate::model::Listener;
use crate::raw::{RawConfig, RawJwtProvider};

/// Validates every provider; returns them and their index by name.
pub(super) fn providers<'a>(
    r: &mut Report,
    raw: &'a [RawJwtProvider],
) -> (Vec<JwtProvider>, HashMap<&'a str, usize>) {
    let mut index = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        let path = format!("jwt_providers[{i}]");
        if p.name.trim().is_empty() {
            r.error(format!("{path}.name"), "must not be empty");
        } else if index.insert(p.name.as_str(), i).is_some() {
            r.error(
                format!("{path}.name"),
                format!("duplicate provider name {:?}", p.name),
            );
        }
        out.push(provider(r, &path, p));
    }
    (out, index)
}

/// Headers a claim must not replace: request framing, routing and the
/// token itself, and the ones weir sets.
const RESERVED: [&str; 13] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "authorization",
    "cookie",
    "x-request-id",
    "forwarded",
];

fn provider(r: &mut Report, path: &str, p: &RawJwtProvider) -> JwtProvider {
    let issuer = match p.issuer.as_deref() {
        Some(i) if !i.is_empty() => i.to_owned(),
        Some(_) => {
            r.error(format!("{path}.issuer"), "must not be empty");
            String::new()
        }
        None => {
            r.error(
                format!("{path}.issuer"),
                "is required: the `iss` a token must carry",
            );
            String::new()
        }
    };
    let audiences = p.audiences.clone().unwrap_or_default();
    if p.audiences.as_ref().is_some_and(Vec::is_empty) {
        r.error(
            format!("{path}.audiences"),
            "must not be empty; leave it out to accept any audience",
        );
    }
    let algorithms = algorithms(r, path, p.algorithms.as_deref());
    let source = source(r, path, p);
    let keys = keys(r, path, p);
    let has_hmac = algorithms.iter().any(|a| a.is_hmac());
    let has_public = algorithms.iter().any(|a| !a.is_hmac());
    if keys.hmac_secret.is_some() && !has_hmac {
        r.error(
            format!("{path}.algorithms"),
            "an HMAC secret is configured but no HS* algorithm is allowed",
        );
    }
    if has_hmac && keys.hmac_secret.is_none() && keys.jwks_file.is_none() && keys.jwks_url.is_none()
    {
        r.error(
            format!("{path}.algorithms"),
            "HS* algorithms need hmac_secret_file or hmac_secret_env",
        );
    }
    if !keys.public_key_files.is_empty() && !has_public {
        r.error(
            format!("{path}.algorithms"),
            "public keys are configured but only HS* algorithms are allowed",
        );
    }
    let mut seen_headers = HashSet::new();
    let claims_to_headers = p
        .claims_to_headers
        .iter()
        .flatten()
        .map(|(claim, header)| {
            let field = format!("{path}.claims_to_headers");
            if claim.is_empty() {
                r.error(&field, "claim names must not be empty");
            }
            let lower = header.to_ascii_lowercase();
            if !is_header_name(header) {
                r.error(&field, format!("invalid header name {header:?}"));
            } else if RESERVED.contains(&lower.as_str()) || lower.starts_with("x-forwarded-") {
                r.error(
                    &field,
                    format!("header {header:?} is set by weir or the client's request framing; pick another name"),
                );
            }
            if !seen_headers.insert(lower.clone()) {
                r.error(&field, format!("header {header:?} is used twice"));
            }
            (claim.clone(), lower)
        })
        .collect();
    let realm = p.realm.clone().unwrap_or_else(|| "weir".to_owned());
    if realm.is_empty()
        || !realm
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        r.error(
            format!("{path}.realm"),
            "must be printable ASCII without quotes or backslashes",
        );
    }
    JwtProvider {
        name: p.name.clone(),
        issuer,
        audiences,
        algorithms,
        leeway: leeway(r, path, p.leeway.as_deref()),
        required_claims: p.required_claims.clone().unwrap_or_default(),
        required_scopes: p.required_scopes.clone().unwrap_or_default(),
        source,
        keys,
        claims_to_headers,
        forward_token: p.forward_token.unwrap_or(false),
        max_token_bytes: r.range(
            &format!("{path}.max_token_bytes"),
            p.max_token_bytes,
            8192,
            128,
            65_536,
        ) as usize,
        realm,
    }
}

/// Like [`Report::duration`], but `"0s"` is allowed: no skew at all.
fn leeway(r: &mut Report, path: &str, text: Option<&str>) -> Duration {
    match text.map(crate::duration::parse_duration) {
        None => Duration::from_secs(60),
        Some(Ok(d)) => d,
        Some(Err(msg)) => {
            r.error(format!("{path}.leeway"), msg);
            Duration::from_secs(60)
        }
    }
}

fn algorithms(r: &mut Report, path: &str, raw: Option<&[String]>) -> Vec<JwtAlgorithm> {
    let Some(raw) = raw else {
        r.error(
            format!("{path}.algorithms"),
            "is required: list the algorithms tokens may use, e.g. [\"RS256\"]",
        );
        return Vec::new();
    };
    if raw.is_empty() {
        r.error(
            format!("{path}.algorithms"),
            "must list at least one algorithm",
        );
    }
    let mut out = Vec::new();
    for (j, name) in raw.iter().enumerate() {
        let field = format!("{path}.algorithms[{j}]");
        if name.eq_ignore_ascii_case("none") {
            r.error(field, "\"none\" is never accepted: tokens must be signed");
            continue;
        }
        match JwtAlgorithm::from_name(name) {
            Some(a) if out.contains(&a) => r.error(field, format!("{name:?} is listed twice")),
            Some(a) => out.push(a),
            None => {
                let names: Vec<&str> = JwtAlgorithm::ALL.iter().map(|(n, _)| *n).collect();
                r.error(
                    field,
                    format!(
                        "unknown algorithm {name:?}; expected one of: {}",
                        names.join(", ")
                    ),
                );
            }
        }
    }
    out
}

fn source(r: &mut Report, path: &str, p: &RawJwtProvider) -> TokenSource {
    let set: Vec<(&str, &String)> = [
        ("header", p.header.as_ref()),
        ("cookie", p.cookie.as_ref()),
        ("query", p.query.as_ref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    if set.len() > 1 {
        r.error(
            format!("{path}.{}", set[1].0),
            "set at most one of header, cookie and query",
        );
    }
    match set.first() {
        None => TokenSource::Bearer,
        Some((key, name)) => {
            let valid = match *key {
                "header" => is_header_name(name),
                _ => {
                    !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_graphic() && !b"=;&,".contains(&b))
                }
            };
            if !valid {
                r.error(
                    format!("{path}.{key}"),
                    format!("invalid {key} name {name:?}"),
                );
            }
            match *key {
                "header" => TokenSource::Header(name.to_ascii_lowercase()),
                "cookie" => TokenSource::Cookie((*name).clone()),
                _ => TokenSource::Query((*name).clone()),
            }
        }
    }
}

/// Reads `file` to check it exists and is not empty; the error names the
/// file, never its contents.
fn readable(r: &mut Report, field: &str, file: &str) -> std::path::PathBuf {
    let resolved = r.file(file);
    match std::fs::metadata(&resolved) {
        Ok(m) if m.is_file() && m.len() > 0 => {}
        Ok(m) if m.is_file() => r.error(field, format!("{} is empty", resolved.display())),
        Ok(_) => r.error(field, format!("{} is not a file", resolved.display())),
        Err(e) => r.error(field, format!("cannot read {}: {e}", resolved.display())),
    }
    resolved
}

fn keys(r: &mut Report, path: &str, p: &RawJwtProvider) -> KeySources {
    let hmac_secret = match (&p.hmac_secret_file, &p.hmac_secret_env) {
        (Some(_), Some(_)) => {
            r.error(
                format!("{path}.hmac_secret_env"),
                "set hmac_secret_file or hmac_secret_env, not both",
            );
            None
        }
        (Some(file), None) => Some(SecretSource::File(readable(
            r,
            &format!("{path}.hmac_secret_file"),
            file,
        ))),
        (None, Some(var)) => {
            if var.is_empty() || var.contains(['=', '\0']) {
                r.error(
                    format!("{path}.hmac_secret_env"),
                    format!("invalid environment variable name {var:?}"),
                );
            }
            Some(SecretSource::Env(var.clone()))
        }
        (None, None) => None,
    };
    let public_key_files = p
        .public_key_files
        .iter()
        .flatten()
        .enumerate()
        .map(|(j, f)| readable(r, &format!("{path}.public_key_files[{j}]"), f))
        .collect();
    let jwks_file = p
        .jwks_file
        .as_deref()
        .map(|f| readable(r, &format!("{path}.jwks_file"), f));
    let refresh = r.duration(
        &format!("{path}.jwks_refresh"),
        p.jwks_refresh.as_deref(),
        Duration::from_secs(300),
    );
    let cooldown = r.duration(
        &format!("{path}.jwks_cooldown"),
        p.jwks_cooldown.as_deref(),
        Duration::from_secs(30),
    );
    let jwks_url = match p.jwks_url.as_deref() {
        None => {
            for (key, set) in [
                ("jwks_refresh", p.jwks_refresh.is_some()),
                ("jwks_cooldown", p.jwks_cooldown.is_some()),
                ("jwks_ca_file", p.jwks_ca_file.is_some()),
            ] {
                if set {
                    r.error(format!("{path}.{key}"), "only applies with jwks_url");
                }
            }
            None
        }
        Some(url) => {
            if !valid_http_url(url) {
                r.error(
                    format!("{path}.jwks_url"),
                    format!("invalid URL {url:?}; expected https://host[:port]/path or http://…"),
                );
            }
            let ca_file = p.jwks_ca_file.as_deref().map(|f| r.file(f));
            if let Some(ca) = &ca_file {
                if !url.starts_with("https://") {
                    r.error(
                        format!("{path}.jwks_ca_file"),
                        "only applies to an https jwks_url",
                    );
                } else if let Err(e) = crate::upstream_tls::load_roots(ca) {
                    r.error(format!("{path}.jwks_ca_file"), e);
                }
            }
            Some(JwksUrl {
                url: url.to_owned(),
                ca_file,
                refresh,
                cooldown,
            })
        }
    };
    let keys = KeySources {
        hmac_secret,
        public_key_files,
        jwks_file,
        jwks_url,
    };
    if keys == KeySources::default() {
        r.error(
            path,
            "a provider needs keys: hmac_secret_file, hmac_secret_env, public_key_files, jwks_file or jwks_url",
        );
    }
    keys
}

/// `http://authority/path`: what the gateway's client can fetch.
fn valid_http_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    !authority.is_empty() && url.bytes().all(|b| b.is_ascii_graphic()) && !authority.contains('@')
}

/// Sets each route's `auth` from the raw routes' names, reporting unknown
/// names at `listeners[i].routes[j].auth[k]`.
pub(super) fn resolve_routes(
    r: &mut Report,
    raw: &RawConfig,
    index: &HashMap<&str, usize>,
    listeners: &mut [Listener],
) {
    let mut used = HashSet::new();
    for (i, (rl, l)) in raw.listeners.iter().zip(listeners.iter_mut()).enumerate() {
        let Some(http) = l.http.as_mut() else {
            continue;
        };
        for (j, route) in rl.routes.iter().flatten().enumerate() {
            let Some(names) = &route.auth else { continue };
            let path = format!("listeners[{i}].routes[{j}].auth");
            if names.as_slice().is_empty() {
                r.error(
                    &path,
                    "must name at least one provider; leave it out for an open route",
                );
            }
            let mut ids = Vec::new();
            for (k, name) in names.as_slice().iter().enumerate() {
                match index.get(name.as_str()) {
                    Some(&id) if ids.contains(&id) => {
                        r.error(format!("{path}[{k}]"), format!("{name:?} is listed twice"))
                    }
                    Some(&id) => ids.push(id),
                    None => r.error(
                        format!("{path}[{k}]"),
                        format!("no jwt provider named {name:?}"),
                    ),
                }
            }
            used.extend(ids.iter().copied());
            if let Some(target) = http.routes.get_mut(j) {
                target.auth = ids;
            }
        }
    }
    for (i, p) in raw.jwt_providers.iter().enumerate() {
        if !used.contains(&i) {
            r.warn(
                format!("jwt_providers[{i}]"),
                format!("jwt provider {:?} is not used by any route", p.name),
            );
        }
    }
}
