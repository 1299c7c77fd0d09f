//! Table-driven validation tests for HTTP and HTTPS listeners and routes:
//! config text → the exact list of errors (`path: message`) or warnings that
//! `weir check` prints for it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use support::{CertDir, ONE, assert_lines, doc, errors, warnings};
use weir_config::parse;

/// Every error line of a config that must not validate.
/// Every warning of a config that must validate.
/// An HTTP listener `web` → pool `web`, with `listener` appended to the
/// listener (keys, then `[[listeners.routes]]` tables).
fn http_doc(listener: &str) -> String {
    format!(
        "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\nprotocol = \"http\"\n{listener}\n\n\
         [[pools]]\nname = \"web\"\n{ONE}\n"
    )
}

/// One route table with `keys`.
fn route(keys: &str) -> String {
    format!("\n[[listeners.routes]]\n{keys}\n")
}

#[test]
fn http_listener_and_route_errors_table() {
    let fwd = |keys: &str| route(&format!("pool = \"web\"\n{keys}"));
    let r0 = "listeners[0].routes[0]";
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "via that is not a token",
            http_doc(&format!("via = \"my proxy\"\n{}", route("pool = \"web\""))),
            vec!["listeners[0].via: \"my proxy\" is not a token; use letters, digits and -._~ (e.g. \"weir\"), at most 64".into()],
        ),
        (
            "no routes and no pool",
            http_doc(""),
            vec!["listeners[0].routes: an http listener needs at least one route (or a pool for every request)".into()],
        ),
        (
            "route with neither pool nor redirect",
            http_doc(&route("path = \"/a\"")),
            vec![format!("{r0}.pool: a route needs a pool (or a redirect)")],
        ),
        (
            "route with pool and redirect",
            http_doc(&fwd("redirect = \"https://x.test/\"")),
            vec![format!("{r0}.redirect: set pool or redirect, not both")],
        ),
        (
            "redirect code that is not a redirect",
            http_doc(&route("redirect = \"/x\"\nredirect_code = 303")),
            vec![format!("{r0}.redirect_code: 303 is not a redirect; use 301, 302, 307 or 308")],
        ),
        (
            "redirect code without redirect",
            http_doc(&fwd("redirect_code = 301")),
            vec![format!("{r0}.redirect_code: only applies with redirect")],
        ),
        (
            "redirect location that would split the response",
            http_doc(&route("redirect = \"/x\\r\\nSet-Cookie: a=b\"")),
            vec![format!("{r0}.redirect: invalid location \"/x\\r\\nSet-Cookie: a=b\"")],
        ),
        (
            "empty redirect location",
            http_doc(&route("redirect = \"\"")),
            vec![format!("{r0}.redirect: invalid location \"\"")],
        ),
        (
            "path and path_prefix",
            http_doc(&fwd("path = \"/a\"\npath_prefix = \"/b\"")),
            vec![format!("{r0}.path_prefix: set path or path_prefix, not both")],
        ),
        (
            "path_regex beside path_prefix",
            http_doc(&fwd("path_prefix = \"/b\"\npath_regex = \"/b/[0-9]+\"")),
            vec![format!("{r0}.path_regex: set one of path, path_prefix and path_regex")],
        ),
        (
            "path_regex that does not compile",
            http_doc(&fwd("path_regex = \"/users/([0-9]+\"")),
            vec![format!("{r0}.path_regex: invalid regular expression \"/users/([0-9]+\": unclosed group")],
        ),
        (
            "path_regex with a backreference",
            http_doc(&fwd("path_regex = \"/(a)\\\\1\"")),
            vec![format!("{r0}.path_regex: invalid regular expression \"/(a)\\\\1\": backreferences are not supported")],
        ),
        (
            "relative path and path_prefix",
            http_doc(&(fwd("path = \"a\"") + &fwd("path_prefix = \"b\""))),
            vec![
                format!("{r0}.path: path \"a\" must start with \"/\""),
                "listeners[0].routes[1].path_prefix: path_prefix \"b\" must start with \"/\"".into(),
            ],
        ),
        (
            "strip_prefix on an exact path",
            http_doc(&fwd("path = \"/a\"\nstrip_prefix = true")),
            vec![format!("{r0}.strip_prefix: only applies to a route with path_prefix")],
        ),
        (
            "rewrite_prefix without path_prefix",
            http_doc(&fwd("rewrite_prefix = \"/v2\"")),
            vec![format!("{r0}.rewrite_prefix: only applies to a route with path_prefix")],
        ),
        (
            "strip_prefix and rewrite_prefix",
            http_doc(&fwd("path_prefix = \"/a\"\nstrip_prefix = true\nrewrite_prefix = \"/v2\"")),
            vec![format!("{r0}.rewrite_prefix: set strip_prefix or rewrite_prefix, not both")],
        ),
        (
            "relative rewrite_prefix",
            http_doc(&fwd("path_prefix = \"/a\"\nrewrite_prefix = \"v2\"")),
            vec![format!("{r0}.rewrite_prefix: rewrite_prefix \"v2\" must start with \"/\"")],
        ),
        (
            "duplicate route name",
            http_doc(&(fwd("name = \"a\"") + &fwd("name = \"a\""))),
            vec!["listeners[0].routes[1].name: duplicate route name \"a\" in this listener".into()],
        ),
        (
            "blank route name",
            http_doc(&fwd("name = \" \"")),
            vec![format!("{r0}.name: must not be empty")],
        ),
        (
            "bad hosts",
            http_doc(
                &["a b", "a.test:80", "*.", "a.*.test", ""]
                    .map(|h| fwd(&format!("host = \"{h}\"")))
                    .concat(),
            ),
            ["a b", "a.test:80", "*.", "a.*.test", ""]
                .iter()
                .enumerate()
                .map(|(i, h)| format!("listeners[0].routes[{i}].host: invalid host {h:?}; expected a name like \"api.example.com\" or \"*.example.com\" (no port)"))
                .collect(),
        ),
        (
            "method that is not a token",
            http_doc(&fwd("methods = [\"GE T\"]")),
            vec![format!("{r0}.methods: invalid method \"GE T\"")],
        ),
        (
            "header conditions",
            http_doc(&fwd("headers = { \"x a\" = \"1\", \"x-b\" = \"a\\nb\" }")),
            vec![
                format!("{r0}.headers: invalid header name \"x a\""),
                format!("{r0}.headers: invalid value for header \"x-b\": control characters are not allowed"),
            ],
        ),
        (
            "header edits",
            http_doc(&fwd(
                "request_headers_set = { \"bad name\" = \"v\" }\nrequest_headers_add = { \"x-a\" = \"a\\r\\nb\" }\nresponse_headers_remove = [\"x:y\"]",
            )),
            vec![
                format!("{r0}.request_headers_set: invalid header name \"bad name\""),
                format!("{r0}.request_headers_add: invalid value for header \"x-a\": control characters are not allowed"),
                format!("{r0}.response_headers_remove: invalid header name \"x:y\""),
            ],
        ),
        (
            "route names a missing pool",
            http_doc(&route("pool = \"nope\"")),
            vec![format!("{r0}.pool: no pool named \"nope\"")],
        ),
        (
            "retries out of range",
            http_doc(&fwd("retries = 6")),
            vec![format!("{r0}.retries: 6 is out of range; expected 0 to 5")],
        ),
        (
            "bad route timeouts",
            http_doc(&fwd("response_timeout = \"soon\"\nconnect_timeout = \"0s\"")),
            vec![
                format!("{r0}.connect_timeout: duration \"0s\" must be greater than zero"),
                format!("{r0}.response_timeout: invalid duration \"soon\"; expected e.g. \"5s\", \"250ms\", \"1m30s\""),
            ],
        ),
        (
            "http limits out of range",
            http_doc(&format!(
                "max_header_bytes = 100\nmax_headers = 0\nmax_concurrent_streams = 0\naccess_log = \"\"\nheader_read_timeout = \"0s\"\n{}",
                fwd("")
            )),
            vec![
                "listeners[0].access_log: must be \"stdout\", \"off\" or a file path".into(),
                "listeners[0].header_read_timeout: duration \"0s\" must be greater than zero".into(),
                "listeners[0].max_header_bytes: 100 is out of range; expected 8192 to 1048576".into(),
                "listeners[0].max_headers: 0 is out of range; expected 1 to 1000".into(),
                "listeners[0].max_concurrent_streams: 0 is out of range; expected 1 to 10000".into(),
            ],
        ),
        (
            "http keys on a tcp listener",
            doc("routes = []\naccess_log = \"off\"\nmax_body_bytes = 5", ONE),
            vec![
                "listeners[0].max_body_bytes: only applies to http…".into(),
                "listeners[0].access_log: only applies to http…".into(),
                "listeners[0].routes: only applies to http…".into(),
            ],
        ),
    ];
    for (name, text, want) in &cases {
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        assert_lines(name, text, &errors(text), &want);
    }
}

#[test]
fn a_full_http_listener_is_valid() {
    let text = http_doc(
        &[
            "access_log = \"off\"\nforwarded = true\nvia = \"edge-1\"",
            &route("name = \"api\"\nhost = \"*.example.com\"\npath_prefix = \"/api/\"\nmethods = [\"get\"]\npool = \"web\"\nrewrite_prefix = \"/v2\"\nretries = 0"),
            &route("name = \"old\"\npath = \"/old\"\nredirect = \"https://example.com/new\"\nredirect_code = 308"),
        ]
        .concat(),
    );
    assert_lines("full http listener", &text, &warnings(&text), &[]);
    let v = parse(&text, "t").unwrap();
    let http = v.config.listeners[0].http.as_ref().unwrap();
    let api = &http.routes[0];
    assert_eq!(api.methods, ["GET"], "methods are upper-cased");
    assert_eq!(
        api.path,
        weir_config::http::PathMatch::Prefix("/api".into()),
        "a trailing slash is trimmed"
    );
    assert_eq!(
        api.host,
        Some(weir_config::http::HostMatch::Suffix(".example.com".into()))
    );
    assert_eq!(api.retries, 0);
    assert!(http.forwarded);
    assert_eq!(http.via.as_deref(), Some("edge-1"));
    assert_eq!(
        http.routes[1].action,
        weir_config::http::RouteAction::Redirect {
            code: 308,
            location: "https://example.com/new".into()
        }
    );
}

// ---- https listeners: TLS keys, and certificate files read and checked

/// An https listener `db` (→ pool `pg`) with `extra` keys and one
/// `[[listeners.certificates]]` table per `(cert, key, extra)`.
fn https(extra: &str, certs: &[(&str, &str, &str)]) -> String {
    let mut listener = format!("protocol = \"https\"\n{extra}\n");
    for (cert, key, more) in certs {
        listener.push_str(&format!(
            "[[listeners.certificates]]\ncert = \"{cert}\"\nkey = \"{key}\"\n{more}\n"
        ));
    }
    doc(&listener, ONE)
}

#[test]
fn https_listener_errors() {
    let d = CertDir::new();
    d.leaf("a", &["a.test"], None);
    d.leaf("b", &["b.test", "*.b.test"], None);
    d.leaf("nosan", &[], None);
    std::fs::write(d.0.join("junk.pem"), "not pem at all\n").unwrap();
    let (a, a_key, b_key) = (d.path("a.pem"), d.path("a.key"), d.path("b.key"));
    let (nosan, nosan_key, junk) = (d.path("nosan.pem"), d.path("nosan.key"), d.path("junk.pem"));
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "no certificates",
            https("", &[]),
            vec!["listeners[0].certificates: an https listener needs at least one certificate ([[listeners.certificates]] with cert and key)".into()],
        ),
        (
            "missing files",
            https("", &[("/nonexistent/weir-test/a.pem", "/nonexistent/weir-test/a.key", "")]),
            vec!["listeners[0].certificates[0].cert: cannot read /nonexistent/weir-test/a.pem: …".into()],
        ),
        (
            "a key that is not the certificate's",
            https("", &[(&a, &a_key, ""), (&a, &b_key, "server_names = [\"a.test\"]")]),
            vec![format!("listeners[0].certificates[1].key: the private key in {b_key} does not match the certificate in {a}")],
        ),
        (
            "no key in the key file",
            https("", &[(&a, &a, "")]),
            vec![format!("listeners[0].certificates[0].key: no private key in {a} (expected an unencrypted PKCS#8, PKCS#1 or SEC1 PEM block)")],
        ),
        (
            "no certificate in the cert file",
            https("", &[(&junk, &a_key, "")]),
            vec![format!("listeners[0].certificates[0].cert: no certificate in {junk} (expected PEM \"BEGIN CERTIFICATE\" blocks)")],
        ),
        (
            "a second certificate nobody could get",
            https("", &[(&a, &a_key, ""), (&nosan, &nosan_key, "")]),
            vec![format!("listeners[0].certificates[1].server_names: the certificate in {nosan} has no DNS names in its subjectAltName, so no client would get it; set server_names")],
        ),
        (
            "bad server names and version",
            https("tls_min_version = \"1.1\"", &[(&a, &a_key, "server_names = [\"a.test:443\"]"), (&a, &a_key, "server_names = []")]),
            vec![
                "listeners[0].tls_min_version: unknown value \"1.1\"; expected one of: 1.2, 1.3".into(),
                "listeners[0].certificates[0].server_names: invalid server name \"a.test:443\"; expected a name like \"api.example.com\" or \"*.example.com\"".into(),
                "listeners[0].certificates[1].server_names: must not be empty; leave it out to use the certificate's own names".into(),
            ],
        ),
        (
            "https keys on a tcp listener",
            doc("tls_min_version = \"1.3\"\n[[listeners.certificates]]\ncert = \"a.pem\"\nkey = \"a.key\"", ONE),
            vec![
                "listeners[0].certificates: only applies to https listeners; this listener's protocol is \"tcp\"".into(),
                "listeners[0].tls_min_version: only applies to https listeners; this listener's protocol is \"tcp\"".into(),
            ],
        ),
        (
            "tcp keys on an https listener",
            https("splice = false", &[(&a, &a_key, "")]),
            vec!["listeners[0].splice: only applies to tcp listeners; this listener's protocol is \"https\"".into()],
        ),
        (
            "https shares the tcp port space",
            format!(
                "{}\n[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:6000\"\nprotocol = \"http\"\npool = \"pg\"\n",
                https("", &[(&a, &a_key, "")])
            ),
            vec!["listeners[1].bind[0]: address 127.0.0.1:6000 is already used by listeners[0].bind[0]".into()],
        ),
    ];
    for (name, text, want) in &cases {
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        assert_lines(name, text, &errors(text), &want);
    }
}

#[test]
fn https_certificate_warnings() {
    let d = CertDir::new();
    d.leaf("a", &["a.test"], None);
    d.leaf("b", &["b.test", "*.b.test"], None);
    d.leaf("old", &["old.test"], Some((2001, 1, 1)));
    let (a, a_key) = (d.path("a.pem"), d.path("a.key"));
    let (b, b_key) = (d.path("b.pem"), d.path("b.key"));
    let (old, old_key) = (d.path("old.pem"), d.path("old.key"));
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "expired",
            https("", &[(&old, &old_key, "")]),
            vec![format!("listeners[0].certificates[0].cert: the certificate in {old} expired on 2001-01-01 00:00:00 UTC; clients will refuse it")],
        ),
        (
            "a name the certificate is not valid for",
            https("", &[(&a, &a_key, "server_names = [\"a.test\", \"x.b.test\"]")]),
            vec![format!("listeners[0].certificates[0].server_names: the certificate in {a} is not valid for \"x.b.test\" (its subjectAltName has a.test); clients that check will refuse it")],
        ),
        (
            "a name claimed twice",
            https("", &[(&b, &b_key, ""), (&b, &b_key, "server_names = [\"x.b.test\", \"*.b.test\"]")]),
            vec!["listeners[0].certificates[1].server_names: \"*.b.test\" is also served by certificates[0], which wins".into()],
        ),
    ];
    for (name, text, want) in &cases {
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        assert_lines(name, text, &warnings(text), &want);
    }
}

#[test]
fn https_listeners_reach_the_typed_config() {
    use weir_config::tls::TlsVersion;

    let d = CertDir::new();
    d.leaf("a", &["a.test"], None);
    d.leaf("b", &["b.test", "*.b.test"], None);
    // Relative paths are relative to the directory given to parse_in (the
    // configuration file's, for `load`).
    let text = https(
        "tls_min_version = \"1.3\"\nheader_read_timeout = \"3s\"\nmax_concurrent_streams = 7",
        &[
            ("a.pem", "a.key", ""),
            (
                "b.pem",
                "b.key",
                "server_names = [\"B.test\", \"*.b.test\"]",
            ),
        ],
    );
    let v =
        weir_config::parse_in(&text, "test.toml", &d.0).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    let l = &v.config.listeners[0];
    assert_eq!(l.protocol, weir_config::Protocol::Https);
    let http = l.http.as_ref().unwrap();
    assert_eq!(http.header_read_timeout, std::time::Duration::from_secs(3));
    assert_eq!(http.max_concurrent_streams, 7);
    let tls = l.tls.as_ref().unwrap();
    assert_eq!(tls.min_version, TlsVersion::Tls13);
    assert_eq!(tls.certificates.len(), 2);
    assert_eq!(tls.certificates[0].cert, d.0.join("a.pem"));
    assert_eq!(tls.certificates[0].key, d.0.join("a.key"));
    assert_eq!(tls.certificates[0].server_names, None);
    assert_eq!(
        tls.certificates[1].server_names.as_deref(),
        Some(&["b.test".to_owned(), "*.b.test".to_owned()][..])
    );
    let summary = v.config.summary();
    assert!(
        summary.contains("listener  db https 127.0.0.1:6000 -> pool pg"),
        "{summary}"
    );
    assert!(summary.contains("tls 1.3+, 2 certificate(s)"), "{summary}");
    // From another directory the same text finds no files.
    let e = errors(&text);
    assert!(
        e[0].starts_with("listeners[0].certificates[0].cert: cannot read a.pem: "),
        "{e:?}"
    );
}
