//! Micro-benchmark of L7 routing: `RouteTable::find` (the per-request route
//! lookup) with 1,000 routes, against the same lookups with 10 routes, and
//! the off-path build of the 1,000-route table (issue 7).
//!
//! The table mixes what an operator writes for a large API gateway: path
//! prefixes for any host (`/svcN/v1`), exact health paths (`/svcN/health`),
//! per-tenant host routes (`tenantN.example.com` + `/api`) and a catch-all
//! `/`. The lookups: a deep path under a prefix (walks its segment prefixes
//! from longest to shortest), an exact path, a host route, and a path no
//! route but the catch-all matches.
//!
//! Run: `cargo bench --bench route -- --warm-up-time 1 --measurement-time 3`.
//! Results and what they mean: docs/benchmarks.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hyper::HeaderMap;
use weir_config::http::{HeaderEdits, HostMatch, PathMatch, Route, RouteAction};
use weir_l7::route::RouteTable;

fn route(name: String, host: Option<HostMatch>, path: PathMatch) -> Route {
    Route {
        name,
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
        response_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(30),
        retries: 0,
        auth: Vec::new(),
        rate_limits: Vec::new(),
    }
}

/// `n` routes (n >= 10, a multiple of 10): 60% prefixes, 30% exact paths,
/// 10% host routes less one, and the catch-all last.
fn routes(n: usize) -> Vec<Route> {
    let prefixes = n * 6 / 10;
    let exacts = n * 3 / 10;
    let hosts = n - prefixes - exacts - 1;
    let mut v = Vec::with_capacity(n);
    for i in 0..prefixes {
        v.push(route(
            format!("svc{i}"),
            None,
            PathMatch::Prefix(format!("/svc{i}/v1")),
        ));
    }
    for i in 0..exacts {
        v.push(route(
            format!("health{i}"),
            None,
            PathMatch::Exact(format!("/svc{i}/health")),
        ));
    }
    for i in 0..hosts {
        v.push(route(
            format!("tenant{i}"),
            Some(HostMatch::Exact(format!("tenant{i}.example.com"))),
            PathMatch::Prefix("/api".into()),
        ));
    }
    v.push(route("default".into(), None, PathMatch::Prefix("/".into())));
    v
}

fn find(c: &mut Criterion) {
    let headers = HeaderMap::new();
    let mut group = c.benchmark_group("route_find");
    for n in [10, 1000] {
        let table = RouteTable::new(routes(n));
        // Targets that exist at both sizes: svc5 (a prefix), svc2 (an exact
        // path), tenant0 (a host route).
        let lookups = [
            ("prefix_deep", "api.example.com", "/svc5/v1/users/42/orders"),
            ("exact", "api.example.com", "/svc2/health"),
            ("host_prefix", "tenant0.example.com", "/api/items/7"),
            ("catch_all", "api.example.com", "/static/css/site.css"),
        ];
        for (name, host, path) in lookups {
            assert!(table.find(host, path, "GET", &headers).is_some());
            group.bench_with_input(BenchmarkId::new(name, n), &table, |b, table| {
                b.iter(|| table.find(black_box(host), black_box(path), "GET", &headers));
            });
        }
    }
    group.finish();
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_build");
    let routes = routes(1000);
    group.bench_function(BenchmarkId::new("RouteTable::new", 1000), |b| {
        b.iter(|| RouteTable::new(black_box(routes.clone())));
    });
    group.finish();
}

criterion_group!(benches, find, build);
criterion_main!(benches);
