//! Rate limits end to end: local policies (429 and its headers, dry run,
//! keys), global policies shared by two weir instances through a real
//! redis-server, Redis outages (fail_open, fail_closed, recovery without a
//! restart of weir), and the L4 per-client connection limits.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::support::fake::{Behaviour, FakeBackend};
use crate::support::fake_http::{FakeHttp, Reply, req, req_with, send};
use crate::support::peers::{RedisServer, TempDir, promtool, redis_cli, run_bounded};
use crate::support::{Weir, eventually, read_line, unique};

/// An HTTP listener with `routes` (tables using `pool = "{pool}"`) and no
/// default route, then the top-level tables `top` (policies, `[redis]`).
fn config(routes: &str, top: &str) -> String {
    format!("{}\n{top}\n", Weir::http_routes("round_robin", routes, ""))
}

fn route(name: &str, path: &str, limits: &str) -> String {
    format!(
        "\n[[listeners.routes]]\nname = \"{name}\"\npath_prefix = \"{path}\"\npool = \"{{pool}}\"\nrate_limits = [{limits}]\n"
    )
}

fn policy(name: &str, keys: &str) -> String {
    format!("\n[[rate_limits]]\nname = \"{name}\"\n{keys}\n")
}

fn redis_section(port: u16, prefix: &str) -> String {
    format!(
        "\n[redis]\naddress = \"127.0.0.1:{port}\"\nkey_prefix = \"{prefix}\"\nconnect_timeout = \"200ms\"\n"
    )
}

async fn metric(weir: &Weir, policy: &str, result: &str) -> f64 {
    weir.metric(
        "weir_rate_limit_decisions_total",
        &[("policy", policy), ("result", result)],
    )
    .await
}

async fn start_redis() -> RedisServer {
    tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("start redis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_limit_answers_429_with_headers_and_the_backend_never_sees_it() {
    let backend = FakeHttp::start("b0").await;
    let p = unique("local");
    let routes = format!(
        "{}{}",
        route("limited", "/api", &format!("\"{p}\"")),
        route("free", "/free", "")
    );
    let top = policy(&p, "rate = \"1/m\"\nburst = 3\nheaders = true");
    let weir = Weir::start(&config(&routes, &top), &[backend.addr]).await;

    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = send(weir.addr, req("GET", "/api/x")).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("ratelimit-policy"),
            Some(format!("\"{p}\";q=1;w=60").as_str())
        );
        remaining.push(r.header("ratelimit").unwrap_or_default().to_owned());
        assert!(r.header("retry-after").is_none());
    }
    assert_eq!(
        remaining,
        [
            format!("\"{p}\";r=2;t=60"),
            format!("\"{p}\";r=1;t=120"),
            format!("\"{p}\";r=0;t=180")
        ]
    );
    for _ in 0..4 {
        let r = send(weir.addr, req("GET", "/api/x")).await;
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.header("retry-after"), Some("60"));
        assert_eq!(
            r.header("ratelimit-policy"),
            Some(format!("\"{p}\";q=1;w=60").as_str())
        );
        assert_eq!(
            r.header("ratelimit"),
            Some(format!("\"{p}\";r=0;t=180").as_str())
        );
        assert_eq!(r.json()["error"], "too many requests");
        assert!(r.header("x-request-id").is_some());
    }
    // The backend saw exactly the allowed ones; an unlimited route is not limited.
    assert_eq!(backend.requests(), 3);
    for _ in 0..5 {
        assert_eq!(send(weir.addr, req("GET", "/free")).await.status, 200);
    }
    assert_eq!(metric(&weir, &p, "allowed").await, 3.0);
    assert_eq!(metric(&weir, &p, "limited").await, 4.0);
    assert_eq!(
        weir.listener_metric(
            "weir_http_gateway_errors_total",
            &[("reason", "rate_limited")]
        )
        .await,
        4.0
    );
    let keys = weir
        .metric("weir_rate_limit_keys", &[("policy", p.as_str())])
        .await;
    assert_eq!(keys, 1.0);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_keys_count_each_api_key_and_dry_run_never_refuses() {
    let backend = FakeHttp::start("b0").await;
    let (keyed, dry) = (unique("keyed"), unique("dry"));
    let routes = format!(
        "{}{}",
        route("keyed", "/keyed", &format!("\"{keyed}\"")),
        route("dry", "/dry", &format!("\"{dry}\""))
    );
    let top = format!(
        "{}{}",
        policy(
            &keyed,
            "rate = \"1/h\"\nburst = 2\nkey = \"header:x-api-key\""
        ),
        policy(&dry, "rate = \"1/h\"\nburst = 1\ndry_run = true")
    );
    let weir = Weir::start(&config(&routes, &top), &[backend.addr]).await;
    let with_key = |k: &'static str| {
        req_with(
            "GET",
            "/keyed",
            &[("host", "test.local"), ("x-api-key", k)],
            "",
        )
    };
    let mut statuses = Vec::new();
    for k in ["alice", "alice", "alice", "bob", "bob", "bob"] {
        statuses.push(send(weir.addr, with_key(k)).await.status);
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429]);
    // Without the header: counted by client IP, a bucket of its own.
    assert_eq!(send(weir.addr, req("GET", "/keyed")).await.status, 200);

    for _ in 0..5 {
        let r: Reply = send(weir.addr, req("GET", "/dry")).await;
        assert_eq!(r.status, 200);
        assert!(r.header("ratelimit").is_none(), "headers are off");
    }
    assert_eq!(metric(&weir, &dry, "allowed").await, 1.0);
    assert_eq!(metric(&weir, &dry, "dry_run").await, 4.0);
    assert_eq!(metric(&weir, &dry, "limited").await, 0.0);
    weir.stop().await;
}

/// Two weir instances, one global policy in one real redis-server: across
/// both, the requests allowed over the test's window stay within
/// burst + rate × window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_global_limit() {
    let redis = start_redis().await;
    let backend = FakeHttp::start("b0").await;
    let p = unique("shared");
    let prefix = unique("weir-test-");
    let (rate, burst) = (20.0, 10.0);
    let top = format!(
        "{}{}",
        redis_section(redis.port, &prefix),
        policy(
            &p,
            "rate = \"20/s\"\nburst = 10\nscope = \"global\"\ntimeout = \"500ms\""
        )
    );
    let text = config(&route("api", "/", &format!("\"{p}\"")), &top);
    let a = Weir::start(&text, &[backend.addr]).await;
    let b = Weir::start(&text, &[backend.addr]).await;

    // Alternate between the instances for about 1.5 s and at least 200
    // requests (a slow machine runs longer), at most 3000 requests or 20 s.
    let start = Instant::now();
    let (mut allowed, mut limited, mut other) = ([0usize; 2], [0usize; 2], 0usize);
    for i in 0..3000 {
        let elapsed = start.elapsed();
        if (elapsed >= Duration::from_millis(1500) && i >= 200)
            || elapsed >= Duration::from_secs(20)
        {
            break;
        }
        let which = i % 2;
        let addr = if which == 0 { a.addr } else { b.addr };
        match send(addr, req("GET", "/x")).await.status {
            200 => allowed[which] += 1,
            429 => limited[which] += 1,
            _ => other += 1,
        }
    }
    let window = start.elapsed().as_secs_f64();
    let total = allowed[0] + allowed[1];
    let bound = burst + rate * window;
    eprintln!(
        "global limit: {total} allowed ({allowed:?}), {limited:?} limited in {window:.2} s; bound {bound:.1}"
    );
    assert_eq!(other, 0);
    assert!(
        total as f64 <= bound + 1.0,
        "allowed {total} > burst + rate × window = {bound:.1}: the instances do not share the limit"
    );
    // Not simply refusing everything: at least the burst passed, and both
    // instances both allowed and refused.
    assert!(total as f64 >= burst, "{total}");
    assert!(allowed.iter().all(|&n| n > 0) && limited.iter().all(|&n| n > 0));
    assert_eq!(backend.requests(), total);
    a.stop().await;
    b.stop().await;
    drop(redis);
}

async fn status_and_time(addr: SocketAddr, path: &str) -> (u16, Duration) {
    let start = Instant::now();
    let r = send(addr, req("GET", path)).await;
    (r.status, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_open_or_closed_and_recovers_without_a_restart() {
    let mut redis = start_redis().await;
    let backend = FakeHttp::start("b0").await;
    let (open, closed) = (unique("open"), unique("closed"));
    let routes = format!(
        "{}{}",
        route("open", "/open", &format!("\"{open}\"")),
        route("closed", "/closed", &format!("\"{closed}\""))
    );
    let limits = "rate = \"1/m\"\nburst = 2\nscope = \"global\"\ntimeout = \"100ms\"";
    let top = format!(
        "{}{}{}",
        redis_section(redis.port, &unique("weir-test-")),
        policy(&open, limits),
        policy(&closed, &format!("{limits}\non_error = \"fail_closed\""))
    );
    let weir = Weir::start(&config(&routes, &top), &[backend.addr]).await;

    // Redis up: both limits apply.
    for path in ["/open", "/closed"] {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(status_and_time(weir.addr, path).await.0);
        }
        assert_eq!(got, [200, 200, 429], "{path}");
    }

    // Redis dies: fail_open lets requests through, fail_closed answers 503,
    // both quickly; errors are counted.
    let port = redis.port;
    redis = tokio::task::spawn_blocking(move || {
        redis.stop();
        redis
    })
    .await
    .unwrap();
    for _ in 0..5 {
        let (status, took) = status_and_time(weir.addr, "/open").await;
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(1), "fail_open took {took:?}");
        let (status, took) = status_and_time(weir.addr, "/closed").await;
        assert_eq!(status, 503);
        assert!(took < Duration::from_secs(1), "fail_closed took {took:?}");
    }
    let r = send(weir.addr, req("GET", "/closed")).await;
    assert_eq!(r.json()["error"], "rate limit unavailable");
    assert!(metric(&weir, &open, "failed_open").await >= 5.0);
    assert!(metric(&weir, &closed, "failed_closed").await >= 6.0);
    let mut errors = 0.0;
    for reason in ["error", "timeout"] {
        errors += weir
            .metric(
                "weir_rate_limit_redis_errors_total",
                &[("policy", open.as_str()), ("reason", reason)],
            )
            .await;
    }
    assert!(errors >= 5.0, "redis errors counted: {errors}");
    assert_eq!(backend.requests(), 2 + 2 + 5, "fail_closed never forwards");

    // Redis comes back on the same port (empty: no persistence): the limits
    // apply again, with no restart of weir.
    redis = tokio::task::spawn_blocking(move || {
        redis.restart();
        redis
    })
    .await
    .unwrap();
    assert_eq!(redis.port, port);
    eventually(
        Duration::from_secs(15),
        "fail_closed route served again",
        || async { status_and_time(weir.addr, "/closed").await.0 == 200 },
    )
    .await;
    eventually(
        Duration::from_secs(15),
        "the open route limited again",
        || async { status_and_time(weir.addr, "/open").await.0 == 429 },
    )
    .await;

    // Every rate-limit series passes promtool; the Redis latency histogram
    // has real buckets.
    let text = weir.metrics().await;
    let bucket =
        format!("weir_rate_limit_redis_duration_seconds_bucket{{policy=\"{open}\",le=\"0.05\"}}");
    assert!(text.contains(&bucket), "no {bucket} in:\n{text}");
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(promtool());
        cmd.args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        run_bounded(cmd, Some(&text), Duration::from_secs(60))
    })
    .await
    .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
    weir.stop().await;
    drop(redis);
}

/// A Redis that requires a password: weir authenticates with the one from
/// `password_file`; with a wrong one every check fails and `on_error` decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_policies_authenticate_to_redis_with_the_configured_password() {
    let redis = start_redis().await;
    let port = redis.port;
    let out = tokio::task::spawn_blocking(move || {
        redis_cli(port, &["CONFIG", "SET", "requirepass", "s3cret"], None)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dir = TempDir::new("rl-pw");
    std::fs::write(dir.join("good"), "s3cret\n").unwrap();
    std::fs::write(dir.join("bad"), "wrong\n").unwrap();
    let backend = FakeHttp::start("b0").await;
    let text = |file: &str, p: &str| {
        let top = format!(
            "{}password_file = \"{}\"\n{}",
            redis_section(port, &unique("weir-test-")),
            dir.join(file).display(),
            policy(
                p,
                "rate = \"1/m\"\nburst = 2\nscope = \"global\"\non_error = \"fail_closed\"\ntimeout = \"500ms\""
            )
        );
        config(&route("api", "/", &format!("\"{p}\"")), &top)
    };
    let (good, bad) = (unique("auth"), unique("noauth"));
    let weir = Weir::start(&text("good", &good), &[backend.addr]).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(send(weir.addr, req("GET", "/x")).await.status);
    }
    assert_eq!(got, [200, 200, 429]);
    weir.stop().await;

    let weir = Weir::start(&text("bad", &bad), &[backend.addr]).await;
    assert_eq!(send(weir.addr, req("GET", "/x")).await.status, 503);
    assert_eq!(metric(&weir, &bad, "failed_closed").await, 1.0);
    weir.stop().await;
    drop(redis);
}

/// Connects to `addr` from the source address `from` (any of 127/8).
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(addr).await
}

/// True when the connection is closed (reset or EOF) without a byte.
async fn refused(s: std::io::Result<TcpStream>) -> bool {
    let Ok(mut s) = s else { return true };
    let mut buf = [0u8; 8];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_per_client_closes_the_excess_and_spares_other_clients() {
    let backend = FakeBackend::start("b0", Behaviour::Greet).await;
    let weir = Weir::start(
        &Weir::simple("round_robin", "max_connections_per_client = 2", ""),
        &[backend.addr],
    )
    .await;
    let mut a1 = connect_from([127, 0, 0, 1], weir.addr).await.unwrap();
    let mut a2 = connect_from([127, 0, 0, 1], weir.addr).await.unwrap();
    assert_eq!(read_line(&mut a1).await, "b0");
    assert_eq!(read_line(&mut a2).await, "b0");
    assert!(refused(connect_from([127, 0, 0, 1], weir.addr).await).await);
    assert!(refused(connect_from([127, 0, 0, 1], weir.addr).await).await);
    // Another client is unaffected.
    let mut b1 = connect_from([127, 0, 0, 2], weir.addr).await.unwrap();
    let mut b2 = connect_from([127, 0, 0, 2], weir.addr).await.unwrap();
    assert_eq!(read_line(&mut b1).await, "b0");
    assert_eq!(read_line(&mut b2).await, "b0");
    assert_eq!(backend.accepted(), 4);
    assert_eq!(
        weir.listener_metric(
            "weir_listener_connections_rejected_total",
            &[("reason", "max_connections_per_client")]
        )
        .await,
        2.0
    );
    // A closed connection gives its slot back.
    drop(a1);
    eventually(Duration::from_secs(5), "a's slot comes back", || async {
        let mut s = match connect_from([127, 0, 0, 1], weir.addr).await {
            Ok(s) => s,
            Err(_) => return false,
        };
        read_line(&mut s).await == "b0"
    })
    .await;
    drop((a2, b1, b2));
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_rate_per_client_closes_the_excess_and_spares_other_clients() {
    let backend = FakeBackend::start("b0", Behaviour::Greet).await;
    let weir = Weir::start(
        &Weir::simple(
            "round_robin",
            "connection_rate_per_client = \"1/h\"\nconnection_burst_per_client = 3",
            "",
        ),
        &[backend.addr],
    )
    .await;
    for _ in 0..3 {
        let mut s = connect_from([127, 0, 0, 1], weir.addr).await.unwrap();
        assert_eq!(read_line(&mut s).await, "b0");
    }
    for _ in 0..3 {
        assert!(refused(connect_from([127, 0, 0, 1], weir.addr).await).await);
    }
    let mut other = connect_from([127, 0, 0, 2], weir.addr).await.unwrap();
    assert_eq!(read_line(&mut other).await, "b0");
    assert_eq!(backend.accepted(), 4);
    assert_eq!(
        weir.listener_metric(
            "weir_listener_connections_rejected_total",
            &[("reason", "connection_rate_per_client")]
        )
        .await,
        3.0
    );
    weir.stop().await;
}
