//! The gateway's pooled connections to backends: kept alive and reused
//! across requests and clients, not reused after a response cut short, and
//! replaced transparently when the backend closed an idle one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::Weir;

fn one_worker(toml: &str) -> String {
    Weir::workers(1, toml)
}
use crate::support::fake_http::{FakeHttp, get, read_response, req, try_send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_to_a_backend_are_reused() {
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(
        &one_worker(&Weir::http("round_robin", "", "")),
        &[backend.addr],
    )
    .await;
    // Each `get` is a new client connection; one backend connection serves
    // them all, one after another.
    for i in 0..30 {
        assert_eq!(get(weir.addr, &format!("/r{i}")).await.status, 200);
    }
    assert_eq!(backend.requests(), 30);
    assert_eq!(
        backend.connections(),
        1,
        "sequential requests share one backend connection"
    );
    weir.stop().await;
}

/// Each worker thread keeps its own backend connections: sequential
/// clients, spread over two workers by the kernel, make the backend see one
/// connection per worker — each reused, none per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_keeps_its_own_backend_connections() {
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(
        &Weir::workers(2, &Weir::http("round_robin", "", "")),
        &[backend.addr],
    )
    .await;
    // 40 client connections from fresh ports: the chance that the kernel
    // puts all of them on one worker's socket is 2^-39.
    for i in 0..40 {
        assert_eq!(get(weir.addr, &format!("/r{i}")).await.status, 200);
    }
    assert_eq!(backend.requests(), 40);
    assert_eq!(
        backend.connections(),
        2,
        "one backend connection per worker"
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_cut_short_does_not_return_its_connection() {
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(
        &one_worker(&Weir::http("round_robin", "", "")),
        &[backend.addr],
    )
    .await;
    assert_eq!(get(weir.addr, "/first").await.status, 200);
    assert_eq!(backend.connections(), 1);
    // The backend dies mid-body on its connection: the client sees a
    // failed body, and the next request needs (and gets) a new connection.
    assert!(
        try_send(weir.addr, req("GET", "/die-after-headers"))
            .await
            .is_err()
    );
    for _ in 0..3 {
        assert_eq!(get(weir.addr, "/after").await.status, 200);
    }
    assert_eq!(backend.connections(), 2, "one new connection, then reused");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_the_backend_closed_is_replaced_without_an_error() {
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(
        &one_worker(&Weir::http("round_robin", "", "")),
        &[backend.addr],
    )
    .await;
    assert_eq!(get(weir.addr, "/warm").await.status, 200);
    // The backend goes away with weir's idle connection and comes back on
    // the same port: the pooled connection is dead, whether or not weir has
    // noticed yet. Either way no client sees an error.
    backend.stop();
    let addr = backend.addr;
    drop(backend);
    let backend = FakeHttp::start_at(addr, "b0-again").await;
    for _ in 0..3 {
        let r = get(weir.addr, "/x").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.echo().id(), "b0-again");
    }
    assert_eq!(backend.connections(), 1);
    weir.stop().await;
}

/// A backend that answers `/upload` with 401 at once, without reading the
/// request body (as many servers do), and `200 ok` to anything else; it
/// counts connections.
async fn early_answering_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end + 4);
                    if head.starts_with("POST /upload") {
                        let _ = s
                            .write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        // Never reads the body; holds the connection.
                        std::future::pending::<()>().await;
                    }
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                }
            });
        }
    });
    (addr, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_still_sending_an_upload_is_not_lent_to_the_next_request() {
    let (backend, connections) = early_answering_backend().await;
    let routes = "\n[[listeners.routes]]\nname = \"all\"\npath_prefix = \"/\"\npool = \"{pool}\"\nresponse_timeout = \"3s\"\n";
    // One worker, or the next request could get a connection of its own anyway.
    let weir = Weir::start(
        &one_worker(&Weir::http_routes("round_robin", routes, "")),
        &[backend],
    )
    .await;
    // A client starts a large upload and stops sending; the backend answers
    // 401 before reading it.
    let mut uploader = TcpStream::connect(weir.addr).await.unwrap();
    uploader
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nfirst bytes",
        )
        .await
        .unwrap();
    let reply = read_response(&mut uploader, Duration::from_secs(10)).await;
    assert_eq!(reply.status, Some(401), "{}", reply.text);
    // The next request must not wait behind the unfinished upload.
    let r = get(weir.addr, "/next").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(connections.load(Ordering::SeqCst), 2, "a second connection");
    drop(uploader);
    weir.stop().await;
}

/// A burst of requests meeting an HTTP/2 pool with no connection yet opens
/// one connection per worker, which they all share — not one per request in
/// flight (each would be kept only until the next replaced it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_to_a_cold_http2_backend_opens_one_connection() {
    let backend = FakeHttp::start("b0").await;
    let weir = Weir::start(
        &one_worker(&Weir::http("round_robin", "", "http_version = \"h2c\"")),
        &[backend.addr],
    )
    .await;
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..32 {
        let addr = weir.addr;
        burst.spawn(async move { try_send(addr, req("GET", &format!("/cold/{i}"))).await });
    }
    while let Some(reply) = burst.join_next().await {
        let reply = reply.unwrap().expect("request through weir");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.echo().version(), "HTTP/2.0");
    }
    assert_eq!(backend.requests(), 32);
    assert_eq!(backend.connections(), 1, "one shared HTTP/2 connection");
    weir.stop().await;
}
