//! Passive outlier detection in the HTTP gateway: eject, return, back off,
//! and never eject the last ready backend.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Weir, eventually};

/// A keep-alive HTTP/1.1 backend answering every request with `status` and
/// its id as the body.
async fn backend(id: &'static str, status: u16) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{id}",
                        id.len()
                    );
                    if s.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// One GET through weir on a fresh connection: (status, body).
async fn get(weir: SocketAddr) -> (u16, String) {
    let mut s = TcpStream::connect(weir).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("answer")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn config(outlier: &str) -> String {
    format!(
        "[runtime]\nshutdown_grace = \"1s\"\n\n[[listeners]]\nname = \"{{listener}}\"\nbind = \"127.0.0.1:0\"\nprotocol = \"http\"\naccess_log = \"off\"\npool = \"{{pool}}\"\n\n[[pools]]\nname = \"{{pool}}\"\nalgorithm = \"round_robin\"\n{outlier}\n{{backends}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_is_ejected_returns_and_is_ejected_longer() {
    let bad = backend("bad", 500).await;
    let good = backend("good", 200).await;
    let text = config(
        "[pools.outlier_detection]\nconsecutive_failures = 3\nbase_ejection = \"400ms\"\nmax_ejection = \"10s\"",
    );
    let weir = Weir::start(&text, &[bad, good]).await;
    // Round robin alternates: the bad backend's third 500 ejects it.
    let mut fives = 0;
    for _ in 0..6 {
        if get(weir.addr).await.0 == 500 {
            fives += 1;
        }
    }
    assert_eq!(fives, 3);
    assert_eq!(
        weir.backend_metric("weir_http_outlier_ejections_total", "b0", &[])
            .await,
        1.0
    );
    // Ejected: everyone gets the good backend.
    for _ in 0..6 {
        assert_eq!(get(weir.addr).await, (200, "good".to_owned()));
    }
    // It returns after 400 ms, fails three more times, and is ejected again.
    eventually(Duration::from_secs(10), "second ejection", || async {
        get(weir.addr).await;
        weir.backend_metric("weir_http_outlier_ejections_total", "b0", &[])
            .await
            == 2.0
    })
    .await;
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_ready_backend_is_never_ejected() {
    let a = backend("a", 503).await;
    let b = backend("b", 502).await;
    let text =
        config("[pools.outlier_detection]\nconsecutive_failures = 2\nbase_ejection = \"10s\"");
    let weir = Weir::start(&text, &[a, b]).await;
    for _ in 0..20 {
        let (status, _) = get(weir.addr).await;
        assert!(status == 502 || status == 503, "{status}");
    }
    // One of the two may be ejected; the other never is: requests still reach a backend.
    let ejected = weir
        .backend_metric("weir_http_outlier_ejections_total", "b0", &[])
        .await
        + weir
            .backend_metric("weir_http_outlier_ejections_total", "b1", &[])
            .await;
    assert_eq!(ejected, 1.0, "one ejection, never both");
    assert_eq!(
        weir.metric(
            "weir_http_gateway_errors_total",
            &[("listener", &weir.listener), ("reason", "no_backend")]
        )
        .await,
        0.0
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_503_whose_retry_fails_reaches_the_client_as_is() {
    let busy = backend("busy", 503).await;
    let gone = crate::support::fake::refused_addr();
    let weir = Weir::start(&config("passive = false"), &[busy, gone]).await;
    // Round robin starts at b0: its 503 is retried on b1, which refuses; the
    // client then gets b0's own 503, not a gateway 502.
    assert_eq!(get(weir.addr).await, (503, "busy".to_owned()));
    weir.stop().await;
}
