//! A pool's connections to its backends, kept alive and reused.
//!
//! Built on hyper's connection-level client (`hyper::client::conn`) rather
//! than hyper-util's pooled client: the gateway already knows which backend
//! a request goes to, so the pool is a plain per-backend stack, with no
//! keyed map to hash into, no checkout future racing a connect, and no task
//! spawned per request to watch a connection become idle again.
//!
//! - **HTTP/1.1**: each backend keeps a stack of idle connections (most
//!   recently used first, at most [`MAX_IDLE`] per worker, closed after
//!   [`IDLE_TIMEOUT`] unused). A request takes one (or connects); the
//!   connection goes back when the response body has been read to its end
//!   and the request body sent whole ([`Lease::release`], called by the
//!   gateway), and is dropped otherwise. A pooled connection the backend
//!   closed meanwhile is skipped; a request hyper reports as never sent on
//!   it is sent again on the next one.
//! - **HTTP/2** (h2c, or h2 over TLS): one multiplexed connection per
//!   backend, shared by every request, replaced when it closes; one connect
//!   at a time, whose outcome the requests waiting for it share.
//!
//! Every connection's I/O runs in a task of its own (hyper's design); the
//! request hands over to it through hyper's dispatch channel.
//!
//! Both are kept **per worker thread** (`weir_common::workers`): a request
//! uses only connections its own worker made, so a connection's task and
//! the requests it serves share one thread, as in NGINX's per-worker
//! keep-alive pools. A backend therefore sees up to one HTTP/2 connection,
//! and one set of idle HTTP/1.1 connections, per worker.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::time::Instant;

use crate::body::ProxyBody;
use crate::connector::{ConnectFailure, Stream, TlsSide, connect};

/// Most idle HTTP/1.1 connections kept per backend by each worker thread.
pub const MAX_IDLE: usize = 512;

/// An idle HTTP/1.1 connection unused this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request to a backend failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made.
    #[error("{0}")]
    Connect(ConnectFailure),
    /// The connection failed during the exchange.
    #[error("{0}")]
    Request(hyper::Error),
}

type Sender1 = http1::SendRequest<ProxyBody>;
type Sender2 = http2::SendRequest<ProxyBody>;

/// One backend's connections.
#[derive(Default)]
struct Conns {
    /// Idle HTTP/1.1 connections, oldest first.
    idle: Mutex<VecDeque<(Sender1, Instant)>>,
    /// The shared HTTP/2 connection.
    h2: Mutex<Option<Sender2>>,
    /// Held while an HTTP/2 connection is being made (one at a time); when
    /// the last attempt failed, when and why.
    h2_connect: tokio::sync::Mutex<Option<(Instant, ConnectFailure)>>,
}

/// The connections of one pool, by backend index (configuration order)
/// and worker.
pub struct Upstream {
    http2: bool,
    tls: Option<TlsSide>,
    workers: usize,
    /// Backend `i`'s connections made on worker `w` are at `i * workers + w`.
    backends: Vec<Conns>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("http2", &self.http2)
            .field("tls", &self.tls.is_some())
            .field("backends", &(self.backends.len() / self.workers))
            .field("workers", &self.workers)
            .finish()
    }
}

/// An HTTP/1.1 connection lent to one request: back to the pool when the
/// response body ends cleanly, closed otherwise.
pub struct Lease {
    upstream: Arc<Upstream>,
    /// The connection's slot in `Upstream::backends`.
    slot: usize,
    sender: Option<Sender1>,
}

impl Lease {
    /// The response body was read to its end: the connection may serve
    /// another request.
    pub fn release(mut self) {
        let Some(sender) = self.sender.take() else {
            return;
        };
        if sender.is_closed() {
            return;
        }
        let Some(conns) = self.upstream.backends.get(self.slot) else {
            return;
        };
        let Ok(mut idle) = conns.idle.lock() else {
            return;
        };
        let now = Instant::now();
        expire(&mut idle, now);
        if idle.len() < MAX_IDLE {
            idle.push_back((sender, now));
        }
    }
}

/// Closes the connections idle longer than [`IDLE_TIMEOUT`] (the oldest
/// are at the front).
fn expire(idle: &mut VecDeque<(Sender1, Instant)>, now: Instant) {
    while idle
        .front()
        .is_some_and(|(_, since)| now.duration_since(*since) > IDLE_TIMEOUT)
    {
        idle.pop_front();
    }
}

impl Upstream {
    /// A pool of `backends` connections for `workers` worker threads;
    /// HTTP/2 when `http2`, TLS when `tls` is given.
    pub fn new(backends: usize, workers: usize, http2: bool, tls: Option<TlsSide>) -> Self {
        let workers = workers.max(1);
        Self {
            http2,
            tls,
            workers,
            backends: (0..backends * workers).map(|_| Conns::default()).collect(),
        }
    }

    /// Where the calling worker keeps backend `index`'s connections.
    fn slot(&self, index: usize) -> usize {
        index * self.workers + weir_common::workers::index() % self.workers
    }

    /// Sends `req` to backend `index` at `addr`, on a pooled connection or
    /// a new one (connected within `connect_timeout`). HTTP/1.1 requests
    /// carry an origin-form target; HTTP/2 ones an absolute URI.
    pub async fn send(
        self: &Arc<Self>,
        index: usize,
        addr: SocketAddr,
        connect_timeout: Duration,
        req: Request<ProxyBody>,
    ) -> Result<(Response<Incoming>, Option<Lease>), UpstreamError> {
        // Connecting is rare and its future (TCP, TLS, handshake) large:
        // boxed, so that every request's future stays small and cheap to
        // move.
        if self.http2 {
            // A request that meets the shared connection as it closes
            // (GOAWAY, a backend restart) comes back unsent: once more on a
            // new connection.
            let mut req = req;
            let mut shared = self.shared_h2(index);
            loop {
                let fresh = shared.is_none();
                let mut sender = match shared.take() {
                    Some(sender) => sender,
                    None => Box::pin(self.connect_h2_once(index, addr, connect_timeout)).await?,
                };
                match sender.try_send_request(req).await {
                    Ok(resp) => return Ok((resp, None)),
                    Err(mut e) => match e.take_message() {
                        Some(unsent) if !fresh => req = unsent,
                        _ => return Err(UpstreamError::Request(e.into_error())),
                    },
                }
            }
        }
        let mut req = req;
        loop {
            let (mut sender, fresh) = match self.checkout(index) {
                Some(sender) => (sender, false),
                None => (
                    Box::pin(self.connect_h1(index, addr, connect_timeout)).await?,
                    true,
                ),
            };
            if let Err(e) = sender.ready().await {
                if fresh {
                    return Err(UpstreamError::Request(e));
                }
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let lease = Lease {
                        upstream: Arc::clone(self),
                        slot: self.slot(index),
                        sender: Some(sender),
                    };
                    return Ok((resp, Some(lease)));
                }
                Err(mut e) => match e.take_message() {
                    // Never sent: the pooled connection was closing. The
                    // next one (or a new one) gets it.
                    Some(unsent) if !fresh => req = unsent,
                    _ => return Err(UpstreamError::Request(e.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection of backend `index` that is
    /// still open; connections idle longer than [`IDLE_TIMEOUT`] are closed
    /// on the way (a middlebox may have forgotten them).
    fn checkout(&self, index: usize) -> Option<Sender1> {
        let conns = self.backends.get(self.slot(index))?;
        let mut idle = conns.idle.lock().ok()?;
        expire(&mut idle, Instant::now());
        while let Some((sender, _)) = idle.pop_back() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    async fn stream(
        &self,
        index: usize,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Stream, UpstreamError> {
        connect(addr, timeout, self.tls.as_ref().map(|t| (t, index)))
            .await
            .map_err(UpstreamError::Connect)
    }

    async fn connect_h1(
        &self,
        index: usize,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Sender1, UpstreamError> {
        let stream = self.stream(index, addr, timeout).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Request)?;
        tokio::spawn(async move {
            // `with_upgrades`: a 101 hands the connection to the tunnel.
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "backend connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Backend `index`'s open HTTP/2 connection, if it has one.
    fn shared_h2(&self, index: usize) -> Option<Sender2> {
        let guard = self.backends.get(self.slot(index))?.h2.lock().ok()?;
        guard.as_ref().filter(|s| !s.is_closed()).cloned()
    }

    /// Backend `index`'s shared HTTP/2 connection, made now if it has none.
    /// One connect at a time per backend: requests that arrive meanwhile
    /// wait for it and share its outcome — the new connection, or its
    /// failure without trying again — so a cold or restarted backend sees
    /// one connection, not one per request in flight, and a dead one does
    /// not make them queue up one connect timeout each.
    async fn connect_h2_once(
        &self,
        index: usize,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Sender2, UpstreamError> {
        let Some(conns) = self.backends.get(self.slot(index)) else {
            return Err(UpstreamError::Connect(ConnectFailure::Other));
        };
        let asked = Instant::now();
        let mut last_failure = conns.h2_connect.lock().await;
        if let Some(sender) = self.shared_h2(index) {
            return Ok(sender);
        }
        if let Some((at, failure)) = *last_failure
            && at >= asked
        {
            // The attempt this request waited for failed.
            return Err(UpstreamError::Connect(failure));
        }
        let result = self.connect_h2(index, addr, timeout).await;
        *last_failure = match &result {
            Ok(_) => None,
            Err(UpstreamError::Connect(failure)) => Some((Instant::now(), *failure)),
            Err(UpstreamError::Request(_)) => Some((Instant::now(), ConnectFailure::Other)),
        };
        result
    }

    /// A new HTTP/2 connection to backend `index`, shared from now on.
    async fn connect_h2(
        &self,
        index: usize,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Sender2, UpstreamError> {
        let shared = self.backends.get(self.slot(index)).map(|c| &c.h2);
        let stream = self.stream(index, addr, timeout).await?;
        if self.tls.is_some() && !stream.is_h2() {
            tracing::warn!(%addr, "backend did not negotiate h2 over TLS (ALPN)");
        }
        let (mut sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Request)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "backend HTTP/2 connection ended with an error");
            }
        });
        sender.ready().await.map_err(UpstreamError::Request)?;
        if let Some(slot) = shared
            && let Ok(mut guard) = slot.lock()
        {
            *guard = Some(sender.clone());
        }
        Ok(sender)
    }
}
