//! HTTP/2 to backends (`http_version = "h2c"`) and gRPC through the gateway:
//! status, streamed bodies and trailers pass both ways, frame by frame.
//!
//! The backend here is a hyper HTTP/2-only server (it cannot speak HTTP/1.1
//! at all, and records the version of every request it sees); the client is
//! a hyper HTTP/2 client with prior knowledge, reading the response frame by
//! frame so trailers and streaming can be checked.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use crate::support::Weir;
use crate::support::fake_http::{req, send};

/// Bound on any one step of a test.
const BOUND: Duration = Duration::from_secs(10);

/// A body made of the frames sent on a channel; it ends when the sender is
/// dropped.
struct FrameBody(mpsc::Receiver<Frame<Bytes>>);

impl Body for FrameBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

/// A body of these frames, in order.
fn frames(list: Vec<Frame<Bytes>>) -> FrameBody {
    let (tx, rx) = mpsc::channel(list.len().max(1));
    for f in list {
        tx.try_send(f).unwrap();
    }
    FrameBody(rx)
}

fn trailers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.insert(*n, HeaderValue::from_str(v).unwrap());
    }
    h
}

// ------------------------------------------------------------- backend

/// What the backend saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    version: Version,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

struct BackendCtx {
    seen: Mutex<Vec<Seen>>,
    /// Opened by the test to let `/grpc.Echo/Stream` send its second frame.
    gate: Notify,
    second_sent: AtomicBool,
    connections: AtomicUsize,
}

/// An HTTP/2-only (h2c) gRPC-style backend. By path:
///
/// | path | answer |
/// |---|---|
/// | `/grpc.Echo/Unary` | 200 `application/grpc`, [`UNARY_FRAMES`] as DATA frames, trailers `grpc-status: 0`, `grpc-message: ok` |
/// | `/grpc.Echo/Fail` | 200 `application/grpc`, one frame, trailers `grpc-status: 14`, `grpc-message: backend unavailable` |
/// | `/grpc.Echo/Stream` | frame `first`; then, once the test opens the gate, frame `second` and `grpc-status: 0` |
/// | anything else | 200 `text/plain`: `h2 backend saw {version:?} {path}` |
struct GrpcBackend {
    addr: SocketAddr,
    ctx: Arc<BackendCtx>,
    task: JoinHandle<()>,
}

/// The DATA frames of `/grpc.Echo/Unary`: one larger than HTTP/2's initial
/// flow-control window, so flow control is exercised too.
fn unary_frames() -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"\x00\x00\x00\x00\x05hello"),
        Bytes::from(vec![b'g'; 70_000]),
        Bytes::from_static(b"\x00\x00\x00\x00\x03end"),
    ]
}

impl GrpcBackend {
    async fn start() -> GrpcBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ctx = Arc::new(BackendCtx {
            seen: Mutex::new(Vec::new()),
            gate: Notify::new(),
            second_sent: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
        });
        let shared = Arc::clone(&ctx);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        shared.connections.fetch_add(1, Ordering::SeqCst);
                        conns.spawn(serve_h2(stream, Arc::clone(&shared)));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        GrpcBackend { addr, ctx, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.ctx.seen.lock().unwrap().clone()
    }
}

impl Drop for GrpcBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_h2(stream: TcpStream, ctx: Arc<BackendCtx>) {
    let service = hyper::service::service_fn(move |req| {
        let ctx = Arc::clone(&ctx);
        async move { Ok::<_, Infallible>(answer(ctx, req).await) }
    });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn answer(ctx: Arc<BackendCtx>, req: Request<Incoming>) -> Response<FrameBody> {
    let (parts, body) = req.into_parts();
    let (body, request_trailers) = match body.collect().await {
        Ok(c) => {
            let t = c.trailers().cloned();
            (c.to_bytes(), t)
        }
        Err(_) => (Bytes::new(), None),
    };
    let path = parts.uri.path().to_owned();
    ctx.seen.lock().unwrap().push(Seen {
        version: parts.version,
        path: path.clone(),
        headers: parts.headers.clone(),
        body,
        trailers: request_trailers,
    });
    let grpc = |body: FrameBody| {
        let mut resp = Response::new(body);
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        resp
    };
    match path.as_str() {
        "/grpc.Echo/Unary" => {
            let mut list: Vec<Frame<Bytes>> = unary_frames().into_iter().map(Frame::data).collect();
            list.push(Frame::trailers(trailers(&[
                ("grpc-status", "0"),
                ("grpc-message", "ok"),
            ])));
            grpc(frames(list))
        }
        "/grpc.Echo/Fail" => grpc(frames(vec![
            Frame::data(Bytes::from_static(b"\x00\x00\x00\x00\x00")),
            Frame::trailers(trailers(&[
                ("grpc-status", "14"),
                ("grpc-message", "backend unavailable"),
            ])),
        ])),
        "/grpc.Echo/Stream" => {
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                let _ = tx.send(Frame::data(Bytes::from_static(b"first"))).await;
                // Held until the client has the first frame: if the gateway
                // buffered, the client never gets it and the test times out.
                if tokio::time::timeout(BOUND, ctx.gate.notified())
                    .await
                    .is_err()
                {
                    let _ = tx
                        .send(Frame::trailers(trailers(&[("grpc-status", "4")])))
                        .await;
                    return;
                }
                ctx.second_sent.store(true, Ordering::SeqCst);
                let _ = tx.send(Frame::data(Bytes::from_static(b"second"))).await;
                let _ = tx
                    .send(Frame::trailers(trailers(&[("grpc-status", "0")])))
                    .await;
            });
            grpc(FrameBody(rx))
        }
        _ => {
            let text = format!("h2 backend saw {:?} {path}", parts.version);
            let mut resp = Response::new(frames(vec![Frame::data(Bytes::from(text))]));
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/plain"));
            resp
        }
    }
}

// -------------------------------------------------------------- client

/// An HTTP/2 prior-knowledge client connection to weir.
struct H2Client {
    sender: hyper::client::conn::http2::SendRequest<FrameBody>,
    conn: JoinHandle<()>,
}

impl H2Client {
    async fn connect(addr: SocketAddr) -> H2Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        H2Client { sender, conn }
    }

    /// Sends a gRPC-style POST to `path` (`te: trailers`) with `body`, and
    /// returns the response head (bounded).
    async fn call(&self, path: &str, body: FrameBody) -> Response<Incoming> {
        let req = Request::builder()
            .method("POST")
            .uri(format!("http://test.local{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(body)
            .unwrap();
        let mut sender = self.sender.clone();
        tokio::time::timeout(BOUND, async {
            sender.ready().await.unwrap();
            sender.send_request(req).await.unwrap()
        })
        .await
        .expect("response head within the bound")
    }
}

impl Drop for H2Client {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// A response body read frame by frame to its end.
#[derive(Debug, Default)]
struct Read {
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
}

/// The next frame of `body` (bounded); `None` at the end.
async fn next_frame(body: &mut Incoming) -> Option<Frame<Bytes>> {
    tokio::time::timeout(BOUND, body.frame())
        .await
        .expect("a frame within the bound")
        .map(|f| f.expect("the body does not fail"))
}

async fn read_to_end(body: &mut Incoming) -> Read {
    let mut read = Read::default();
    // Bounded: a body is at most a few hundred frames here.
    for _ in 0..10_000 {
        let Some(frame) = next_frame(body).await else {
            return read;
        };
        match frame.into_data() {
            Ok(data) => read.data.extend_from_slice(&data),
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    assert!(read.trailers.is_none(), "one trailer section");
                    read.trailers = Some(t);
                }
            }
        }
    }
    panic!("body did not end");
}

fn h2c_config() -> String {
    Weir::http("round_robin", "", "http_version = \"h2c\"")
}

// --------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unary_passes_status_body_and_trailers() {
    let backend = GrpcBackend::start().await;
    let weir = Weir::start(&h2c_config(), &[backend.addr]).await;
    let client = H2Client::connect(weir.addr).await;
    let resp = client
        .call(
            "/grpc.Echo/Unary",
            frames(vec![Frame::data(Bytes::from_static(
                b"\x00\x00\x00\x00\x02hi",
            ))]),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    let mut body = resp.into_body();
    let read = read_to_end(&mut body).await;
    assert_eq!(read.data, unary_frames().concat(), "every body byte");
    let t = read.trailers.expect("trailers reach the client");
    assert_eq!(t["grpc-status"], "0");
    assert_eq!(t["grpc-message"], "ok");

    let seen = backend.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(
        s.version,
        Version::HTTP_2,
        "weir speaks HTTP/2 to an h2c pool"
    );
    assert_eq!(s.path, "/grpc.Echo/Unary");
    assert_eq!(&s.body[..], b"\x00\x00\x00\x00\x02hi");
    assert_eq!(s.headers["te"], "trailers", "gRPC needs te: trailers");
    assert_eq!(s.headers["content-type"], "application/grpc");
    assert_eq!(s.headers["x-forwarded-host"], "test.local");
    assert!(
        !s.headers.contains_key("host"),
        "no Host besides :authority: {:?}",
        s.headers
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_trailers_reach_the_backend() {
    let backend = GrpcBackend::start().await;
    let weir = Weir::start(&h2c_config(), &[backend.addr]).await;
    let client = H2Client::connect(weir.addr).await;
    let resp = client
        .call(
            "/grpc.Echo/Unary",
            frames(vec![
                Frame::data(Bytes::from_static(b"part one,")),
                Frame::data(Bytes::from_static(b"part two")),
                Frame::trailers(trailers(&[
                    ("x-client-checksum", "abc123"),
                    ("grpc-status", "0"),
                ])),
            ]),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let read = read_to_end(&mut resp.into_body()).await;
    assert_eq!(read.data, unary_frames().concat());
    let seen = backend.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(&seen[0].body[..], b"part one,part two");
    let t = seen[0]
        .trailers
        .as_ref()
        .expect("the client's trailers reach the backend");
    assert_eq!(t["x-client-checksum"], "abc123");
    assert_eq!(t["grpc-status"], "0");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_response_arrives_frame_by_frame() {
    let backend = GrpcBackend::start().await;
    let weir = Weir::start(&h2c_config(), &[backend.addr]).await;
    let client = H2Client::connect(weir.addr).await;
    let resp = client.call("/grpc.Echo/Stream", frames(vec![])).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // The backend holds its second frame until the first has come through:
    // a gateway that buffered the body would never deliver this one.
    let first = next_frame(&mut body).await.expect("a first frame");
    assert_eq!(first.data_ref().map(|d| &d[..]), Some(&b"first"[..]));
    assert!(
        !backend.ctx.second_sent.load(Ordering::SeqCst),
        "the first frame arrived before the second was sent"
    );
    backend.ctx.gate.notify_one();
    let rest = read_to_end(&mut body).await;
    assert_eq!(rest.data, b"second");
    assert_eq!(rest.trailers.expect("trailers")["grpc-status"], "0");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_error_status_in_trailers_passes_through() {
    let backend = GrpcBackend::start().await;
    let weir = Weir::start(&h2c_config(), &[backend.addr]).await;
    let client = H2Client::connect(weir.addr).await;
    let resp = client.call("/grpc.Echo/Fail", frames(vec![])).await;
    assert_eq!(resp.status(), 200, "gRPC errors travel in trailers");
    let read = read_to_end(&mut resp.into_body()).await;
    assert_eq!(read.data, b"\x00\x00\x00\x00\x00");
    let t = read.trailers.expect("trailers");
    assert_eq!(t["grpc-status"], "14");
    assert_eq!(t["grpc-message"], "backend unavailable");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_client_reaches_an_h2c_backend() {
    let backend = GrpcBackend::start().await;
    let weir = Weir::start(&h2c_config(), &[backend.addr]).await;
    for i in 0..3 {
        let r = send(weir.addr, req("GET", &format!("/plain/{i}?q=1"))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.version,
            Version::HTTP_11,
            "answered in the client's version"
        );
        assert_eq!(r.text(), format!("h2 backend saw HTTP/2.0 /plain/{i}"));
    }
    let seen = backend.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.version == Version::HTTP_2));
    assert!(
        seen.iter().all(|s| !s.headers.contains_key("te")),
        "no te from a client that sent none"
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_version_decides_what_weir_speaks_to_the_backend() {
    let backend = GrpcBackend::start().await;
    // The default, HTTP/1.1, cannot talk to an HTTP/2-only backend: the
    // backend refuses the HTTP/1.1 bytes (502), or, on a loaded machine, may
    // not have closed before the route's response timeout (504).
    let route = "[[listeners.routes]]\npath_prefix = \"/\"\npool = \"{pool}\"\nresponse_timeout = \"2s\"\nretries = 0";
    let http1 = Weir::start(
        &Weir::http_routes("round_robin", route, ""),
        &[backend.addr],
    )
    .await;
    let r = send(http1.addr, req("GET", "/plain")).await;
    assert!(
        r.status == 502 || r.status == 504,
        "{} {}",
        r.status,
        r.text()
    );
    assert!(backend.seen().is_empty());
    http1.stop().await;
    // ...and "h2c" does, over one pooled connection.
    let before = backend.ctx.connections.load(Ordering::SeqCst);
    let h2c = Weir::start(&h2c_config(), &[backend.addr]).await;
    let client = H2Client::connect(h2c.addr).await;
    for _ in 0..3 {
        let resp = client.call("/grpc.Echo/Unary", frames(vec![])).await;
        assert_eq!(resp.status(), 200);
        let read = read_to_end(&mut resp.into_body()).await;
        assert_eq!(read.trailers.expect("trailers")["grpc-status"], "0");
    }
    let seen = backend.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.version == Version::HTTP_2));
    assert_eq!(
        backend.ctx.connections.load(Ordering::SeqCst) - before,
        1,
        "the h2c connection is kept and reused"
    );
    h2c.stop().await;
}
