//! The L7 gateway end to end: routing, rewrites, header work, redirects,
//! retries and their budget, timeouts, body limits, selection, HTTP/2,
//! metrics, the access log, keep-alive, graceful shutdown, and curl.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use hyper::Version;
use tokio::net::TcpStream;

use crate::http_forwarding::is_request_id;
use crate::support::fake::refused_addr;
use crate::support::fake_http::{
    FakeHttp, H2, closes_within, get, raw_exchange, read_response, req, req_with, send, try_send,
};
use crate::support::peers::require;
use crate::support::{Weir, eventually};

/// One `[[listeners.routes]]` table to `{pool}` that tags its responses
/// with `x-route: NAME`, plus `extra` keys.
fn route(name: &str, extra: &str) -> String {
    format!(
        "\n[[listeners.routes]]\nname = \"{name}\"\npool = \"{{pool}}\"\nresponse_headers_set = {{ \"x-route\" = \"{name}\" }}\n{extra}\n"
    )
}

async fn backends(n: usize) -> Vec<FakeHttp> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(FakeHttp::start(&format!("b{i}")).await);
    }
    v
}

fn addrs(b: &[FakeHttp]) -> Vec<SocketAddr> {
    b.iter().map(|b| b.addr).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_precedence_end_to_end() {
    let b = backends(1).await;
    let routes = [
        route("root", "path_prefix = \"/\""),
        route("api", "path_prefix = \"/api\""),
        route("api-exact", "path = \"/api/users/me\""),
        route(
            "host-api",
            "host = \"shop.example.com\"\npath_prefix = \"/api\"",
        ),
        route("wild", "host = \"*.example.com\"\npath_prefix = \"/\""),
        route(
            "deeper-wild",
            "host = \"*.eu.example.com\"\npath_prefix = \"/\"",
        ),
        route("get-only", "path = \"/m\"\nmethods = [\"GET\"]"),
        route("m-any", "path = \"/m\""),
        route(
            "blue",
            "path_prefix = \"/t\"\nheaders = { \"x-tenant\" = \"blue\" }",
        ),
        route("t", "path_prefix = \"/t\""),
        route("first", "path_prefix = \"/dup\""),
        route("second", "path_prefix = \"/dup\""),
        route("user-id", "path_regex = \"/users/[0-9]+\""),
    ]
    .concat();
    let weir = Weir::start(&Weir::http_routes("round_robin", &routes, ""), &addrs(&b)).await;
    let cases: &[(&str, &str, &str, Option<&str>, &str)] = &[
        ("a.test", "GET", "/", None, "root"),
        ("a.test", "GET", "/other", None, "root"),
        ("a.test", "GET", "/api", None, "api"),
        ("a.test", "GET", "/users/42?full=1", None, "user-id"),
        ("a.test", "GET", "/users/42/x", None, "root"),
        ("a.test", "GET", "/api/", None, "api"),
        ("a.test", "GET", "/apiary", None, "root"),
        ("a.test", "GET", "/api/orders/1?x=1", None, "api"),
        ("a.test", "GET", "/api/users/me", None, "api-exact"),
        ("a.test", "GET", "/api/users/me/x", None, "api"),
        ("shop.example.com", "GET", "/api/x", None, "host-api"),
        ("SHOP.Example.com:8080", "GET", "/api/x", None, "host-api"),
        ("shop.example.com", "GET", "/other", None, "wild"),
        (
            "shop.example.com",
            "GET",
            "/api/users/me",
            None,
            "api-exact",
        ),
        ("x.eu.example.com", "GET", "/", None, "deeper-wild"),
        ("example.com", "GET", "/", None, "root"),
        ("a.test", "GET", "/m", None, "get-only"),
        ("a.test", "POST", "/m", None, "m-any"),
        ("a.test", "GET", "/t/1", Some("blue"), "blue"),
        ("a.test", "GET", "/t/1", Some("red"), "t"),
        ("a.test", "GET", "/t/1", None, "t"),
        ("a.test", "GET", "/dup", None, "first"),
    ];
    for (host, method, path, tenant, want) in cases {
        let mut headers = vec![("host", *host)];
        if let Some(t) = tenant {
            headers.push(("x-tenant", t));
        }
        let r = send(weir.addr, req_with(method, path, &headers, "")).await;
        assert_eq!(r.status, 200, "{method} {host}{path}: {}", r.text());
        assert_eq!(
            r.header("x-route"),
            Some(*want),
            "{method} {host}{path} tenant={tenant:?}"
        );
        assert_eq!(r.echo().path(), *path, "the path is forwarded unchanged");
        assert_eq!(r.echo().method(), *method);
    }
    assert_eq!(b[0].requests(), cases.len());
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_is_a_json_404_with_the_request_id() {
    let b = backends(1).await;
    let weir = Weir::start(
        &Weir::http_routes("round_robin", &route("api", "path_prefix = \"/api\""), ""),
        &addrs(&b),
    )
    .await;
    let r = get(weir.addr, "/other?x=1").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(body["error"], "no route");
    let id = r.header("x-request-id").expect("x-request-id on errors");
    assert!(is_request_id(id), "{id}");
    assert_eq!(body["request_id"], id);
    // A client's own sane id is the one in the body.
    let r = send(
        weir.addr,
        req_with(
            "GET",
            "/nope",
            &[("host", "a.test"), ("x-request-id", "mine-42")],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["request_id"], "mine-42");
    assert_eq!(r.header("x-request-id"), Some("mine-42"));
    assert_eq!(b[0].requests(), 0, "nothing reached the backend");
    assert_eq!(
        weir.listener_metric(
            "weir_http_requests_total",
            &[("route", "none"), ("class", "4xx")]
        )
        .await,
        2.0
    );
    assert_eq!(
        weir.listener_metric("weir_http_gateway_errors_total", &[("reason", "no_route")])
            .await,
        2.0
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strip_and_rewrite_prefix_keep_the_query() {
    let b = backends(1).await;
    let routes = [
        route("strip", "path_prefix = \"/s\"\nstrip_prefix = true"),
        route("rw", "path_prefix = \"/api\"\nrewrite_prefix = \"/v2\""),
        route("rw-root", "path_prefix = \"/old/\"\nrewrite_prefix = \"/\""),
        route("keep", "path_prefix = \"/keep\""),
        route("exact", "path = \"/exact\""),
    ]
    .concat();
    let weir = Weir::start(&Weir::http_routes("round_robin", &routes, ""), &addrs(&b)).await;
    let cases = [
        ("/s/users?x=1&y=2", "/users?x=1&y=2"),
        ("/s?q=1", "/?q=1"),
        ("/s", "/"),
        ("/s/", "/"),
        ("/s/a/b/", "/a/b/"),
        ("/api/users?z=%20a", "/v2/users?z=%20a"),
        ("/api", "/v2"),
        ("/api?x=1", "/v2?x=1"),
        ("/old/x?y", "/x?y"),
        ("/old", "/"),
        ("/keep/a?b=c", "/keep/a?b=c"),
        ("/exact?k=v", "/exact?k=v"),
    ];
    for (sent, want) in cases {
        let r = get(weir.addr, sent).await;
        assert_eq!(r.status, 200, "{sent}");
        assert_eq!(r.echo().path(), want, "{sent} ({:?})", r.header("x-route"));
    }
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_response_header_edits() {
    let b = backends(1).await;
    let edits = "path_prefix = \"/\"\n\
        request_headers_set = { \"x-set\" = \"weir\", \"x-new\" = \"1\" }\n\
        request_headers_add = { \"x-add\" = \"added\" }\n\
        request_headers_remove = [\"X-Debug\"]\n\
        response_headers_add = { \"x-served-by\" = \"weir\" }\n\
        response_headers_remove = [\"server\"]";
    // `route` sets x-route; this route also overrides x-backend-id.
    let routes = route("edit", edits).replace(
        "response_headers_set = { \"x-route\" = \"edit\" }",
        "response_headers_set = { \"x-route\" = \"edit\", \"x-backend-id\" = \"hidden\" }",
    );
    let weir = Weir::start(&Weir::http_routes("round_robin", &routes, ""), &addrs(&b)).await;
    let r = send(
        weir.addr,
        req_with(
            "GET",
            "/h",
            &[
                ("host", "a.test"),
                ("x-set", "from-client"),
                ("x-add", "from-client"),
                ("x-debug", "1"),
                ("x-keep", "1"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let e = r.echo();
    assert_eq!(e.header_all("x-set"), ["weir"], "set replaces");
    assert_eq!(e.header_all("x-new"), ["1"]);
    assert_eq!(e.header_all("x-add"), ["from-client", "added"], "add keeps");
    assert!(e.header("x-debug").is_none(), "remove (case-insensitive)");
    assert_eq!(e.header_all("x-keep"), ["1"]);
    assert_eq!(r.header_all("x-backend-id"), ["hidden"], "response set");
    assert_eq!(r.header_all("x-served-by"), ["weir"], "response add");
    assert!(r.header("server").is_none(), "response remove");
    assert_eq!(r.header("x-route"), Some("edit"));
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_answer_without_a_backend() {
    let b = backends(1).await;
    let routes = "\n[[listeners.routes]]\nname = \"moved\"\npath = \"/old\"\nredirect = \"https://example.com/new\"\nredirect_code = 301\n\
        \n[[listeners.routes]]\nname = \"found\"\npath_prefix = \"/tmp\"\nredirect = \"/elsewhere\"\n\
        \n[[listeners.routes]]\nname = \"perm\"\npath = \"/perm\"\nredirect = \"https://example.com/p\"\nredirect_code = 308\n\
        \n[[listeners.routes]]\nname = \"temp\"\npath = \"/temp\"\nredirect = \"https://example.com/t\"\nredirect_code = 307\n";
    let weir = Weir::start(&Weir::http("round_robin", routes, ""), &addrs(&b)).await;
    for (path, code, location) in [
        ("/old", 301, "https://example.com/new"),
        ("/tmp/x?y=1", 302, "/elsewhere"),
        ("/perm", 308, "https://example.com/p"),
        ("/temp", 307, "https://example.com/t"),
    ] {
        let r = get(weir.addr, path).await;
        assert_eq!(r.status, code, "{path}");
        assert_eq!(r.header("location"), Some(location), "{path}");
    }
    assert_eq!(b[0].requests(), 0);
    // The listener's pool still takes the rest.
    assert_eq!(get(weir.addr, "/other").await.status, 200);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_not_forwarded_either_way() {
    let b = backends(1).await;
    let weir = Weir::start(&Weir::http("round_robin", "", ""), &addrs(&b)).await;
    let r = send(
        weir.addr,
        req_with(
            "GET",
            "/hop-response",
            &[
                ("host", "a.test"),
                ("connection", "keep-alive, x-secret"),
                ("x-secret", "1"),
                ("keep-alive", "timeout=5"),
                ("te", "gzip"),
                ("proxy-authorization", "Basic Zm9vOmJhcg=="),
                ("proxy-connection", "keep-alive"),
                ("trailer", "x-t"),
                ("x-kept", "1"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let e = r.echo();
    for gone in [
        "x-secret",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(e.header(gone).is_none(), "{gone} forwarded: {:?}", e.0);
    }
    for v in e.header_all("connection") {
        assert!(!v.contains("x-secret"), "connection: {v}");
    }
    assert_eq!(e.header_all("x-kept"), ["1"]);
    // Trailer is end to end (RFC 9110 §6.6.2), and TE: trailers passes (see
    // http_trailers.rs); other TE codings stop here.
    assert_eq!(e.header_all("trailer"), ["x-t"]);
    // The backend's own hop-by-hop headers stop at weir too.
    for gone in ["x-resp-hop", "keep-alive", "proxy-authenticate"] {
        assert!(
            r.header(gone).is_none(),
            "{gone} sent back: {:?}",
            r.headers
        );
    }
    for v in r.header_all("connection") {
        assert!(!v.contains("x-resp-hop"), "connection: {v}");
    }
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ready_backend_is_a_json_503() {
    // With active checks a backend starts down; this one never comes up.
    let weir = Weir::start(
        &Weir::http(
            "round_robin",
            "",
            "[pools.health_check]\ntype = \"tcp\"\ninterval = \"1s\"\n",
        ),
        &[refused_addr()],
    )
    .await;
    let r = get(weir.addr, "/x").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["error"], "no ready backend");
    assert_eq!(
        r.json()["request_id"],
        r.header("x-request-id").expect("id")
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_backend_is_a_json_502() {
    let weir = Weir::start(
        &Weir::http("round_robin", "", "passive = false"),
        &[refused_addr()],
    )
    .await;
    let r = get(weir.addr, "/x").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"], "bad gateway");
    assert_eq!(
        weir.listener_metric(
            "weir_http_gateway_errors_total",
            &[("reason", "bad_gateway")]
        )
        .await,
        1.0
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_retried_elsewhere_but_bodies_are_not_replayed() {
    let good = FakeHttp::start("b1").await;
    let weir = Weir::start(
        &Weir::http("round_robin", "", "passive = false"),
        &[refused_addr(), good.addr],
    )
    .await;
    // GETs: the client never notices the refused backend.
    for i in 0..6 {
        let r = get(weir.addr, &format!("/g{i}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.echo().id(), "b1");
    }
    assert!(
        weir.listener_metric("weir_http_retries_total", &[]).await >= 3.0,
        "retries counted"
    );
    // A POST without a body is replayable: a failed connect is retried.
    for _ in 0..4 {
        let r = send(weir.addr, req_with("POST", "/p", &[("host", "a")], "")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // A POST with a body streams it: never retried, the client sees 502.
    let before = good.completed();
    let mut statuses = HashMap::<u16, usize>::new();
    for _ in 0..6 {
        let r = send(weir.addr, req_with("POST", "/p", &[("host", "a")], "hello")).await;
        *statuses.entry(r.status).or_default() += 1;
    }
    assert_eq!(statuses.get(&502), Some(&3), "{statuses:?}");
    assert_eq!(statuses.get(&200), Some(&3), "{statuses:?}");
    assert_eq!(good.completed() - before, 3);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_for_idempotent_requests_only() {
    let sick = FakeHttp::always("b0", "status/503").await;
    let good = FakeHttp::start("b1").await;
    let weir = Weir::start(
        &Weir::http("round_robin", "", "passive = false"),
        &[sick.addr, good.addr],
    )
    .await;
    for method in ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"] {
        for _ in 0..2 {
            let r = send(weir.addr, req_with(method, "/x", &[("host", "a")], "")).await;
            assert_eq!(r.status, 200, "{method}");
            assert_eq!(r.header("x-backend-id"), Some("b1"), "{method}");
        }
    }
    assert!(sick.requests() >= 4, "the sick backend was tried");
    let mut by_backend = HashMap::<String, u16>::new();
    for _ in 0..4 {
        let r = send(weir.addr, req_with("POST", "/x", &[("host", "a")], "")).await;
        by_backend.insert(r.header("x-backend-id").unwrap().to_owned(), r.status);
    }
    assert_eq!(by_backend.get("b0"), Some(&503), "POST not retried");
    assert_eq!(by_backend.get("b1"), Some(&200));
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_caps_retries() {
    let weir = Weir::start(
        &Weir::http("round_robin", "", "passive = false"),
        &[refused_addr(), refused_addr()],
    )
    .await;
    let n = 40;
    for _ in 0..n {
        assert_eq!(get(weir.addr, "/x").await.status, 502);
    }
    let exhausted = weir
        .listener_metric("weir_http_retry_budget_exhausted_total", &[])
        .await;
    let retries = weir.listener_metric("weir_http_retries_total", &[]).await;
    assert!(exhausted > 0.0, "budget exhausted: {exhausted}");
    assert!(
        retries <= f64::from(n) / 5.0 + 10.0,
        "retries within 20% + 10: {retries}"
    );
    assert_eq!(
        retries + exhausted,
        f64::from(n),
        "one retry asked per request"
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_healthy_period_does_not_bank_retries_for_an_outage() {
    let b = backends(2).await;
    let weir = Weir::start(
        &Weir::http("round_robin", "", "passive = false"),
        &addrs(&b),
    )
    .await;
    for _ in 0..300 {
        assert_eq!(get(weir.addr, "/x").await.status, 200);
    }
    for backend in &b {
        backend.stop();
    }
    let n = 40;
    for _ in 0..n {
        assert_eq!(get(weir.addr, "/x").await.status, 502);
    }
    let retries = weir.listener_metric("weir_http_retries_total", &[]).await;
    // A lifetime ratio would allow 340 / 5 + 10 = 78; the bucket holds 10
    // tokens and the outage's own requests add 40 / 5.
    assert!(
        retries <= 10.0 + f64::from(n) / 5.0,
        "retries bounded by the burst plus 20% of the outage's requests: {retries}"
    );
    assert!(retries >= 10.0, "the banked burst is spent: {retries}");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_gets_a_504_at_the_response_timeout() {
    let b = backends(1).await;
    let routes = route("slow", "path_prefix = \"/\"\nresponse_timeout = \"300ms\"");
    let weir = Weir::start(&Weir::http_routes("round_robin", &routes, ""), &addrs(&b)).await;
    let start = tokio::time::Instant::now();
    let r = get(weir.addr, "/slow/5s").await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"], "gateway timeout");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "answered at the timeout, not when the backend did"
    );
    assert_eq!(b[0].requests(), 1, "a timeout is not retried");
    assert_eq!(get(weir.addr, "/fast").await.status, 200);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_still_streaming_at_the_request_timeout_is_cut_off() {
    let b = backends(1).await;
    let routes = route("all", "path_prefix = \"/\"\nrequest_timeout = \"500ms\"");
    let weir = Weir::start(&Weir::http_routes("round_robin", &routes, ""), &addrs(&b)).await;
    // The backend answers at once, then holds 900 of the body's 1000 bytes
    // for 5 s: the whole request's time runs out mid-body.
    let start = tokio::time::Instant::now();
    let err = try_send(weir.addr, req("GET", "/stall-body/5s"))
        .await
        .expect_err("the client must see a failed body, never a clean short one");
    assert!(err.starts_with("body"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "cut off at the request timeout, not when the backend finished: {:?}",
        start.elapsed()
    );
    // In time, the same answer goes through whole.
    let r = get(weir.addr, "/stall-body/100ms").await;
    assert_eq!((r.status, r.body.len()), (200, 1000));
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_dying_mid_body_fails_the_clients_body() {
    let b = backends(1).await;
    let weir = Weir::start(&Weir::http("round_robin", "", ""), &addrs(&b)).await;
    let err = try_send(weir.addr, req("GET", "/die-after-headers"))
        .await
        .expect_err("the client must see a failed body, never a clean short one");
    assert!(err.starts_with("body"), "{err}");

    // On the wire: the announced length, fewer bytes, then the close.
    let (_s, raw) = raw_exchange(
        weir.addr,
        b"GET /die-after-headers HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(raw.status, Some(200));
    assert!(raw.closed, "connection closed: {raw:?}");
    let (head, body) = raw.text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase().contains("content-length: 1000"),
        "{head}"
    );
    assert!(body.len() < 1000, "short body {}", body.len());

    // weir keeps serving, and nothing is left behind.
    assert_eq!(get(weir.addr, "/ok").await.status, 200);
    eventually(
        Duration::from_secs(10),
        "connections and requests back to 0",
        || async {
            weir.listener_metric("weir_listener_connections_active", &[])
                .await
                == 0.0
                && weir.listener_metric("weir_http_requests_active", &[]).await == 0.0
        },
    )
    .await;
    weir.stop().await;
}

/// A chunked request with `chunks` chunks of 1000 bytes.
fn chunked_post(chunks: usize) -> Vec<u8> {
    let mut v = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..chunks {
        v.extend_from_slice(b"3e8\r\n");
        v.extend_from_slice(&[b'z'; 1000]);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"0\r\n\r\n");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_max_body_bytes_are_refused() {
    let b = backends(1).await;
    let weir = Weir::start(
        &Weir::http("round_robin", "max_body_bytes = 2500", ""),
        &addrs(&b),
    )
    .await;
    // A Content-Length over the limit: 413 before anything is forwarded.
    let r = send(
        weir.addr,
        req_with("POST", "/upload", &[("host", "a")], &"x".repeat(5000)),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["error"], "request body too large");
    assert_eq!(b[0].requests(), 0);

    // Within the limit, both ways of framing pass.
    let r = send(
        weir.addr,
        req_with("POST", "/upload", &[("host", "a")], &"x".repeat(2500)),
    )
    .await;
    assert_eq!((r.status, r.echo().body_bytes()), (200, 2500));
    let (_s, raw) = raw_exchange(weir.addr, &chunked_post(2), Duration::from_secs(10)).await;
    assert_eq!(raw.status, Some(200), "{}", raw.text);
    assert!(raw.text.contains("\"body_bytes\":2000"), "{}", raw.text);
    let completed = b[0].completed();

    // A chunked body that grows past the limit is cut off: the client gets
    // 413 and the backend never gets the whole body.
    let (_s, raw) = raw_exchange(weir.addr, &chunked_post(5), Duration::from_secs(10)).await;
    assert_eq!(raw.status, Some(413), "{}", raw.text);
    assert_eq!(b[0].completed(), completed, "backend never got it all");
    assert_eq!(get(weir.addr, "/ok").await.status, 200);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_on_a_header_sticks_a_user_to_one_backend() {
    let b = backends(3).await;
    let weir = Weir::start(
        &Weir::http("maglev", "", "hash_key = \"header:x-user\""),
        &addrs(&b),
    )
    .await;
    let mut used = HashSet::new();
    for u in 0..12 {
        let user = format!("user{u}");
        let mut ids = HashSet::new();
        for _ in 0..4 {
            let r = send(
                weir.addr,
                req_with("GET", "/x", &[("host", "a"), ("x-user", &user)], ""),
            )
            .await;
            ids.insert(r.echo().id().to_owned());
        }
        assert_eq!(ids.len(), 1, "{user} moved: {ids:?}");
        used.extend(ids);
    }
    assert!(used.len() > 1, "users spread over backends: {used:?}");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_counts_requests_in_flight() {
    let b = backends(2).await;
    let weir = Weir::start(&Weir::http("least_connections", "", ""), &addrs(&b)).await;
    let addr = weir.addr;
    let slow = tokio::spawn(async move { get(addr, "/slow/1500ms").await });
    eventually(
        Duration::from_secs(5),
        "the slow request arrives",
        || async { b[0].in_flight() + b[1].in_flight() == 1 },
    )
    .await;
    let busy = if b[0].in_flight() == 1 { "b0" } else { "b1" };
    for _ in 0..6 {
        let r = get(weir.addr, "/quick").await;
        assert_ne!(r.echo().id(), busy, "the busy backend is avoided");
    }
    assert_eq!(slow.await.unwrap().status, 200);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_through_the_gateway() {
    let b = backends(1).await;
    let weir = Weir::start(&Weir::http("round_robin", "", ""), &addrs(&b)).await;
    let h2 = H2::connect(weir.addr).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let r = req("GET", &format!("http://test.local/h2/{i}?q={i}"));
        let client = &h2;
        tasks.push(async move { (i, client.try_send(r).await) });
    }
    for (i, r) in futures_join(tasks).await {
        let r = r.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.version, Version::HTTP_2);
        let e = r.echo();
        assert_eq!(e.path(), format!("/h2/{i}?q={i}"));
        assert_eq!(e.version(), "HTTP/1.1", "weir speaks HTTP/1.1 upstream");
        assert_eq!(e.header_all("host"), ["test.local"]);
        assert_eq!(e.header_all("x-forwarded-host"), ["test.local"]);
        assert!(r.header("x-request-id").is_some());
    }
    // A backend dying mid-body resets that stream only.
    let err = h2
        .try_send(req("GET", "http://test.local/die-after-headers"))
        .await
        .expect_err("a failed body on HTTP/2 too");
    assert!(err.starts_with("body"), "{err}");
    let r = h2.try_send(req("GET", "http://test.local/after")).await;
    assert_eq!(r.unwrap().status, 200, "the connection lives on");
    // The fake backend speaks h2c too.
    let direct = H2::connect(b[0].addr).await;
    let r = direct
        .try_send(req("GET", "http://test.local/d"))
        .await
        .unwrap();
    assert_eq!(r.echo().version(), "HTTP/2.0");
    weir.stop().await;
}

/// Runs futures concurrently (on this task) and returns their outputs in order.
async fn futures_join<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futs.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

async fn requests_total(weir: &Weir, method: &str, class: &str) -> f64 {
    weir.listener_metric(
        "weir_http_requests_total",
        &[("route", "default"), ("method", method), ("class", class)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_method_and_class() {
    let b = backends(1).await;
    let weir = Weir::start(&Weir::http("round_robin", "", ""), &addrs(&b)).await;
    for _ in 0..3 {
        assert_eq!(get(weir.addr, "/ok").await.status, 200);
    }
    assert_eq!(get(weir.addr, "/status/404").await.status, 404);
    let r = send(weir.addr, req_with("POST", "/p", &[("host", "a")], "x")).await;
    assert_eq!(r.status, 200);
    let l = weir.listener.clone();
    eventually(Duration::from_secs(5), "all five counted", || async {
        requests_total(&weir, "GET", "2xx").await == 3.0
            && requests_total(&weir, "GET", "4xx").await == 1.0
            && requests_total(&weir, "POST", "2xx").await == 1.0
    })
    .await;
    let text = weir.metrics().await;
    let buckets = text
        .lines()
        .filter(|line| {
            line.starts_with("weir_http_request_duration_seconds_bucket")
                && line.contains(&format!("listener=\"{l}\""))
        })
        .count();
    assert!(buckets > 5, "duration histogram has buckets:\n{text}");
    let series = [("route", "default"), ("le", "+Inf")];
    assert_eq!(
        weir.listener_metric("weir_http_request_duration_seconds_bucket", &series)
            .await,
        5.0
    );
    assert_eq!(
        weir.listener_metric(
            "weir_http_request_duration_seconds_count",
            &[("route", "default")]
        )
        .await,
        5.0
    );
    eventually(Duration::from_secs(5), "active back to 0", || async {
        weir.listener_metric("weir_http_requests_active", &[]).await == 0.0
    })
    .await;
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_timeout_closes_an_idle_connection() {
    let b = backends(1).await;
    let weir = Weir::start(
        &Weir::http("round_robin", "keepalive_timeout = \"300ms\"", ""),
        &addrs(&b),
    )
    .await;
    let request = b"GET /k HTTP/1.1\r\nHost: a\r\n\r\n";
    let (mut s, first) = raw_exchange(weir.addr, request, Duration::from_secs(10)).await;
    assert_eq!(first.status, Some(200), "{}", first.text);
    assert!(!first.closed);
    // Reused at once: keep-alive works.
    tokio::io::AsyncWriteExt::write_all(&mut s, request)
        .await
        .unwrap();
    let second = read_response(&mut s, Duration::from_secs(10)).await;
    assert_eq!(second.status, Some(200), "{}", second.text);
    assert_eq!(b[0].requests(), 2);
    // Then idle: weir closes it.
    assert!(
        closes_within(&mut s, Duration::from_secs(10)).await,
        "idle connection closed"
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_an_in_flight_request_finish() {
    let b = backends(1).await;
    let mut weir = Weir::start(&Weir::http("round_robin", "", ""), &addrs(&b)).await;
    let addr = weir.addr;
    let slow = tokio::spawn(async move { try_send(addr, req("GET", "/slow/800ms")).await });
    eventually(
        Duration::from_secs(5),
        "the slow request arrives",
        || async { b[0].requests() == 1 },
    )
    .await;
    weir.begin_shutdown();
    eventually(
        Duration::from_secs(5),
        "new connections refused",
        || async { TcpStream::connect(addr).await.is_err() },
    )
    .await;
    let r = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(r.status, 200);
    assert_eq!(r.echo().path(), "/slow/800ms");
    weir.join(Duration::from_secs(10)).await;
}

/// Runs curl with `args` then the URL; returns (status, http version, body).
async fn curl(args: &[&str], url: String) -> (u16, String, String) {
    let exe = require("curl", "curl", &[]);
    let mut all: Vec<String> = [
        "-sS",
        "--max-time",
        "10",
        "-w",
        "\n%{http_code} %{http_version}",
    ]
    .iter()
    .chain(args)
    .map(|s| (*s).to_owned())
    .collect();
    all.push(url);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(&all)
            .output()
            .expect("run curl")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').unwrap();
    let (code, version) = last.split_once(' ').unwrap();
    (code.parse().unwrap(), version.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_http1_and_http2_prior_knowledge() {
    let b = backends(1).await;
    let weir = Weir::start(&Weir::http("round_robin", "", ""), &addrs(&b)).await;
    let url = format!("http://{}/curl/x?y=1", weir.addr);
    for (args, want_version) in [
        (&["--http1.1"][..], &["1.1"][..]),
        (&["--http2-prior-knowledge"], &["2"]),
        // An h2c upgrade offer is declined: the answer comes over HTTP/1.1.
        (&["--http2"], &["1.1", "2"]),
    ] {
        let (code, version, body) = curl(args, url.clone()).await;
        assert_eq!(code, 200, "{args:?}: {body}");
        assert!(
            want_version.contains(&version.as_str()),
            "{args:?}: HTTP/{version}"
        );
        let e: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(e["id"], "b0");
        assert_eq!(e["path"], "/curl/x?y=1");
        assert!(
            e["headers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h[0] == "user-agent" && h[1].as_str().unwrap().starts_with("curl/")),
            "{e}"
        );
    }
    assert_eq!(b[0].requests(), 3);
    weir.stop().await;
}
