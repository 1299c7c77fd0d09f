//! The floor under weir's gateway: the leanest reverse proxy hyper allows,
//! measured beside weir by `benches/compare/http.sh` (row "hyper floor").
//!
//! It forwards every request, unchanged, to one backend over kept-alive
//! HTTP/1.1 connections, with the same building blocks weir's gateway uses
//! (hyper-util's auto server for HTTP/1.1 and h2c on one port, hyper's
//! connection-level HTTP/1.1 client, a per-thread stack of idle backend
//! connections, one current-thread runtime per worker thread on a
//! `SO_REUSEPORT` listener) and nothing else: no routing, no header work,
//! no limits, metrics, timeouts, retries or logs. Whatever CPU it spends
//! per request, a proxy built on hyper cannot spend less; the benchmark
//! shows how much of weir's cost is hyper's and how much is weir's own.
//!
//! Not a proxy to deploy: it has none of the protections weir has.
//!
//! ```text
//! cargo run --release -p weir-l7 --example bare_hyper_proxy -- LISTEN BACKEND THREADS
//! ```

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpSocket, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Sender = SendRequest<Incoming>;

thread_local! {
    /// This worker's idle backend connections.
    static IDLE: RefCell<Vec<Sender>> = const { RefCell::new(Vec::new()) };
}

/// A response body that hands its backend connection back to the idle
/// stack once it has been read to the end.
struct Returning {
    inner: Incoming,
    sender: Option<Sender>,
}

impl Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || self.inner.is_end_stream() {
            if let Some(sender) = self.sender.take() {
                IDLE.with(|idle| idle.borrow_mut().push(sender));
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

async fn connect(backend: SocketAddr) -> Result<Sender, Error> {
    let stream = TcpStream::connect(backend).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn forward(
    mut request: Request<Incoming>,
    backend: SocketAddr,
) -> Result<Response<BoxBody<Bytes, hyper::Error>>, Infallible> {
    if request.version() == http::Version::HTTP_2 {
        // The least an HTTP/2 request needs to go out as HTTP/1.1: its
        // authority as Host, its target in origin form.
        let uri = request.uri().clone();
        if let Some(host) = uri
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
        {
            request.headers_mut().insert(http::header::HOST, host);
        }
        if let Some(path) = uri.path_and_query() {
            *request.uri_mut() = http::Uri::from(path.clone());
        }
        *request.version_mut() = http::Version::HTTP_11;
    }
    let pooled = IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    });
    let mut sender = match pooled {
        Some(sender) => sender,
        None => match connect(backend).await {
            Ok(sender) => sender,
            Err(_) => return Ok(bad_gateway()),
        },
    };
    if sender.ready().await.is_err() {
        return Ok(bad_gateway());
    }
    match sender.send_request(request).await {
        Ok(response) => Ok(response.map(|inner| {
            Returning {
                inner,
                sender: Some(sender),
            }
            .boxed()
        })),
        Err(_) => Ok(bad_gateway()),
    }
}

fn bad_gateway() -> Response<BoxBody<Bytes, hyper::Error>> {
    let mut response = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

async fn serve(listen: SocketAddr, backend: SocketAddr) -> Result<(), Error> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    let listener = socket.listen(1024)?;
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| forward(request, backend));
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, backend, threads] = args.as_slice() else {
        return Err("usage: bare_hyper_proxy LISTEN BACKEND THREADS".into());
    };
    let (listen, backend): (SocketAddr, SocketAddr) = (listen.parse()?, backend.parse()?);
    let threads: usize = threads.parse()?;
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || -> Result<(), String> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime
                    .block_on(serve(listen, backend))
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    for worker in workers {
        worker.join().map_err(|_| "worker panicked")??;
    }
    Ok(())
}
