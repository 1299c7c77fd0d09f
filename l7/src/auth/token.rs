//! Where a request carries its token, and removing it before forwarding.
//!
//! Default `Authorization: Bearer <token>` (RFC 6750 §2.1, the scheme
//! case-insensitive); or a named header, cookie or query parameter. A
//! request that carries the token twice there is malformed: which one would
//! the backend believe?

use http::header::{self, HeaderValue};
use http::request::Parts;
use weir_config::auth::TokenSource;

/// What a request carries where a provider looks.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// Nothing.
    Missing,
    /// One token.
    Token(String),
    /// Something unusable (two tokens, an empty one, non-ASCII).
    Malformed,
}

fn one<'a>(mut values: impl Iterator<Item = &'a str>) -> Found {
    match (values.next(), values.next()) {
        (None, _) => Found::Missing,
        (Some(_), Some(_)) => Found::Malformed,
        (Some(""), None) => Found::Malformed,
        (Some(v), None) => Found::Token(v.to_owned()),
    }
}

/// `Bearer <token>` → `<token>`; `None` for another scheme.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_matches(' '))
}

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
}

/// The token `source` names in the request.
pub fn extract(source: &TokenSource, parts: &Parts) -> Found {
    let headers = |name: &str| -> Result<Vec<&str>, ()> {
        parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().map_err(|_| ()))
            .collect()
    };
    match source {
        TokenSource::Bearer => match headers(header::AUTHORIZATION.as_str()) {
            Err(()) => Found::Malformed,
            Ok(values) => {
                let bearers: Vec<&str> = values.iter().filter_map(|v| bearer(v)).collect();
                one(bearers.into_iter())
            }
        },
        TokenSource::Header(name) => match headers(name) {
            Err(()) => Found::Malformed,
            Ok(values) => one(values.into_iter().map(|v| bearer(v).unwrap_or(v.trim()))),
        },
        TokenSource::Cookie(name) => one(crate::headers::cookies(&parts.headers)
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)),
        TokenSource::Query(name) => one(query_pairs(parts.uri.query().unwrap_or_default())
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)),
    }
}

/// Removes the token `source` names from the request (before forwarding).
pub fn strip(source: &TokenSource, parts: &mut Parts) {
    match source {
        TokenSource::Bearer => {
            parts.headers.remove(header::AUTHORIZATION);
        }
        TokenSource::Header(name) => {
            parts.headers.remove(name.as_str());
        }
        TokenSource::Cookie(name) => {
            let kept: Vec<String> = parts
                .headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .map(str::trim)
                .filter(|kv| !kv.is_empty() && kv.split_once('=').is_none_or(|(k, _)| k != name))
                .map(str::to_owned)
                .collect();
            parts.headers.remove(header::COOKIE);
            if !kept.is_empty()
                && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
            {
                parts.headers.insert(header::COOKIE, v);
            }
        }
        TokenSource::Query(name) => {
            let Some(query) = parts.uri.query() else {
                return;
            };
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| kv.split_once('=').map_or(*kv, |(k, _)| k) != name)
                .collect();
            let path = parts.uri.path();
            let pq = if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            };
            let mut builder = http::Uri::builder();
            if let Some(s) = parts.uri.scheme() {
                builder = builder.scheme(s.clone());
            }
            if let Some(a) = parts.uri.authority() {
                builder = builder.authority(a.clone());
            }
            if let Ok(uri) = builder.path_and_query(pq).build() {
                parts.uri = uri;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn tok(t: &str) -> Found {
        Found::Token(t.to_owned())
    }

    #[test]
    fn bearer_header() {
        let s = TokenSource::Bearer;
        assert_eq!(
            extract(&s, &parts("/", &[("authorization", "Bearer a.b.c")])),
            tok("a.b.c")
        );
        assert_eq!(
            extract(&s, &parts("/", &[("authorization", "bearer   a.b.c")])),
            tok("a.b.c")
        );
        assert_eq!(
            extract(&s, &parts("/", &[("authorization", "Basic dXNlcg==")])),
            Found::Missing
        );
        assert_eq!(extract(&s, &parts("/", &[])), Found::Missing);
        assert_eq!(
            extract(&s, &parts("/", &[("authorization", "Bearer ")])),
            Found::Malformed
        );
        assert_eq!(
            extract(
                &s,
                &parts(
                    "/",
                    &[("authorization", "Bearer a"), ("authorization", "Bearer b")]
                )
            ),
            Found::Malformed
        );
    }

    #[test]
    fn header_cookie_query_and_stripping() {
        let h = TokenSource::Header("x-token".into());
        let mut p = parts("/", &[("x-token", "a.b.c"), ("x-other", "1")]);
        assert_eq!(extract(&h, &p), tok("a.b.c"));
        strip(&h, &mut p);
        assert!(p.headers.get("x-token").is_none() && p.headers.get("x-other").is_some());

        let c = TokenSource::Cookie("jwt".into());
        let mut p = parts("/", &[("cookie", "a=1; jwt=t.o.k; b=2")]);
        assert_eq!(extract(&c, &p), tok("t.o.k"));
        strip(&c, &mut p);
        assert_eq!(p.headers.get("cookie").unwrap(), "a=1; b=2");
        let mut p = parts("/", &[("cookie", "jwt=t.o.k")]);
        strip(&c, &mut p);
        assert!(p.headers.get("cookie").is_none());

        let q = TokenSource::Query("access_token".into());
        let mut p = parts("/x?a=1&access_token=t.o.k&b=2", &[]);
        assert_eq!(extract(&q, &p), tok("t.o.k"));
        strip(&q, &mut p);
        assert_eq!(p.uri.to_string(), "/x?a=1&b=2");
        let mut p = parts("/x?access_token=t", &[]);
        strip(&q, &mut p);
        assert_eq!(p.uri.to_string(), "/x");
        assert_eq!(
            extract(&q, &parts("/x?access_token=a&access_token=b", &[])),
            Found::Malformed
        );
    }
}
