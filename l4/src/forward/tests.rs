//! Forwarder tests over real loopback sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A connected pair: (our end, the peer's end).
async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (ours, _) = l.accept().await.unwrap();
    (ours, peer)
}

fn counters() -> ByteCounters {
    ByteCounters {
        upstream: Counter::noop(),
        downstream: Counter::noop(),
    }
}

/// Forwarding between a fresh client pair and backend pair, spawned:
/// (the client's end, the backend's end, the forwarder's outcome).
async fn spawned(splice: bool) -> (TcpStream, TcpStream, tokio::task::JoinHandle<Outcome>) {
    let (client_side, client) = pair().await;
    let (backend_side, backend) = pair().await;
    let opts = ForwardOptions {
        idle_timeout: Duration::from_secs(30),
        splice,
        keepalive: None,
    };
    let task = tokio::spawn(async move {
        let c = counters();
        forward(&client_side, &backend_side, opts, &c).await
    });
    (client, backend, task)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn an_idle_spliced_connection_holds_no_pipe() {
    let (mut client, mut backend, task) = spawned(true).await;
    let before = splice::pooled_pipes();
    // Larger than the first read of a burst, so both directions splice.
    let (up, down) = (vec![7u8; 100_000], vec![9u8; 120_000]);
    let (mut got_up, mut got_down) = (vec![0u8; up.len()], vec![0u8; down.len()]);
    let (w, r) = tokio::join!(client.write_all(&up), backend.read_exact(&mut got_up));
    w.unwrap();
    r.unwrap();
    let (w, r) = tokio::join!(backend.write_all(&down), client.read_exact(&mut got_down));
    w.unwrap();
    r.unwrap();
    assert!(got_up == up && got_down == down);
    // Both bursts are over; the connection is idle and must have given its pipes back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while splice::pooled_pipes() < before.max(1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pipe not returned while idle"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    backend.read_to_end(&mut rest).await.unwrap();
    backend.shutdown().await.unwrap();
    let outcome = task.await.unwrap();
    assert_eq!(
        outcome,
        Outcome {
            upstream: 100_000,
            downstream: 120_000,
            end: End::Closed
        }
    );
}

/// Request/response traffic whose messages straddle the first read of a
/// burst (copied) and the splice that takes over for larger ones: every
/// exchange arrives whole and in order, whichever path moved it.
#[tokio::test]
async fn messages_of_every_size_around_the_first_read_arrive_whole() {
    let first = copy::FIRST;
    let sizes = [
        1,
        first - 1,
        first,
        first + 1,
        3,
        200_000,
        2 * first,
        5,
        70_000,
        first,
        1,
    ];
    for use_splice in [true, false] {
        let (mut client, mut backend, task) = spawned(use_splice).await;
        let (mut total, bound) = (0, Duration::from_secs(10));
        for (i, &size) in sizes.iter().enumerate() {
            let request: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
            let reply: Vec<u8> = (0..size).map(|b| (b * 13 + i) as u8).collect();
            let mut got = vec![0u8; size];
            // Bounded: a direction that stops waking up would hang here.
            let exchange =
                async { tokio::join!(client.write_all(&request), backend.read_exact(&mut got)) };
            let (w, r) = tokio::time::timeout(bound, exchange)
                .await
                .expect("request stalled");
            w.unwrap();
            r.unwrap();
            assert!(
                got == request,
                "splice={use_splice}: request {i} ({size} B) intact"
            );
            let exchange =
                async { tokio::join!(backend.write_all(&reply), client.read_exact(&mut got)) };
            let (w, r) = tokio::time::timeout(bound, exchange)
                .await
                .expect("reply stalled");
            w.unwrap();
            r.unwrap();
            assert!(
                got == reply,
                "splice={use_splice}: reply {i} ({size} B) intact"
            );
            total += size as u64;
        }
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        backend.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        backend.shutdown().await.unwrap();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        let outcome = task.await.unwrap();
        assert_eq!(
            outcome,
            Outcome {
                upstream: total,
                downstream: total,
                end: End::Closed
            },
            "splice={use_splice}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_ends_a_silent_connection() {
    for use_splice in [true, false] {
        let (client_side, _client) = pair().await;
        let (backend_side, _backend) = pair().await;
        let opts = ForwardOptions {
            idle_timeout: Duration::from_secs(3600),
            splice: use_splice,
            keepalive: None,
        };
        let started = tokio::time::Instant::now();
        let outcome = forward(&client_side, &backend_side, opts, &counters()).await;
        assert_eq!(outcome.end, End::IdleTimeout);
        assert!(started.elapsed() >= Duration::from_secs(3600));
    }
}

#[tokio::test]
async fn bulk_both_ways_with_half_close() {
    for use_splice in [true, false] {
        let (client, backend, task) = spawned(use_splice).await;
        let up: Vec<u8> = (0..4_000_000u32).map(|i| (i % 253) as u8).collect();
        let down: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        let (mut cr, mut cw) = client.into_split();
        let (mut br, mut bw) = backend.into_split();
        let (up2, down2) = (up.clone(), down.clone());
        let w1 = tokio::spawn(async move {
            cw.write_all(&up2).await.unwrap();
            cw.shutdown().await.unwrap();
        });
        let w2 = tokio::spawn(async move {
            bw.write_all(&down2).await.unwrap();
            bw.shutdown().await.unwrap();
        });
        let mut got_up = Vec::new();
        let mut got_down = Vec::new();
        let (a, b) = tokio::join!(br.read_to_end(&mut got_up), cr.read_to_end(&mut got_down));
        a.unwrap();
        b.unwrap();
        w1.await.unwrap();
        w2.await.unwrap();
        assert!(got_up == up, "splice={use_splice}: upstream intact");
        assert!(got_down == down, "splice={use_splice}: downstream intact");
        let outcome = task.await.unwrap();
        assert_eq!(outcome.upstream, up.len() as u64);
        assert_eq!(outcome.downstream, down.len() as u64);
        assert_eq!(outcome.end, End::Closed);
    }
}

/// Every held connection carries the forwarder's future in its task: a
/// burst's state is boxed while it runs, so the resting future stays small
/// (memory per idle connection is an issue 7 target).
#[tokio::test]
async fn the_forwarders_resting_future_stays_small() {
    let (a, _pa) = pair().await;
    let (b, _pb) = pair().await;
    let c = counters();
    let opts = ForwardOptions {
        idle_timeout: Duration::from_secs(30),
        splice: true,
        keepalive: None,
    };
    let fwd = forward(&a, &b, opts, &c);
    // 2,432 bytes before the burst was boxed, 1,696 after, 624 once the
    // directions were polled in place and wait in the sockets' own waker
    // slots, 664 with the keepalive to arm (debug and release alike).
    let size = std::mem::size_of_val(&fwd);
    assert!(size <= 768, "forward() future is {size} bytes");
}

/// Keepalive costs three system calls on the backend socket: a connection
/// gets it once it has lived `KEEPALIVE_AFTER`, and one that ends sooner
/// never pays for it.
#[tokio::test(start_paused = true)]
async fn backend_keepalive_is_armed_once_the_connection_has_lived_a_moment() {
    let (client_side, _client) = pair().await;
    let (backend_side, _backend) = pair().await;
    let opts = ForwardOptions {
        idle_timeout: Duration::from_secs(3600),
        splice: true,
        keepalive: Some(Duration::from_secs(42)),
    };
    let c = counters();
    let mut fwd = std::pin::pin!(forward(&client_side, &backend_side, opts, &c));
    let keepalive = || SockRef::from(&backend_side).keepalive().unwrap();
    let before = KEEPALIVE_AFTER - Duration::from_millis(100);
    tokio::select! {
        _ = &mut fwd => panic!("forwarding ended"),
        () = tokio::time::sleep(before) => {}
    }
    assert!(!keepalive(), "not yet");
    tokio::select! {
        _ = &mut fwd => panic!("forwarding ended"),
        () = tokio::time::sleep(Duration::from_millis(200)) => {}
    }
    assert!(keepalive(), "armed after KEEPALIVE_AFTER");
    let s = SockRef::from(&backend_side);
    assert_eq!(s.tcp_keepalive_time().unwrap(), Duration::from_secs(42));
    // A quarter of 42 s, in the kernel's whole seconds.
    assert_eq!(s.tcp_keepalive_interval().unwrap(), Duration::from_secs(10));
}

/// Small messages toward a backend that stops reading for a while: its
/// socket fills, and the forwarder must keep the message it read but could
/// not write, and write it once the backend reads again. Every byte
/// arrives, in order.
#[tokio::test]
async fn small_messages_wait_for_a_backend_that_stopped_reading() {
    for use_splice in [true, false] {
        let (client_side, client) = pair().await;
        let (backend_side, mut backend) = pair().await;
        // Small buffers toward the backend, so that they fill within a few
        // messages while the client side has room for many more.
        SockRef::from(&backend_side)
            .set_send_buffer_size(4096)
            .unwrap();
        SockRef::from(&backend).set_recv_buffer_size(4096).unwrap();
        let opts = ForwardOptions {
            idle_timeout: Duration::from_secs(30),
            splice: use_splice,
            keepalive: None,
        };
        let task = tokio::spawn(async move {
            let c = counters();
            forward(&client_side, &backend_side, opts, &c).await
        });
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let written = std::cell::Cell::new(0usize);
        // One task (current-thread runtime): the writer sends a 1,000-byte
        // message per turn, letting the forwarder move each one; the reader
        // starts after 100 of them.
        let writer = async {
            let mut client = client;
            for chunk in sent.chunks(1000) {
                client.write_all(chunk).await.unwrap();
                written.set(written.get() + 1);
                tokio::task::yield_now().await;
            }
            client.shutdown().await.unwrap();
            client
        };
        let reader = async {
            while written.get() < 100 {
                tokio::task::yield_now().await;
            }
            // Reading again, with room to (a 4 KiB window is slow).
            SockRef::from(&backend)
                .set_recv_buffer_size(1 << 20)
                .unwrap();
            let mut got = Vec::with_capacity(data.len());
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = backend.read(&mut buf).await.unwrap();
                if n == 0 {
                    break got;
                }
                got.extend_from_slice(&buf[..n]);
                tokio::task::yield_now().await;
            }
        };
        let bound = Duration::from_secs(30);
        let (_client, got) = tokio::time::timeout(bound, async { tokio::join!(writer, reader) })
            .await
            .expect("stalled");
        assert!(got == data, "splice={use_splice}: every byte, in order");
        backend.shutdown().await.unwrap();
        let outcome = task.await.unwrap();
        assert_eq!(outcome.upstream, data.len() as u64);
        assert_eq!(outcome.end, End::Closed);
    }
}
