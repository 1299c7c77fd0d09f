//! A fake identity provider: serves a JWKS document that the test can swap,
//! counts the fetches, and can be stopped and started again on its port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The JWKS server.
pub struct Idp {
    pub addr: SocketAddr,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
    task: Option<JoinHandle<()>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Idp {
    /// Serves `jwks` on an ephemeral loopback port.
    pub async fn start(jwks: &str) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut idp = Idp {
            addr: listener.local_addr().unwrap(),
            body: Arc::new(Mutex::new(jwks.to_owned())),
            hits: Arc::new(AtomicUsize::new(0)),
            task: None,
            tls: None,
        };
        idp.serve(listener);
        idp
    }

    /// Serves `jwks` over TLS with `config` on an ephemeral loopback port.
    pub async fn start_tls(jwks: &str, config: Arc<rustls::ServerConfig>) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut idp = Idp {
            addr: listener.local_addr().unwrap(),
            body: Arc::new(Mutex::new(jwks.to_owned())),
            hits: Arc::new(AtomicUsize::new(0)),
            task: None,
            tls: Some(tokio_rustls::TlsAcceptor::from(config)),
        };
        idp.serve(listener);
        idp
    }

    /// Not serving yet: `addr` is a free port weir can be pointed at.
    pub fn down_at_free_port(jwks: &str) -> Idp {
        let port = crate::support::peers::free_port();
        Idp {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            body: Arc::new(Mutex::new(jwks.to_owned())),
            hits: Arc::new(AtomicUsize::new(0)),
            task: None,
            tls: None,
        }
    }

    fn serve(&mut self, listener: TcpListener) {
        let body = Arc::clone(&self.body);
        let hits = Arc::clone(&self.hits);
        let tls = self.tls.clone();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let body = Arc::clone(&body);
                let hits = Arc::clone(&hits);
                let service =
                    hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let text = body.lock().unwrap().clone();
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(text)))
                                    .unwrap(),
                            )
                        }
                    });
                let tls = tls.clone();
                conns.spawn(async move {
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        }));
    }

    /// The JWKS URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/.well-known/jwks.json", self.addr)
    }

    /// Serves `jwks` from now on.
    pub fn set(&self, jwks: &str) {
        *self.body.lock().unwrap() = jwks.to_owned();
    }

    /// JWKS requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops serving (the port is closed, open connections dropped).
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Serves again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}
