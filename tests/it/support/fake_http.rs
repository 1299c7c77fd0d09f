//! Fake HTTP backends (hyper, HTTP/1.1 and h2c on one port) that answer with
//! their id and the request they saw, and a small HTTP client for tests.
//!
//! Every answer is a JSON object:
//! `{"id", "method", "path" (path and query as received), "version",
//! "headers": [[name, value], …], "body_bytes"}`. What the backend does is
//! chosen by a behaviour spec: the `x-fake` request header, else the spec
//! the backend was started with ([`FakeHttp::always`]), else the path. A
//! spec names a behaviour anywhere among its path segments, so a route's
//! prefix does not get in the way (`/api/status/503` works):
//!
//! | spec | answer |
//! |---|---|
//! | `status/NNN` | the echo with status NNN |
//! | `slow/DUR` (`500ms`, `2s`) | the echo after DUR |
//! | `die-after-headers` | headers with `content-length: 1000`, 100 bytes, then the connection is closed |
//! | `stall-body/DUR` | headers with `content-length: 1000`, 100 bytes, the other 900 after DUR |
//! | `big/N` | N bytes of `x` |
//! | `hop-response` | the echo, plus hop-by-hop response headers (`connection: x-resp-hop`, `x-resp-hop`, `keep-alive`, `proxy-authenticate`) |
//! | anything else | the echo, 200 |
//!
//! Every answer also carries `x-backend-id: {id}` and `server: fake-http`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

type FakeBody = BoxBody<Bytes, std::io::Error>;

/// What a fake HTTP backend has seen.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests whose head arrived (counted before the body is read).
    pub requests: AtomicUsize,
    /// Requests whose body was read to its end.
    pub completed: AtomicUsize,
    /// Requests being handled now.
    pub in_flight: AtomicUsize,
    /// The most requests handled at once.
    pub max_in_flight: AtomicUsize,
    /// TCP connections accepted.
    pub connections: AtomicUsize,
    /// TLS handshakes that failed (TLS backends).
    pub tls_failures: AtomicUsize,
    /// `METHOD path` of every request, in order of arrival.
    pub seen: Mutex<Vec<String>>,
}

/// A running fake HTTP backend.
pub struct FakeHttp {
    /// Its address.
    pub addr: SocketAddr,
    /// Its id (in every answer's JSON and `x-backend-id`).
    pub id: String,
    /// Its counters.
    pub stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl FakeHttp {
    /// A backend on an ephemeral loopback port whose behaviour follows
    /// each request's path (or `x-fake` header).
    pub async fn start(id: &str) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, id, None, None)
    }

    /// A backend like [`FakeHttp::start`] that speaks TLS with `config`
    /// (HTTP/1.1 or HTTP/2 as ALPN chose).
    pub async fn start_tls(id: &str, config: Arc<rustls::ServerConfig>) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(
            listener,
            id,
            None,
            Some(tokio_rustls::TlsAcceptor::from(config)),
        )
    }

    /// A backend that applies `spec` (e.g. `"status/503"`) to every request
    /// without an `x-fake` header, whatever the path.
    pub async fn always(id: &str, spec: &str) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, id, Some(spec.to_owned()), None)
    }

    /// A backend on a given (previously used) address. A stopped backend's
    /// listener closes when its aborted task is dropped, a moment later:
    /// the bind is retried until then (bounded).
    pub async fn start_at(addr: SocketAddr, id: &str) -> FakeHttp {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("cannot bind {addr} again: {e}"),
            }
        };
        Self::serve(listener, id, None, None)
    }

    fn serve(
        listener: TcpListener,
        id: &str,
        fixed: Option<String>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> FakeHttp {
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let ctx = Arc::new(Ctx {
            id: id.to_owned(),
            fixed,
            stats: Arc::clone(&stats),
        });
        let task = tokio::spawn(async move {
            // Connections live in this set: stopping the backend ends them too.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        ctx.stats.connections.fetch_add(1, Ordering::SeqCst);
                        let ctx = Arc::clone(&ctx);
                        match tls.clone() {
                            None => conns.spawn(serve_conn(stream, ctx)),
                            Some(acceptor) => conns.spawn(async move {
                                match acceptor.accept(stream).await {
                                    Ok(tls) => serve_conn(tls, ctx).await,
                                    Err(_) => {
                                        ctx.stats.tls_failures.fetch_add(1, Ordering::SeqCst);
                                    }
                                }
                            }),
                        };
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        FakeHttp {
            addr,
            id: id.to_owned(),
            stats,
            task,
        }
    }

    /// Requests whose head arrived.
    pub fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }

    /// Requests whose body was read to its end.
    pub fn completed(&self) -> usize {
        self.stats.completed.load(Ordering::SeqCst)
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> usize {
        self.stats.in_flight.load(Ordering::SeqCst)
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// `METHOD path` of every request so far.
    pub fn seen(&self) -> Vec<String> {
        self.stats.seen.lock().unwrap().clone()
    }

    /// Stops: the port is closed and open connections are dropped.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Ctx {
    id: String,
    fixed: Option<String>,
    stats: Arc<Stats>,
}

async fn serve_conn<S>(stream: S, ctx: Arc<Ctx>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let ctx = Arc::clone(&ctx);
        async move { Ok::<_, Infallible>(answer(&ctx, req).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Decrements the in-flight count when the request is done.
struct InFlight(Arc<Stats>);

impl InFlight {
    fn new(stats: &Arc<Stats>) -> InFlight {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(Arc::clone(stats))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

enum Behaviour {
    Echo(StatusCode),
    Slow(Duration),
    DieAfterHeaders,
    StallBody(Duration),
    Big(usize),
    HopResponse,
}

fn parse_duration(s: &str) -> Option<Duration> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    s.strip_suffix('s')?.parse().ok().map(Duration::from_secs)
}

/// The behaviour a spec (a path, or `status/503`) names.
fn behaviour(spec: &str) -> Behaviour {
    let path = spec.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, seg) in segments.iter().enumerate() {
        let next = segments.get(i + 1).copied().unwrap_or_default();
        match *seg {
            "status" => {
                if let Some(code) = next.parse().ok().and_then(|c| StatusCode::from_u16(c).ok()) {
                    return Behaviour::Echo(code);
                }
            }
            "slow" => {
                if let Some(d) = parse_duration(next) {
                    return Behaviour::Slow(d);
                }
            }
            "big" => {
                if let Ok(n) = next.parse() {
                    return Behaviour::Big(n);
                }
            }
            "die-after-headers" => return Behaviour::DieAfterHeaders,
            "stall-body" => {
                if let Some(d) = parse_duration(next) {
                    return Behaviour::StallBody(d);
                }
            }
            "hop-response" => return Behaviour::HopResponse,
            _ => {}
        }
    }
    Behaviour::Echo(StatusCode::OK)
}

async fn answer(ctx: &Ctx, req: Request<Incoming>) -> Response<FakeBody> {
    let stats = &ctx.stats;
    stats.requests.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight::new(stats);
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    stats
        .seen
        .lock()
        .unwrap()
        .push(format!("{} {path}", parts.method));
    let body_bytes = match body.collect().await {
        Ok(b) => b.to_bytes().len(),
        Err(_) => {
            // The body was cut off: this request never completed.
            return with_id(
                ctx,
                Response::new(full("body cut off")),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    stats.completed.fetch_add(1, Ordering::SeqCst);
    let spec = parts
        .headers
        .get("x-fake")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| ctx.fixed.clone())
        .unwrap_or_else(|| path.clone());
    let echo = || {
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        serde_json::json!({
            "id": ctx.id,
            "method": parts.method.as_str(),
            "path": path,
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body_bytes": body_bytes,
        })
        .to_string()
    };
    match behaviour(&spec) {
        Behaviour::Echo(status) => with_id(ctx, Response::new(full(echo())), status),
        Behaviour::Slow(d) => {
            tokio::time::sleep(d).await;
            with_id(ctx, Response::new(full(echo())), StatusCode::OK)
        }
        Behaviour::Big(n) => with_id(ctx, Response::new(full(vec![b'x'; n])), StatusCode::OK),
        Behaviour::DieAfterHeaders => paused(ctx, Duration::from_millis(50), Then::Fail),
        Behaviour::StallBody(pause) => paused(ctx, pause, Then::Rest),
        Behaviour::HopResponse => {
            let mut resp = Response::new(full(echo()));
            let h = resp.headers_mut();
            h.insert("connection", HeaderValue::from_static("x-resp-hop"));
            h.insert("x-resp-hop", HeaderValue::from_static("secret"));
            h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            h.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
            with_id(ctx, resp, StatusCode::OK)
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> FakeBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn with_id(ctx: &Ctx, mut resp: Response<FakeBody>, status: StatusCode) -> Response<FakeBody> {
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ctx.id) {
        h.insert("x-backend-id", v);
    }
    h.insert("server", HeaderValue::from_static("fake-http"));
    h.insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

/// A 1000-byte answer whose body pauses after 100 bytes.
fn paused(ctx: &Ctx, pause: Duration, then: Then) -> Response<FakeBody> {
    let body = PausedBody {
        sent: false,
        pause: Box::pin(tokio::time::sleep(pause)),
        then,
    };
    let mut resp = Response::new(body.boxed());
    resp.headers_mut()
        .insert("content-length", HeaderValue::from_static("1000"));
    with_id(ctx, resp, StatusCode::OK)
}

/// What a [`PausedBody`] does after its pause.
enum Then {
    /// Fails: hyper closes the connection mid-body.
    Fail,
    /// Sends the other 900 bytes.
    Rest,
    /// Has sent them: the end.
    Done,
}

/// A body that sends 100 bytes, pauses (so hyper flushes the head and those
/// bytes), then does what `then` says.
struct PausedBody {
    sent: bool,
    pause: Pin<Box<tokio::time::Sleep>>,
    then: Then,
}

impl Body for PausedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if !self.sent {
            self.sent = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'y'; 100])))));
        }
        if self.pause.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        match self.then {
            Then::Fail => Poll::Ready(Some(Err(std::io::Error::other(
                "fake backend dies mid-body",
            )))),
            Then::Rest => {
                self.then = Then::Done;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'y'; 900])))))
            }
            Then::Done => Poll::Ready(None),
        }
    }
}

// ---------------------------------------------------------------- client

/// How long any test request may take before the test fails.
pub const REQUEST_BOUND: Duration = Duration::from_secs(10);

/// A response read to its end.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Protocol version of the response.
    pub version: Version,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// The first value of a response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a response header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// The fake backend's echo in the body.
    pub fn echo(&self) -> Echo {
        Echo(self.json())
    }
}

/// A fake backend's description of the request it saw.
#[derive(Debug, Clone)]
pub struct Echo(pub serde_json::Value);

impl Echo {
    /// The backend's id.
    pub fn id(&self) -> &str {
        self.0["id"].as_str().unwrap_or_default()
    }

    /// The method it saw.
    pub fn method(&self) -> &str {
        self.0["method"].as_str().unwrap_or_default()
    }

    /// The path and query it saw.
    pub fn path(&self) -> &str {
        self.0["path"].as_str().unwrap_or_default()
    }

    /// The HTTP version it saw (`HTTP/1.1`).
    pub fn version(&self) -> &str {
        self.0["version"].as_str().unwrap_or_default()
    }

    /// The body length it read.
    pub fn body_bytes(&self) -> u64 {
        self.0["body_bytes"].as_u64().unwrap_or_default()
    }

    /// Every value of a header it saw (names are lowercase).
    pub fn header_all(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        self.0["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|pair| pair[0].as_str() == Some(name.as_str()))
            .filter_map(|pair| pair[1].as_str().map(str::to_owned))
            .collect()
    }

    /// The first value of a header it saw.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_all(name).into_iter().next()
    }
}

/// A request body the client helpers send.
pub type ClientBody = BoxBody<Bytes, Infallible>;

/// A request with `Host: test.local` and an empty body.
pub fn req(method: &str, path: &str) -> Request<ClientBody> {
    req_with(method, path, &[("host", "test.local")], "")
}

/// A request with the given headers (give `host` yourself) and body.
pub fn req_with(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<ClientBody> {
    let mut r = Request::builder().method(method).uri(path);
    for (n, v) in headers {
        r = r.header(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    r.body(Full::new(Bytes::from(body.to_owned())).boxed())
        .unwrap()
}

/// Sends one request over a fresh HTTP/1.1 connection and reads the whole
/// response; an error if the connection or the body fails (bounded).
pub async fn try_send(addr: SocketAddr, req: Request<ClientBody>) -> Result<Reply, String> {
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let conn = tokio::spawn(conn);
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let reply = read_reply(resp).await;
        conn.abort();
        reply
    };
    tokio::time::timeout(REQUEST_BOUND, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer within {REQUEST_BOUND:?}"))
}

/// Like [`try_send`], failing the test on a connection or body error.
pub async fn send(addr: SocketAddr, req: Request<ClientBody>) -> Reply {
    match try_send(addr, req).await {
        Ok(r) => r,
        Err(e) => panic!("request through {addr} failed: {e}"),
    }
}

/// GET `path` with `Host: test.local`.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, req("GET", path)).await
}

/// Reads a response to its end.
pub async fn read_reply(resp: Response<Incoming>) -> Result<Reply, String> {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

/// An HTTP/2 (prior knowledge, cleartext) connection.
pub struct H2 {
    sender: hyper::client::conn::http2::SendRequest<ClientBody>,
    conn: JoinHandle<()>,
}

impl H2 {
    /// Connects and does the HTTP/2 handshake.
    pub async fn connect(addr: SocketAddr) -> H2 {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        H2 { sender, conn }
    }

    /// Sends a request on a new stream (use an absolute URI:
    /// `http://test.local/path`) and reads the whole response (bounded).
    pub async fn try_send(&self, req: Request<ClientBody>) -> Result<Reply, String> {
        let mut sender = self.sender.clone();
        let exchange = async {
            sender.ready().await.map_err(|e| format!("ready: {e}"))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?;
            read_reply(resp).await
        };
        tokio::time::timeout(REQUEST_BOUND, exchange)
            .await
            .unwrap_or_else(|_| panic!("no h2 answer within {REQUEST_BOUND:?}"))
    }
}

impl Drop for H2 {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

// ------------------------------------------------------------- raw bytes

/// What came back for raw request bytes.
#[derive(Debug)]
pub struct RawReply {
    /// The status of the first response, if one came.
    pub status: Option<u16>,
    /// The first response (or everything read, if it never completed), as
    /// text (lossy).
    pub text: String,
    /// Bytes read after the first response (a pipelined next response).
    pub rest: Vec<u8>,
    /// The peer closed the connection (EOF or reset) while we read.
    pub closed: bool,
}

/// Writes `bytes` on a fresh connection and reads one response (see
/// [`read_response`]); returns the connection too, to check it afterwards.
pub async fn raw_exchange(
    addr: SocketAddr,
    bytes: &[u8],
    within: Duration,
) -> (TcpStream, RawReply) {
    use tokio::io::AsyncWriteExt;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The peer may close before every byte is written: that is an answer too.
    let _ = s.write_all(bytes).await;
    let reply = read_response(&mut s, within).await;
    (s, reply)
}

/// Reads one HTTP/1 response from `s`: its head, then a body framed by
/// `content-length`, `chunked` or the close; stops early at EOF, an error or
/// when `within` passes.
pub async fn read_response(s: &mut TcpStream, within: Duration) -> RawReply {
    read_response_after(s, Vec::new(), within).await
}

/// Like [`read_response`], starting from bytes already read (a previous
/// reply's `rest`).
pub async fn read_response_after(
    s: &mut TcpStream,
    mut out: Vec<u8>,
    within: Duration,
) -> RawReply {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + within;
    let mut closed = false;
    let length = loop {
        if let Some(n) = response_length(&out) {
            break n;
        }
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => break out.len(),
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break out.len();
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    };
    let rest = out.split_off(length);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|t| t.get(2..5))
        .and_then(|s| s.parse().ok());
    RawReply {
        status,
        text,
        rest,
        closed,
    }
}

/// The length of the first response in `bytes`, once it is whole (framed
/// by length or chunks; a body that runs to the close is never whole).
fn response_length(bytes: &[u8]) -> Option<usize> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    for line in head.lines() {
        if let Some(v) = line.strip_prefix("content-length:") {
            let n: usize = v.trim().parse().ok()?;
            return (bytes.len() >= end + n).then_some(end + n);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            let last = bytes[end..].windows(5).position(|w| w == b"0\r\n\r\n")?;
            return Some(end + last + 5);
        }
    }
    // 1xx, 204 and 304 have no body; anything else runs to the close.
    let status = head.get(9..12).unwrap_or_default();
    (status.starts_with('1') || status == "204" || status == "304").then_some(end)
}

/// True when the peer closes `s` (EOF or reset) within `within`, reading
/// and discarding anything else it sends.
pub async fn closes_within(s: &mut TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}
