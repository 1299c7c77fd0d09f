//! Trailers over HTTP/1.1: a client that sends `TE: trailers` gets the
//! trailer fields an HTTP/1.1 backend declares in `Trailer` and sends after
//! its chunked body; a client that did not ask gets the body without them.
//! (HTTP/2 and gRPC trailers are in `http_h2.rs`.)

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::support::Weir;

/// A body of fixed frames.
struct Frames(VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

/// An HTTP/1.1 backend answering `hello` chunked, with `Trailer:
/// x-checksum` and the trailer `x-checksum: abc`; it records the `TE` each
/// request arrived with.
async fn trailer_backend() -> (
    std::net::SocketAddr,
    Arc<Mutex<Vec<String>>>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let te = req
                        .headers()
                        .get("te")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    record.lock().unwrap().push(te);
                    let mut trailers = HeaderMap::new();
                    trailers.insert("x-checksum", "abc".parse().unwrap());
                    let body = Frames(VecDeque::from([
                        Frame::data(Bytes::from_static(b"hello")),
                        Frame::trailers(trailers),
                    ]));
                    let mut resp = Response::new(body);
                    resp.headers_mut()
                        .insert("trailer", "x-checksum".parse().unwrap());
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen, connections)
}

/// One HTTP/1.1 GET to weir, with `te` if given: the body and trailers.
async fn get_with_te(weir: std::net::SocketAddr, te: Option<&str>) -> (Bytes, Option<HeaderMap>) {
    let stream = TcpStream::connect(weir).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder().uri("/t").header("host", "trailers.test");
    if let Some(te) = te {
        req = req.header("te", te);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (collected.to_bytes(), trailers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_trailers_reach_a_client_that_accepts_them() {
    let (backend, seen, connections) = trailer_backend().await;
    // One worker: both client connections then share its backend connections.
    let weir = Weir::start(
        &Weir::workers(1, &Weir::http("round_robin", "", "")),
        &[backend],
    )
    .await;

    let (body, trailers) = get_with_te(weir.addr, Some("trailers")).await;
    assert_eq!(body, "hello");
    let trailers = trailers.expect("the trailer section arrived");
    assert_eq!(trailers.get("x-checksum").unwrap(), "abc");

    let (body, trailers) = get_with_te(weir.addr, None).await;
    assert_eq!(body, "hello", "the body is whole without trailers");
    assert!(
        trailers.is_none(),
        "no trailers for a client that did not ask"
    );

    assert_eq!(
        *seen.lock().unwrap(),
        ["trailers", ""],
        "the backend is told the client accepts trailers, and only then"
    );
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a response with trailers is complete: its connection is reused"
    );
    weir.stop().await;
}
