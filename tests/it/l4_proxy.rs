//! The TCP proxy's everyday behaviour: distribution, failover, limits, shutdown.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::fake::{Behaviour, FakeBackend, refused_addr};
use crate::support::{Weir, eventually, read_line, who};

async fn greeters(n: usize) -> Vec<FakeBackend> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(FakeBackend::start(&format!("b{i}"), Behaviour::Greet).await);
    }
    v
}

async fn tally(addr: std::net::SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        *counts.entry(who(addr).await).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_evenly_and_echoes() {
    let backends = greeters(3).await;
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    let weir = Weir::start(&Weir::simple("round_robin", "", ""), &addrs).await;
    let counts = tally(weir.addr, 30).await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(
        counts.values().all(|&c| c == 10),
        "round robin is exact: {counts:?}"
    );

    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    let id = read_line(&mut s).await;
    assert!(id.starts_with('b'));
    s.write_all(b"ping through weir\n").await.unwrap();
    assert_eq!(read_line(&mut s).await, "ping through weir");
    drop(s);
    eventually(Duration::from_secs(5), "bytes counted", || async {
        weir.listener_metric("weir_listener_bytes_total", &[("direction", "upstream")])
            .await
            >= 18.0
    })
    .await;
    assert!(
        weir.listener_metric("weir_listener_connections_accepted_total", &[])
            .await
            >= 31.0
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_honours_weights() {
    let backends = greeters(2).await;
    let text = Weir::simple("weighted_round_robin", "", "")
        .replace("{backends}", &format!(
            "[[pools.backends]]\nname = \"b0\"\naddress = \"{}\"\nweight = 3\n\n[[pools.backends]]\nname = \"b1\"\naddress = \"{}\"\nweight = 1\n",
            backends[0].addr, backends[1].addr
        ));
    let weir = Weir::start(&text, &[]).await;
    let counts = tally(weir.addr, 40).await;
    assert_eq!(counts.get("b0"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("b1"), Some(&10), "{counts:?}");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_avoids_the_busy_backend() {
    let backends = greeters(2).await;
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    let weir = Weir::start(&Weir::simple("least_connections", "", ""), &addrs).await;
    // Hold 3 connections; they alternate, then hold more on whoever got them.
    let mut held = Vec::new();
    let mut first = HashMap::<String, usize>::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(weir.addr).await.unwrap();
        *first.entry(read_line(&mut s).await).or_default() += 1;
        held.push(s);
    }
    assert_eq!(first.get("b0"), Some(&2), "equal backends share: {first:?}");
    assert_eq!(first.get("b1"), Some(&2), "equal backends share: {first:?}");
    // Close both of b1's: every new connection now goes to b1 until it catches up.
    let mut keep = Vec::new();
    for mut s in held {
        s.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf).await.unwrap();
        keep.push(s);
    }
    let (b1_conns, others): (Vec<_>, Vec<_>) = {
        let mut b1 = Vec::new();
        let mut rest = Vec::new();
        for (i, s) in keep.into_iter().enumerate() {
            if i % 2 == 1 { b1.push(s) } else { rest.push(s) }
        }
        (b1, rest)
    };
    drop(b1_conns);
    eventually(
        Duration::from_secs(5),
        "b1 has no active connections",
        || async {
            weir.backend_metric("weir_backend_connections_active", "b1", &[])
                .await
                == 0.0
                || weir
                    .backend_metric("weir_backend_connections_active", "b0", &[])
                    .await
                    == 0.0
        },
    )
    .await;
    let idle = if weir
        .backend_metric("weir_backend_connections_active", "b1", &[])
        .await
        == 0.0
    {
        "b1"
    } else {
        "b0"
    };
    let mut more = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(weir.addr).await.unwrap();
        assert_eq!(read_line(&mut s).await, idle, "least loaded backend wins");
        more.push(s);
    }
    drop(others);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maglev_keeps_a_client_on_one_backend() {
    let backends = greeters(3).await;
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    let weir = Weir::start(&Weir::simple("maglev", "", ""), &addrs).await;
    let counts = tally(weir.addr, 12).await;
    assert_eq!(counts.len(), 1, "one client IP, one backend: {counts:?}");
    weir.stop().await;

    let text = Weir::simple("maglev", "", "hash_key = \"client_ip_port\"");
    let weir = Weir::start(&text, &addrs).await;
    let counts = tally(weir.addr, 60).await;
    assert_eq!(counts.len(), 3, "ip:port keys spread: {counts:?}");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_algorithms_serve_every_backend() {
    for algorithm in ["random_two_choices", "ring_hash"] {
        let backends = greeters(3).await;
        let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
        let extra = if algorithm == "ring_hash" {
            "hash_key = \"client_ip_port\"\nbalance_factor = 1.5"
        } else {
            ""
        };
        let weir = Weir::start(&Weir::simple(algorithm, "", extra), &addrs).await;
        let counts = tally(weir.addr, 60).await;
        assert_eq!(counts.len(), 3, "{algorithm}: {counts:?}");
        weir.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_backend_is_skipped_without_the_client_noticing() {
    let good = FakeBackend::start("b1", Behaviour::Greet).await;
    let dead = refused_addr();
    let weir = Weir::start(
        &Weir::simple("round_robin", "", "passive = false"),
        &[dead, good.addr],
    )
    .await;
    for _ in 0..10 {
        assert_eq!(who(weir.addr).await, "b1");
    }
    assert!(
        weir.backend_metric(
            "weir_backend_connect_errors_total",
            "b0",
            &[("reason", "refused")]
        )
        .await
            >= 4.0
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_failures_take_a_backend_out_then_cooldown_brings_it_back() {
    let good = FakeBackend::start("b1", Behaviour::Greet).await;
    let dead = refused_addr();
    let weir = Weir::start(
        &Weir::simple("round_robin", "", "fail_timeout = \"300ms\""),
        &[dead, good.addr],
    )
    .await;
    for _ in 0..10 {
        assert_eq!(who(weir.addr).await, "b1");
    }
    // Three refusals (fall 3) mark b0 down; connects to it stop.
    let errors = weir
        .backend_metric(
            "weir_backend_connect_errors_total",
            "b0",
            &[("reason", "refused")],
        )
        .await;
    assert!(errors >= 3.0, "{errors}");
    eventually(
        Duration::from_secs(5),
        "b0 revived after fail_timeout",
        || async {
            weir.backend_metric("weir_health_transitions_total", "b0", &[("to", "up")])
                .await
                >= 1.0
        },
    )
    .await;
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_down_closes_the_client_promptly() {
    let weir = Weir::start(
        &Weir::simple("round_robin", "", ""),
        &[refused_addr(), refused_addr()],
    )
    .await;
    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed promptly");
    assert!(matches!(n, Ok(0) | Err(_)));
    eventually(Duration::from_secs(5), "counted as all_failed", || async {
        weir.listener_metric(
            "weir_listener_backend_unavailable_total",
            &[("reason", "all_failed")],
        )
        .await
            >= 1.0
    })
    .await;
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_the_excess_promptly() {
    let backend = FakeBackend::start("b0", Behaviour::Greet).await;
    let weir = Weir::start(
        &Weir::simple("round_robin", "max_connections = 2", ""),
        &[backend.addr],
    )
    .await;
    let mut a = TcpStream::connect(weir.addr).await.unwrap();
    let mut b = TcpStream::connect(weir.addr).await.unwrap();
    assert_eq!(read_line(&mut a).await, "b0");
    assert_eq!(read_line(&mut b).await, "b0");
    // The excess connection is reset at once: either the connect itself
    // reports it or the first read does; it never reaches the backend.
    if let Ok(mut c) = TcpStream::connect(weir.addr).await {
        let mut buf = [0u8; 8];
        let r = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("refused promptly");
        assert!(
            matches!(r, Ok(0) | Err(_)),
            "third connection gets nothing: {r:?}"
        );
    }
    assert_eq!(backend.accepted(), 2);
    assert_eq!(
        weir.listener_metric(
            "weir_listener_connections_rejected_total",
            &[("reason", "max_connections")]
        )
        .await,
        1.0
    );
    drop(a);
    eventually(Duration::from_secs(5), "slot freed", || async {
        weir.listener_metric("weir_listener_connections_active", &[])
            .await
            <= 1.0
    })
    .await;
    assert_eq!(who(weir.addr).await, "b0", "a freed slot serves again");
    drop(b);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_open_connections_finish() {
    let backend = FakeBackend::start("b0", Behaviour::Greet).await;
    let mut weir = Weir::start(&Weir::simple("round_robin", "", ""), &[backend.addr]).await;
    let addr = weir.addr;
    let mut open = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_line(&mut open).await, "b0");
    weir.begin_shutdown();
    // New connections are no longer accepted…
    eventually(Duration::from_secs(5), "listener closed", || async {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    // …while the open one still works during the grace period.
    open.write_all(b"still here\n").await.unwrap();
    assert_eq!(read_line(&mut open).await, "still here");
    drop(open);
    weir.join(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_over_closes_remaining_connections() {
    let backend = FakeBackend::start("b0", Behaviour::Greet).await;
    let text = Weir::simple("round_robin", "", "")
        .replace("shutdown_grace = \"2s\"", "shutdown_grace = \"200ms\"");
    let mut weir = Weir::start(&text, &[backend.addr]).await;
    let mut open = TcpStream::connect(weir.addr).await.unwrap();
    assert_eq!(read_line(&mut open).await, "b0");
    weir.begin_shutdown();
    weir.join(Duration::from_secs(5)).await;
    let mut buf = [0u8; 8];
    let r = tokio::time::timeout(Duration::from_secs(5), open.read(&mut buf))
        .await
        .expect("closed");
    assert!(matches!(r, Ok(0) | Err(_)));
}
