//! Fault scenarios from TESTING.md for the TCP proxy, with splice and with copy.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::fake::{Behaviour, BlackHole, FakeBackend, pattern};
use crate::support::{Weir, eventually, read_line, sockets_on_port, who};

/// Both forwarders: `splice = true` (zero-copy) and `splice = false` (copy).
const MODES: [&str; 2] = ["splice = true", "splice = false"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_writes_then_closes_delivers_every_byte_then_eof() {
    for mode in MODES {
        let n = 3 * 1024 * 1024 + 17;
        let backend = FakeBackend::start("b0", Behaviour::WriteThenClose(n)).await;
        let weir = Weir::start(&Weir::simple("round_robin", mode, ""), &[backend.addr]).await;
        let mut s = TcpStream::connect(weir.addr).await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got))
            .await
            .expect("EOF arrives")
            .unwrap();
        assert_eq!(got.len(), n, "{mode}");
        assert!(got == pattern(n), "{mode}: bytes intact");
        // Our side is still open for writing after the backend's FIN.
        s.write_all(b"late").await.unwrap();
        drop(s);
        eventually(
            Duration::from_secs(5),
            "downstream bytes counted",
            || async {
                weir.listener_metric("weir_listener_bytes_total", &[("direction", "downstream")])
                    .await
                    >= n as f64
            },
        )
        .await;
        weir.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_half_close_still_gets_the_whole_reply() {
    for mode in MODES {
        let backend = FakeBackend::start("b0", Behaviour::ReadAllThenReply).await;
        let weir = Weir::start(&Weir::simple("round_robin", mode, ""), &[backend.addr]).await;
        let mut s = TcpStream::connect(weir.addr).await.unwrap();
        let body = pattern(1024 * 1024);
        s.write_all(&body).await.unwrap();
        s.shutdown().await.unwrap(); // FIN: "that's my whole request"
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(20), s.read_to_string(&mut reply))
            .await
            .expect("reply")
            .unwrap();
        assert_eq!(reply, format!("b0 got {} bytes\n", body.len()), "{mode}");
        let seen = backend.received.lock().await.clone();
        assert_eq!(seen.len(), 1);
        assert!(seen[0] == body, "{mode}: backend saw every byte, then EOF");
        weir.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_speaks_first_greeting_arrives_before_the_client_sends() {
    for mode in MODES {
        let backend = FakeBackend::start("greeter", Behaviour::Greet).await;
        let weir = Weir::start(&Weir::simple("round_robin", mode, ""), &[backend.addr]).await;
        let mut s = TcpStream::connect(weir.addr).await.unwrap();
        assert_eq!(read_line(&mut s).await, "greeter", "{mode}");
        // Large echo both ways at once: no deadlock, bytes intact.
        let body = pattern(2 * 1024 * 1024);
        let (mut r, mut w) = s.into_split();
        let send = body.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&send).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut echoed = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut echoed))
            .await
            .expect("echo")
            .unwrap();
        writer.await.unwrap();
        assert!(
            echoed == body,
            "{mode}: echo intact ({} bytes)",
            echoed.len()
        );
        weir.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_reset_closes_the_client_promptly_without_retrying() {
    for mode in MODES {
        let backend = FakeBackend::start("b0", Behaviour::GreetThenReset).await;
        let spare = FakeBackend::start("b1", Behaviour::Greet).await;
        let weir = Weir::start(
            &Weir::simple("round_robin", mode, "passive = false"),
            &[backend.addr, spare.addr],
        )
        .await;
        // Round robin starts at b0: the reset session.
        let mut s = TcpStream::connect(weir.addr).await.unwrap();
        let id = read_line(&mut s).await;
        assert_eq!(id, "b0");
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("closed promptly");
        // The reset is passed on: never a clean EOF that could pass for a complete reply.
        assert!(
            matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{mode}: client sees a reset, got {r:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            spare.accepted(),
            0,
            "{mode}: a half-done session is never retried elsewhere"
        );
        eventually(Duration::from_secs(5), "backend error counted", || async {
            weir.listener_metric("weir_listener_stream_errors_total", &[("side", "backend")])
                .await
                >= 1.0
        })
        .await;
        weir.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syn_black_hole_fails_over_at_the_connect_timeout() {
    let hole = BlackHole::new();
    let good = FakeBackend::start("b1", Behaviour::Greet).await;
    let text = Weir::simple(
        "round_robin",
        "connect_timeout = \"300ms\"",
        "passive = false",
    );
    let weir = Weir::start(&text, &[hole.addr, good.addr]).await;
    // The first connection tries the black hole first (round robin from b0).
    let started = Instant::now();
    assert_eq!(who(weir.addr).await, "b1");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250),
        "waited for the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "failed over at the timeout, not later: {took:?}"
    );
    assert!(
        weir.backend_metric(
            "weir_backend_connect_errors_total",
            "b0",
            &[("reason", "timeout")]
        )
        .await
            >= 1.0
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_on_both_sides() {
    for mode in MODES {
        let backend = FakeBackend::start("b0", Behaviour::Stall).await;
        let text = Weir::simple(
            "round_robin",
            &format!("{mode}\nidle_timeout = \"300ms\""),
            "",
        );
        let weir = Weir::start(&text, &[backend.addr]).await;
        let mut s = TcpStream::connect(weir.addr).await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 8];
        let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("idle close");
        assert!(matches!(r, Ok(0) | Err(_)), "{mode}");
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{mode}: not before the timeout"
        );
        eventually(Duration::from_secs(5), "idle timeout counted", || async {
            weir.listener_metric("weir_listener_idle_timeouts_total", &[])
                .await
                >= 1.0
        })
        .await;
        weir.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_keeps_a_connection_alive_past_the_idle_timeout() {
    let backend = FakeBackend::start("b0", Behaviour::Greet).await;
    let text = Weir::simple("round_robin", "idle_timeout = \"400ms\"", "");
    let weir = Weir::start(&text, &[backend.addr]).await;
    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    assert_eq!(read_line(&mut s).await, "b0");
    let started = Instant::now();
    let mut rounds = 0;
    // Talk every 100 ms for well past the idle timeout (bounded: 12 rounds).
    while started.elapsed() < Duration::from_millis(1200) && rounds < 12 {
        s.write_all(b"tick\n").await.unwrap();
        assert_eq!(read_line(&mut s).await, "tick");
        tokio::time::sleep(Duration::from_millis(100)).await;
        rounds += 1;
    }
    assert!(rounds >= 8);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_and_descriptors_return_to_baseline() {
    let backend = FakeBackend::start("b0", Behaviour::Greet).await;
    let weir = Weir::start(&Weir::simple("round_robin", "", ""), &[backend.addr]).await;
    // Warm up (pipes are pooled process-wide and counted in the baseline).
    for _ in 0..4 {
        assert_eq!(who(weir.addr).await, "b0");
    }
    eventually(Duration::from_secs(5), "no active connections", || async {
        weir.listener_metric("weir_listener_connections_active", &[])
            .await
            == 0.0
    })
    .await;
    let mut conns = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(weir.addr).await.unwrap();
        assert_eq!(read_line(&mut s).await, "b0");
        s.write_all(b"x\n").await.unwrap();
        assert_eq!(read_line(&mut s).await, "x");
        conns.push(s);
    }
    assert_eq!(
        weir.listener_metric("weir_listener_connections_active", &[])
            .await,
        50.0
    );
    assert_eq!(
        weir.backend_metric("weir_backend_connections_active", "b0", &[])
            .await,
        50.0
    );
    drop(conns);
    eventually(Duration::from_secs(5), "gauges back to zero", || async {
        weir.listener_metric("weir_listener_connections_active", &[])
            .await
            == 0.0
            && weir
                .backend_metric("weir_backend_connections_active", "b0", &[])
                .await
                == 0.0
    })
    .await;
    // Every socket on both sides is closed: none left on weir's port or the backend's.
    let (front, back) = (weir.addr.port(), backend.addr.port());
    eventually(Duration::from_secs(5), "no sockets left open", || async {
        sockets_on_port(front) == 0 && sockets_on_port(back) == 0
    })
    .await;
    weir.stop().await;
}
