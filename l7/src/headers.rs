//! Header work on the way through: hop-by-hop removal, forwarded headers,
//! request ids, and the routes' configured edits.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use weir_common::hash::mix64;
use weir_config::http::HeaderEdits;

/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Forwarded-For`. The names are built once: inserting by a `&str` name
/// that is not a standard header copies the name on every insert.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1).
/// `Trailer` is not one of them: it is end to end, and hyper sends an
/// HTTP/1.1 client only the trailer fields it names.
/// `Connection` comes first (`strip_hop_by_hop` treats it apart). A
/// `static`, not a `const`: a const array is built and dropped at each use.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers, including those the `Connection` header
/// names. `Upgrade` is removed too unless `keep_upgrade` (an upgrade being
/// passed through keeps `Connection: upgrade` and `Upgrade`).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names finds which are there: most messages carry
    // none of them but `Connection`, and a hashed removal of each of the
    // eight names cost more than all the rest of weir's header work.
    let (mut connection, mut others) = (false, false);
    for name in headers.keys() {
        // By text: one length switch and compare, where `HeaderName`
        // equality against each of the eight costs eight. (The names of
        // `HOP_BY_HOP` and `Upgrade`; a unit test holds the two together.)
        match name.as_str() {
            "connection" => connection = true,
            "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "transfer-encoding"
            | "upgrade" => others = true,
            _ => {}
        }
    }
    if connection {
        remove_connection_options(headers);
    }
    if others {
        for name in &HOP_BY_HOP[1..] {
            headers.remove(name);
        }
        if !keep_upgrade {
            headers.remove(header::UPGRADE);
        }
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if connection {
        headers.remove(header::CONNECTION);
    }
}

/// Removes the fields the `Connection` header names as its options.
fn remove_connection_options(headers: &mut HeaderMap) {
    // The usual tokens (keep-alive, close, upgrade, te) name nothing to
    // remove beyond the fixed list, so the common case allocates nothing.
    let usual = |t: &str| {
        ["keep-alive", "close", "upgrade", "te"]
            .iter()
            .any(|u| t.eq_ignore_ascii_case(u))
    };
    let named: Vec<HeaderName> = if headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .all(|t| usual(t.trim()))
    {
        Vec::new()
    } else {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter(|t| !usual(t.trim()))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect()
    };
    for name in named {
        headers.remove(name);
    }
}

/// True when the request's `TE` accepts trailers (the `trailers` token,
/// any case, among its comma-separated members).
pub fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
}

/// Adds the forwarding headers a backend needs to see the real client:
/// `client_ip` (the client's address as a header value, made once per
/// connection) appended to `X-Forwarded-For`, the protocol, and the host.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    host: &HeaderValue,
    proto: &'static str,
) {
    let prior = headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .filter(|p| !p.trim().is_empty());
    let xff = match prior {
        Some(prior) => HeaderValue::from_str(&format!(
            "{prior}, {}",
            client_ip.to_str().unwrap_or_default()
        ))
        .ok(),
        None => Some(client_ip.clone()),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if !host.is_empty() {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
}

/// The client's IP as a header value (IPv4-mapped IPv6 shown as IPv4).
pub fn ip_value(client: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&client.ip().to_canonical().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Appends an RFC 7239 `Forwarded` element for this hop:
/// `for=...;host=...;proto=...`, quoting what is not a token (IPv6
/// addresses are quoted and bracketed, §6).
pub fn add_rfc7239(headers: &mut HeaderMap, client: SocketAddr, host: &str, proto: &'static str) {
    let ip = client.ip().to_canonical();
    let for_ = if ip.is_ipv6() {
        format!("\"[{ip}]\"")
    } else {
        ip.to_string()
    };
    let mut element = format!("for={for_}");
    if !host.is_empty() {
        let token = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if token {
            element.push_str(&format!(";host={host}"));
        } else if !host.contains(['"', '\\']) {
            element.push_str(&format!(";host=\"{host}\""));
        }
    }
    element.push_str(&format!(";proto={proto}"));
    if let Ok(v) = HeaderValue::from_str(&element) {
        headers.append(http::header::FORWARDED, v);
    }
}

/// Appends this hop to `Via` (RFC 9110 §7.6.3): the protocol version the
/// message was received with, and the proxy's pseudonym.
pub fn add_via(headers: &mut HeaderMap, received: http::Version, pseudonym: &str) {
    let version = match received {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    };
    if let Ok(v) = HeaderValue::from_str(&format!("{version} {pseudonym}")) {
        headers.append(http::header::VIA, v);
    }
}

/// The request's id: the client's `X-Request-Id` if it is sane, otherwise a
/// new random one (32 hex digits), set on the request and returned.
///
/// The value returned is marked sensitive: an id is unique per request, so
/// HPACK (HTTP/2) must not add it to its dynamic table, where each new id
/// would evict a field worth keeping (4.6% of weir's instructions per
/// HTTP/2 request went to that churn). It changes nothing on HTTP/1.1.
pub fn request_id(headers: &mut HeaderMap, seed: u64) -> HeaderValue {
    if let Some(v) = headers.get(&REQUEST_ID)
        && !v.is_empty()
        && v.len() <= 128
        && v.as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    {
        let mut v = v.clone();
        v.set_sensitive(true);
        return v;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    for (half, word) in [mix64(seed), mix64(seed ^ 0x5bd1_e995)]
        .into_iter()
        .enumerate()
    {
        for i in 0..16 {
            id[half * 16 + i] = HEX[((word >> (60 - 4 * i)) & 0xf) as usize];
        }
    }
    let mut value = HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("0"));
    value.set_sensitive(true);
    headers.insert(REQUEST_ID, value.clone());
    value
}

/// The request's cookies as `(name, value)` pairs, from every `Cookie`
/// field (RFC 6265 §5.4: `name=value` pairs separated by `;`).
pub fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
}

/// Applies a route's edits: remove, then set, then add.
pub fn apply(headers: &mut HeaderMap, edits: &HeaderEdits) {
    for name in &edits.remove {
        headers.remove(name.as_str());
    }
    for (name, value) in &edits.set {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    for (name, value) in &edits.add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
}

/// The request host, lowercase, without the port: from the URI authority
/// (HTTP/2, absolute-form) or the `Host` header. `None` (a 400) for more
/// than one `Host` field (RFC 9112 §3.2), a host with user info
/// (`user@host`, which would route by one host and name another), or
/// characters no authority has. A `Host` that is already a lowercase name
/// without a port is returned as is (shared, not copied).
pub fn host_of(uri: &http::Uri, headers: &HeaderMap) -> Option<HeaderValue> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return None;
    }
    let (text, value) = match uri.authority() {
        Some(a) => (a.as_str(), None),
        None => {
            let v = first?;
            (v.to_str().ok()?, Some(v))
        }
    };
    let host = host_part(text)?;
    let lower = !host.bytes().any(|b| b.is_ascii_uppercase());
    match value {
        Some(v) if lower && host.len() == text.len() => Some(v.clone()),
        _ if lower => HeaderValue::from_str(host).ok(),
        _ => HeaderValue::from_str(&host.to_ascii_lowercase()).ok(),
    }
}

/// The host of an authority (`host[:port]`, `[v6][:port]`), checked.
fn host_part(authority: &str) -> Option<&str> {
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        let inner = &host[1..host.len() - 1];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        let port = match rest {
            "" => None,
            rest => Some(rest.strip_prefix(':')?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(port) = port
        && !port.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let reg_name = |b: u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b);
    (host.starts_with('[') || host.bytes().all(reg_name)).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-secret".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn each_hop_by_hop_header_goes_even_alone() {
        for name in HOP_BY_HOP.iter().chain([&header::UPGRADE]) {
            let mut h = HeaderMap::new();
            h.insert(name.clone(), "x".parse().unwrap());
            h.insert("x-kept", "1".parse().unwrap());
            strip_hop_by_hop(&mut h, false);
            assert_eq!(h.len(), 1, "{name} was forwarded");
            assert!(h.contains_key("x-kept"));
        }
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "a".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        let before = h.clone();
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h, before, "end-to-end headers are untouched");
    }

    #[test]
    fn an_upgrade_keeps_its_upgrade_and_says_so_in_connection() {
        for connection in [None, Some("Upgrade, x-secret")] {
            let mut h = HeaderMap::new();
            if let Some(c) = connection {
                h.insert(header::CONNECTION, c.parse().unwrap());
                h.insert("x-secret", "1".parse().unwrap());
            }
            h.insert(header::UPGRADE, "websocket".parse().unwrap());
            h.insert(header::TE, "trailers".parse().unwrap());
            strip_hop_by_hop(&mut h, true);
            assert_eq!(h.get(header::CONNECTION).unwrap(), "upgrade");
            assert_eq!(h.get(header::UPGRADE).unwrap(), "websocket");
            assert_eq!(h.len(), 2, "{h:?}");
        }
    }

    #[test]
    fn te_trailers_is_found_among_members() {
        let te = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::TE, v.parse().unwrap());
            }
            accepts_trailers(&h)
        };
        assert!(te(&["trailers"]));
        assert!(te(&["gzip;q=0.5, Trailers"]));
        assert!(te(&["gzip", "trailers"]));
        assert!(!te(&[]));
        assert!(!te(&["gzip, deflate"]));
        assert!(!te(&["trailersx"]));
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
        let ip = ip_value("[::ffff:10.1.2.3]:5555".parse().unwrap());
        assert_eq!(ip, "10.1.2.3");
        add_forwarded(&mut h, &ip, &HeaderValue::from_static("api.test"), "http");
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.test");
    }

    #[test]
    fn host_is_refused_when_doubled_or_with_user_info() {
        let origin: http::Uri = "/x".parse().unwrap();
        let host = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::HOST, v.parse().unwrap());
            }
            h
        };
        let of = |uri: &http::Uri, h: &HeaderMap| {
            host_of(uri, h).map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            of(&origin, &host(&["A.test:80"])).as_deref(),
            Some("a.test")
        );
        assert_eq!(of(&origin, &host(&["a.test"])).as_deref(), Some("a.test"));
        assert_eq!(
            of(&origin, &host(&["[::1]:8080"])).as_deref(),
            Some("[::1]")
        );
        assert_eq!(of(&origin, &host(&["[::1]x"])), None);
        assert_eq!(of(&origin, &host(&["a b"])), None);
        assert_eq!(of(&origin, &host(&["a:8o"])), None);
        assert_eq!(of(&origin, &host(&["a/b"])), None);
        assert_eq!(host_of(&origin, &host(&[])), None);
        assert_eq!(host_of(&origin, &host(&["a", "b"])), None);
        assert_eq!(host_of(&origin, &host(&["a", "a"])), None);
        assert_eq!(host_of(&origin, &host(&["user@a"])), None);
        let absolute: http::Uri = "http://other.test/x".parse().unwrap();
        assert_eq!(of(&absolute, &host(&["a"])).as_deref(), Some("other.test"));
        let with_user: http::Uri = "http://u@other.test/x".parse().unwrap();
        assert_eq!(host_of(&with_user, &host(&[])), None);
    }

    #[test]
    fn request_ids_are_kept_when_sane_and_made_otherwise() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, "abc-123".parse().unwrap());
        let kept = request_id(&mut h, 1);
        assert_eq!(kept, "abc-123");
        assert!(kept.is_sensitive(), "never indexed by HPACK");
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, "bad value!".parse().unwrap());
        let id = request_id(&mut h, 1);
        assert_eq!(id.len(), 32);
        assert!(id.is_sensitive() && h[REQUEST_ID].is_sensitive());
        assert_eq!(h[REQUEST_ID], id.to_str().unwrap());
        assert_ne!(request_id(&mut HeaderMap::new(), 2), id);
    }
}
