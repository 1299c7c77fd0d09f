//! The route table: which route a request takes, without scanning routes.
//!
//! Routes are indexed by host (exact names in a map, `*.suffix` wildcards
//! longest first, then routes for any host) and, within a host, by exact
//! path (a map) and path prefix (a map keyed by the prefix). A lookup tries
//! the request path's own exact entry, then each of its segment prefixes
//! from longest to shortest (`/a/b/c`, `/a/b`, `/a`, `/`): a handful of hash
//! lookups whatever the number of routes. Among routes with the same key,
//! the first in file order whose method and header conditions hold wins.
//!
//! Regex routes (`path_regex`) are the one linear part: when no exact path
//! and no prefix other than `/` matches, the regex routes of the request's
//! host keys are tried in file order, and only then a catch-all `/`.
//!
//! Precedence (documented in docs/configuration.md): exact path, then the
//! longest prefix, then regex, then the catch-all; at equal path
//! specificity a route for the exact host, then the longest wildcard, then
//! routes for any host; then file order.

use std::collections::HashMap;

use http::HeaderMap;
use weir_config::http::{HostMatch, PathMatch, Route};

/// Routes of one host key, by path.
#[derive(Debug, Default)]
struct PathIndex {
    exact: HashMap<String, Vec<usize>>,
    prefix: HashMap<String, Vec<usize>>,
    /// Regex routes, in file order.
    regex: Vec<usize>,
}

impl PathIndex {
    fn insert(&mut self, path: &PathMatch, id: usize) {
        match path {
            PathMatch::Exact(p) => self.exact.entry(p.clone()).or_default().push(id),
            PathMatch::Prefix(p) => self.prefix.entry(p.clone()).or_default().push(id),
            PathMatch::Any => self.prefix.entry("/".to_owned()).or_default().push(id),
            PathMatch::Regex(_) => self.regex.push(id),
        }
    }
}

/// A compiled route table.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    exact_hosts: HashMap<String, PathIndex>,
    /// `(".example.com", index)`, longest suffix first.
    wildcard_hosts: Vec<(String, PathIndex)>,
    any_host: PathIndex,
}

/// Why a request path is refused before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// Not an origin-form path (`/…`).
    NotAbsolute,
    /// A `.` or `..` segment (also percent-encoded): a backend that
    /// normalises it would serve a path no route was chosen for.
    DotSegment,
}

impl RouteTable {
    /// Compiles `routes` (file order).
    pub fn new(routes: Vec<Route>) -> Self {
        let mut table = RouteTable::default();
        for (id, route) in routes.iter().enumerate() {
            let index = match &route.host {
                None => &mut table.any_host,
                Some(HostMatch::Exact(h)) => table.exact_hosts.entry(h.clone()).or_default(),
                Some(HostMatch::Suffix(s)) => {
                    let pos = match table.wildcard_hosts.iter().position(|(k, _)| k == s) {
                        Some(pos) => pos,
                        None => {
                            table.wildcard_hosts.push((s.clone(), PathIndex::default()));
                            table.wildcard_hosts.len() - 1
                        }
                    };
                    &mut table.wildcard_hosts[pos].1
                }
            };
            index.insert(&route.path, id);
        }
        table
            .wildcard_hosts
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        table.routes = routes;
        table
    }

    /// The route at `id`.
    pub fn get(&self, id: usize) -> Option<&Route> {
        self.routes.get(id)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Checks a request path before routing.
    pub fn check_path(path: &str) -> Result<(), BadPath> {
        if !path.starts_with('/') {
            return Err(BadPath::NotAbsolute);
        }
        // Checked on every request: most paths have neither `.` nor `%`,
        // and a segment is looked at without copying it.
        if !path.bytes().any(|b| b == b'.' || b == b'%') {
            return Ok(());
        }
        if path.split('/').any(|seg| is_dot_segment(seg.as_bytes())) {
            return Err(BadPath::DotSegment);
        }
        Ok(())
    }

    /// The route for a request, by id: `host` lowercase without port,
    /// `path` without the query.
    pub fn find(&self, host: &str, path: &str, method: &str, headers: &HeaderMap) -> Option<usize> {
        // The host's indexes, most specific first (made again for each
        // use rather than collected: nothing to allocate per request).
        let exact_host = self.exact_hosts.get(host);
        let indexes = || {
            exact_host
                .into_iter()
                .chain(
                    self.wildcard_hosts
                        .iter()
                        .filter(|(suffix, _)| {
                            host.len() > suffix.len() && host.ends_with(suffix.as_str())
                        })
                        .map(|(_, index)| index),
                )
                .chain(std::iter::once(&self.any_host))
        };
        let fits = |ids: &Vec<usize>| {
            ids.iter()
                .copied()
                .find(|&id| self.conditions_hold(id, method, headers))
        };
        for index in indexes() {
            if let Some(id) = index.exact.get(path).and_then(fits) {
                return Some(id);
            }
        }
        let mut prefix = path.trim_end_matches('/');
        while !prefix.is_empty() {
            for index in indexes() {
                if let Some(id) = index.prefix.get(prefix).and_then(fits) {
                    return Some(id);
                }
            }
            prefix = &prefix[..prefix.rfind('/').unwrap_or(0)];
        }
        for index in indexes() {
            let matching = index.regex.iter().copied().find(|&id| {
                matches!(self.routes.get(id).map(|r| &r.path), Some(PathMatch::Regex(re)) if re.is_match(path))
                    && self.conditions_hold(id, method, headers)
            });
            if matching.is_some() {
                return matching;
            }
        }
        indexes().find_map(|index| index.prefix.get("/").and_then(fits))
    }

    fn conditions_hold(&self, id: usize, method: &str, headers: &HeaderMap) -> bool {
        let Some(route) = self.routes.get(id) else {
            return false;
        };
        (route.methods.is_empty() || route.methods.iter().any(|m| m == method))
            && route.headers.iter().all(|(name, value)| {
                headers
                    .get_all(name.as_str())
                    .iter()
                    .any(|v| v.as_bytes() == value.as_bytes())
            })
    }
}

/// `.` or `..`, each dot possibly percent-encoded (`%2e`, `%2E`).
fn is_dot_segment(mut seg: &[u8]) -> bool {
    let mut dots = 0;
    while !seg.is_empty() {
        seg = match seg {
            [b'.', rest @ ..] => rest,
            [b'%', b'2', e, rest @ ..] if e.eq_ignore_ascii_case(&b'e') => rest,
            _ => return false,
        };
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
    dots > 0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weir_config::http::{HeaderEdits, PathRegex, RouteAction};

    use super::*;

    fn route(name: &str, host: Option<HostMatch>, path: PathMatch) -> Route {
        Route {
            name: name.into(),
            host,
            path,
            methods: vec![],
            headers: vec![],
            action: RouteAction::Forward {
                pool: 0,
                strip_prefix: false,
                rewrite_prefix: None,
            },
            request_headers: HeaderEdits::default(),
            response_headers: HeaderEdits::default(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            retries: 0,
            auth: Vec::new(),
            rate_limits: vec![],
        }
    }

    fn name(
        t: &RouteTable,
        host: &str,
        path: &str,
        method: &str,
        headers: &HeaderMap,
    ) -> Option<String> {
        t.find(host, path, method, headers)
            .map(|id| t.routes[id].name.clone())
    }

    #[test]
    fn precedence_table() {
        let exact = |h: &str| Some(HostMatch::Exact(h.into()));
        let wild = |s: &str| Some(HostMatch::Suffix(s.into()));
        let p = |s: &str| PathMatch::Prefix(s.into());
        let e = |s: &str| PathMatch::Exact(s.into());
        let re = |s: &str| PathMatch::Regex(PathRegex::new(s).unwrap());
        let mut get_only = route("get-only", None, e("/m"));
        get_only.methods = vec!["GET".into()];
        let mut blue = route("blue", None, p("/t"));
        blue.headers = vec![("x-tenant".into(), "blue".into())];
        let t = RouteTable::new(vec![
            route("root", None, p("/")),
            route("api", None, p("/api")),
            route("api-users", None, p("/api/users")),
            route("api-exact", None, e("/api/users/me")),
            route("host-api", exact("shop.example.com"), p("/api")),
            route("wild", wild(".example.com"), p("/")),
            route("deeper-wild", wild(".eu.example.com"), p("/")),
            get_only,
            route("m-any", None, e("/m")),
            blue,
            route("t", None, p("/t")),
            route("first", None, p("/dup")),
            route("second", None, p("/dup")),
            route("users-re", None, re("/users/[0-9]+")),
            route("files", None, p("/files")),
            route("png-re", None, re("/files/.*[.]png")),
            route("shop-re", exact("shop.example.com"), re("/sku-[a-z]+")),
        ]);
        let none = HeaderMap::new();
        let mut blue_h = HeaderMap::new();
        blue_h.insert("x-tenant", "blue".parse().unwrap());
        let cases: &[(&str, &str, &str, &HeaderMap, &str)] = &[
            ("a.test", "/", "GET", &none, "root"),
            ("a.test", "/other", "GET", &none, "root"),
            ("a.test", "/api", "GET", &none, "api"),
            ("a.test", "/api/", "GET", &none, "api"),
            ("a.test", "/apiary", "GET", &none, "root"),
            ("a.test", "/api/orders/1", "GET", &none, "api"),
            ("a.test", "/api/users/42", "GET", &none, "api-users"),
            ("a.test", "/api/users/me", "GET", &none, "api-exact"),
            ("shop.example.com", "/api/x", "GET", &none, "host-api"),
            ("shop.example.com", "/other", "GET", &none, "wild"),
            (
                "shop.example.com",
                "/api/users/me",
                "GET",
                &none,
                "api-exact",
            ),
            ("x.eu.example.com", "/", "GET", &none, "deeper-wild"),
            ("example.com", "/", "GET", &none, "root"),
            ("a.test", "/m", "GET", &none, "get-only"),
            ("a.test", "/m", "POST", &none, "m-any"),
            ("a.test", "/t/1", "GET", &blue_h, "blue"),
            ("a.test", "/t/1", "GET", &none, "t"),
            ("a.test", "/dup", "GET", &none, "first"),
            // A regex beats the catch-all, matches the whole path, and
            // loses to any other prefix.
            ("a.test", "/users/42", "GET", &none, "users-re"),
            ("a.test", "/users/42/x", "GET", &none, "root"),
            ("a.test", "/users/4x2", "GET", &none, "root"),
            ("a.test", "/files/a.png", "GET", &none, "files"),
            ("shop.example.com", "/sku-abc", "GET", &none, "shop-re"),
            ("a.test", "/sku-abc", "GET", &none, "root"),
            // Path specificity comes before host: an any-host regex beats a
            // host's wildcard catch-all.
            ("shop.example.com", "/users/42", "GET", &none, "users-re"),
        ];
        for (host, path, method, headers, want) in cases {
            assert_eq!(
                name(&t, host, path, method, headers).as_deref(),
                Some(*want),
                "{host}{path} {method}"
            );
        }
    }

    #[test]
    fn no_match_without_a_catch_all() {
        let t = RouteTable::new(vec![route("api", None, PathMatch::Prefix("/api".into()))]);
        assert_eq!(t.find("h", "/", "GET", &HeaderMap::new()), None);
        assert_eq!(t.find("h", "/apix", "GET", &HeaderMap::new()), None);
    }

    #[test]
    fn dot_segments_are_refused() {
        for bad in [
            "/api/../admin",
            "/./x",
            "/a/%2e%2E/b",
            "/..",
            "/a/.",
            "/%2E",
            "/a/.%2e/b",
        ] {
            assert_eq!(
                RouteTable::check_path(bad),
                Err(BadPath::DotSegment),
                "{bad}"
            );
        }
        assert_eq!(RouteTable::check_path("*"), Err(BadPath::NotAbsolute));
        for ok in [
            "/",
            "/a/b",
            "/a..b/c",
            "/.well-known/x",
            "/a/.../b",
            "/%2e%2e%2e",
            "/%2f",
            "/%2",
            "/x.",
        ] {
            assert_eq!(RouteTable::check_path(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn many_routes_are_found_by_index() {
        let routes: Vec<Route> = (0..5000)
            .map(|i| {
                route(
                    &format!("r{i}"),
                    None,
                    PathMatch::Prefix(format!("/svc{i}")),
                )
            })
            .collect();
        let t = RouteTable::new(routes);
        assert_eq!(
            name(&t, "h", "/svc4999/x", "GET", &HeaderMap::new()).as_deref(),
            Some("r4999")
        );
    }
}
