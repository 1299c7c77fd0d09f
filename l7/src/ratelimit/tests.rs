//! The rate-limit step with tokio's paused clock: exact counts, refill after
//! `Retry-After`, dry run, headers, and the fail modes of a global policy
//! whose Redis is unreachable.

use std::net::SocketAddr;
use std::time::Duration;

use weir_config::rate_limit::{KeyPart, OnError, RateLimitPolicy, RedisConfig, Scope};

use super::*;

fn policy(name: &str, count: u64, period: Duration, burst: u64) -> RateLimitPolicy {
    RateLimitPolicy {
        name: name.to_owned(),
        count,
        period,
        burst,
        key: vec![KeyPart::ClientIp],
        scope: Scope::Local,
        on_error: OnError::FailOpen,
        timeout: Duration::from_millis(50),
        dry_run: false,
        headers: false,
    }
}

fn parts() -> http::request::Parts {
    http::Request::builder()
        .uri("/")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

const A: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);
const B: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)),
    1,
);

async fn allowed(rl: &RateLimits, ids: &[usize], client: SocketAddr, n: usize) -> usize {
    let p = parts();
    let mut ok = 0;
    for _ in 0..n {
        if rl.check(ids, "r", &p, client).await.reject.is_none() {
            ok += 1;
        }
    }
    ok
}

#[tokio::test(start_paused = true)]
async fn burst_then_steady_rate_then_refill_after_retry_after() {
    // 10/s, burst 5.
    let rl = RateLimits::new(&[policy("p", 10, Duration::from_secs(1), 5)], None);
    assert_eq!(allowed(&rl, &[0], A, 50).await, 5);
    // Another client is not affected.
    assert_eq!(allowed(&rl, &[0], B, 50).await, 5);
    let v = rl.check(&[0], "r", &parts(), A).await;
    assert_eq!(v.reject, Some(GatewayError::TooManyRequests));
    let h = v.headers.unwrap();
    assert_eq!(h[http::header::RETRY_AFTER], "1");
    assert_eq!(h[&headers::RATELIMIT_POLICY], "\"p\";q=10;w=1");
    assert_eq!(h[&headers::RATELIMIT], "\"p\";r=0;t=1");
    // Steady: over 2 s in 10 ms steps, exactly 20 more.
    let mut total = 0;
    for _ in 0..200 {
        tokio::time::advance(Duration::from_millis(10)).await;
        total += allowed(&rl, &[0], A, 3).await;
    }
    assert_eq!(total, 20);
    // Idle for the whole burst's refill: a full burst again, no more.
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(allowed(&rl, &[0], A, 50).await, 5);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_when_a_request_passes_again() {
    // 1 per minute, burst 2.
    let rl = RateLimits::new(&[policy("slow", 1, Duration::from_secs(60), 2)], None);
    assert_eq!(allowed(&rl, &[0], A, 10).await, 2);
    let v = rl.check(&[0], "r", &parts(), A).await;
    let retry: u64 = v.headers.unwrap()[http::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, 60);
    tokio::time::advance(Duration::from_secs(retry - 1)).await;
    assert_eq!(allowed(&rl, &[0], A, 1).await, 0);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(allowed(&rl, &[0], A, 5).await, 1);
}

#[tokio::test(start_paused = true)]
async fn every_policy_must_pass_and_headers_show_on_allowed_responses() {
    let mut wide = policy("wide", 100, Duration::from_secs(1), 100);
    wide.headers = true;
    let narrow = policy("narrow", 1, Duration::from_secs(1), 3);
    let rl = RateLimits::new(&[wide, narrow], None);
    let v = rl.check(&[0, 1], "r", &parts(), A).await;
    assert!(v.reject.is_none());
    let h = v.headers.unwrap();
    // Only the policy with headers = true shows on an allowed response.
    assert_eq!(h[&headers::RATELIMIT], "\"wide\";r=99;t=1");
    assert!(h.get(http::header::RETRY_AFTER).is_none());
    assert_eq!(allowed(&rl, &[0, 1], A, 10).await, 2);
    let v = rl.check(&[0, 1], "r", &parts(), A).await;
    assert_eq!(v.reject, Some(GatewayError::TooManyRequests));
    let h = v.headers.unwrap();
    assert_eq!(
        h[&headers::RATELIMIT_POLICY],
        "\"wide\";q=100;w=1, \"narrow\";q=1;w=1"
    );
}

#[tokio::test(start_paused = true)]
async fn dry_run_counts_but_never_refuses() {
    let mut p = policy("dry", 1, Duration::from_secs(1), 1);
    p.dry_run = true;
    let rl = RateLimits::new(&[p], None);
    assert_eq!(allowed(&rl, &[0], A, 10).await, 10);
}

#[tokio::test(start_paused = true)]
async fn local_keys_are_bounded_under_a_flood_of_clients() {
    let rl = RateLimits::new(&[policy("flood", 10, Duration::from_secs(1), 1)], None);
    let p = parts();
    let Store::Local(store) = &rl.policies[0].store else {
        unreachable!()
    };
    let mut peak = 0;
    for i in 0..200_000u32 {
        if i % 1000 == 0 {
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        let v = rl.check(&[0], "r", &p, SocketAddr::from((ip, 1))).await;
        assert!(v.reject.is_none());
        peak = peak.max(store.len());
    }
    // 100 ms of keys live at a time (10 steps of 1000); sweeps are lazy.
    assert!(peak <= 4 * 10_000 + 64 * 256, "peak {peak}");
}

/// A global policy whose Redis refuses connections: fail_open allows,
/// fail_closed refuses with 503, both promptly.
#[tokio::test]
async fn global_policies_fail_open_or_closed_when_redis_is_unreachable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = RedisConfig {
        host: "127.0.0.1".into(),
        port,
        username: None,
        password: None,
        key_prefix: "t:".into(),
        connect_timeout: Duration::from_millis(200),
    };
    let mut open = policy("open", 1, Duration::from_secs(1), 1);
    open.scope = Scope::Global;
    let mut closed = open.clone();
    closed.name = "closed".into();
    closed.on_error = OnError::FailClosed;
    let rl = RateLimits::new(&[open, closed], Some(&redis));
    let start = std::time::Instant::now();
    for _ in 0..5 {
        assert!(rl.check(&[0], "r", &parts(), A).await.reject.is_none());
        assert_eq!(
            rl.check(&[1], "r", &parts(), A).await.reject,
            Some(GatewayError::RateLimitUnavailable)
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
