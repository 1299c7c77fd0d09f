//! The HTTP listener: accept, then serve HTTP/1.1 and cleartext HTTP/2
//! (prior knowledge) on each connection with hyper, with the limits set.
//! An https listener first does the TLS handshake ([`crate::tls`]) within
//! the header read timeout, then serves the same way over the TLS stream
//! (HTTP/2 when the client negotiated `h2` with ALPN).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use weir_common::listener::{Accepted, Acceptor, bind_tcp_copies};
use weir_common::metrics as names;
use weir_common::pool::PoolRuntime;
use weir_common::shutdown::{Drain, Shutdown};
use weir_config::Listener;
use weir_config::http::HttpOptions;

use crate::access_log::AccessLogger;
use crate::body::{LastActivity, Watched};
use crate::deadlines::{Deadlines, Due};
use crate::outlier::Outliers;
use crate::proxy::{self, Gateway};
use crate::tls::{ServerTls, TlsError};

/// Why an HTTP listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpStartError {
    /// A bind failed.
    #[error("listener {listener:?}: cannot bind {addr}: {source}")]
    Bind {
        /// Listener name.
        listener: String,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// The access log file could not be opened.
    #[error("listener {listener:?}: cannot open access log: {source}")]
    AccessLog {
        /// Listener name.
        listener: String,
        /// The cause.
        source: io::Error,
    },
    /// The TLS certificates could not be loaded.
    #[error("listener {listener:?}: {source}")]
    Tls {
        /// Listener name.
        listener: String,
        /// The cause.
        source: TlsError,
    },
    /// A pool's TLS client settings could not be loaded.
    #[error("pool {pool:?}: [pools.tls]: {source}")]
    UpstreamTls {
        /// Pool name.
        pool: String,
        /// The cause.
        source: weir_config::upstream_tls::UpstreamTlsError,
    },
}

/// A bound HTTP listener.
pub struct HttpService {
    name: String,
    sockets: Vec<std::net::TcpListener>,
    options: HttpOptions,
    max_connections: usize,
    gateway: Arc<Gateway>,
    tls: Option<Arc<ServerTls>>,
}

impl std::fmt::Debug for HttpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpService")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl HttpService {
    /// Binds `config` (an HTTP listener). `pools` (the runtimes) and
    /// `pool_configs` (their request keys and HTTP versions) are indexed like
    /// the configuration's pools; `outliers` is shared by every HTTP listener
    /// so a pool has one outlier detector; `auth` (the JWT providers) too.
    /// Every address gets `workers` sockets, one per worker thread.
    pub fn bind(
        config: &Listener,
        pools: Vec<Arc<PoolRuntime>>,
        pool_configs: &[weir_config::Pool],
        outliers: Arc<Outliers>,
        auth: Arc<crate::auth::Auth>,
        rate_limits: Arc<crate::ratelimit::RateLimits>,
        workers: usize,
    ) -> Result<Self, HttpStartError> {
        let options = config.http.clone().unwrap_or_else(|| HttpOptions {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 65_536,
            max_headers: 100,
            max_body_bytes: 10 << 20,
            keepalive_timeout: Duration::from_secs(60),
            max_concurrent_streams: 100,
            access_log: weir_config::http::AccessLog::Off,
            forwarded: false,
            via: None,
            routes: Vec::new(),
        });
        let mut sockets = Vec::new();
        for &addr in &config.bind {
            sockets.extend(
                bind_tcp_copies(addr, config.backlog, workers).map_err(|source| {
                    HttpStartError::Bind {
                        listener: config.name.clone(),
                        addr,
                        source,
                    }
                })?,
            );
        }
        let access_log = AccessLogger::open(&options.access_log).map_err(|source| {
            HttpStartError::AccessLog {
                listener: config.name.clone(),
                source,
            }
        })?;
        let tls = match &config.tls {
            Some(options) => Some(Arc::new(
                ServerTls::new(&config.name, options.clone()).map_err(|source| {
                    HttpStartError::Tls {
                        listener: config.name.clone(),
                        source,
                    }
                })?,
            )),
            None => None,
        };
        let gateway = Gateway::new(
            &config.name,
            &options,
            pools,
            pool_configs,
            access_log,
            outliers,
            workers,
        )
        .map_err(|(pool, source)| HttpStartError::UpstreamTls { pool, source })?
        .with_auth(auth)
        .with_rate_limits(rate_limits);
        Ok(Self {
            name: config.name.clone(),
            sockets,
            options,
            max_connections: config.max_connections,
            gateway: Arc::new(gateway),
            tls,
        })
    }

    /// The listener's TLS (https listeners), to reload its certificates.
    pub fn tls(&self) -> Option<Arc<ServerTls>> {
        self.tls.clone()
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bound addresses, one per configured address.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        weir_common::listener::distinct_addrs(&self.sockets, std::net::TcpListener::local_addr)
    }

    /// Serves until `shutdown`; open connections finish their requests
    /// (graceful) until `hard_stop`. Socket `i` of each address is served by
    /// worker `i % workers.len()`, where its connections then live.
    pub async fn serve(
        self,
        shutdown: Shutdown,
        hard_stop: Shutdown,
        drain: Drain,
        workers: Vec<Handle>,
    ) -> io::Result<()> {
        let limit = Arc::new(Semaphore::new(self.max_connections));
        let builder = Arc::new(builder(&self.options));
        weir_common::workers::serve_each(&workers, self.sockets, |socket| {
            let conn = ConnContext {
                gateway: Arc::clone(&self.gateway),
                builder: Arc::clone(&builder),
                keepalive: self.options.keepalive_timeout,
                tls: self.tls.clone(),
                handshake_timeout: self.options.header_read_timeout,
                shutdown: shutdown.clone(),
                hard_stop: hard_stop.clone(),
            };
            let (limit, drain) = (Arc::clone(&limit), drain.clone());
            async move {
                // Registered with the worker's own reactor.
                let listener = TcpListener::from_std(socket)?;
                accept_loop(listener, conn, limit, drain).await;
                Ok(())
            }
        })
        .await
    }
}

/// Spawns hyper's HTTP/2 stream tasks with the stream's future boxed.
///
/// A stream's future holds weir's whole request handling (about 4 KB):
/// spawned as it is, tokio copies it into the task's cell and rewrites the
/// whole cell again when the task completes, several kilobytes copied per
/// request. Boxed first, it is copied once and the task stays small.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamExecutor;

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(Box::pin(fut));
    }
}

fn builder(o: &HttpOptions) -> auto::Builder<StreamExecutor> {
    let mut b = auto::Builder::new(StreamExecutor);
    b.http1()
        // The header read timeout is the connection's own (`deadlines`):
        // hyper's re-arms a timer for every request head, and is its only
        // use of a timer on HTTP/1, so none is set.
        .header_read_timeout(None)
        .max_buf_size(o.max_header_bytes.max(8192))
        .max_headers(o.max_headers)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(o.max_concurrent_streams)
        .max_header_list_size(u32::try_from(o.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(Some(100))
        // No HTTP/2 PINGs from us: hyper sends them even on idle
        // connections, and their bytes would keep an idle connection from
        // ever reaching `keepalive_timeout`. TCP keepalive finds dead peers.
        .keep_alive_interval(None);
    b
}

#[derive(Clone)]
struct ConnContext {
    gateway: Arc<Gateway>,
    builder: Arc<auto::Builder<StreamExecutor>>,
    keepalive: Duration,
    tls: Option<Arc<ServerTls>>,
    handshake_timeout: Duration,
    shutdown: Shutdown,
    hard_stop: Shutdown,
}

async fn accept_loop(
    listener: TcpListener,
    conn: ConnContext,
    limit: Arc<Semaphore>,
    drain: Drain,
) {
    let name = conn.gateway.listener.to_string();
    let active = metrics::gauge!(names::LISTENER_ACTIVE, "listener" => name.clone());
    let mut acceptor = Acceptor::new(listener, &name, limit);
    while let Some(Accepted {
        stream,
        peer,
        permit,
    }) = acceptor.next(&conn.shutdown).await
    {
        let _ = stream.set_nodelay(true);
        let (conn, guard, active) = (conn.clone(), drain.enter(), active.clone());
        active.increment(1.0);
        tokio::spawn(async move {
            serve_connection(stream, peer, conn).await;
            active.decrement(1.0);
            drop(permit);
            drop(guard);
        });
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, ctx: ConnContext) {
    let activity = LastActivity::new();
    let stream = Watched::new(stream, Arc::clone(&activity));
    match &ctx.tls {
        None => serve_http(stream, peer, &ctx, &activity, false).await,
        Some(tls) => {
            if let Some(stream) = handshake(tls, stream, peer, &ctx).await {
                serve_http(stream, peer, &ctx, &activity, true).await;
            }
        }
    }
}

/// The TLS handshake, bounded by the header read timeout; `None` (counted,
/// logged at debug) when it fails, times out or weir stops first.
async fn handshake<I>(
    tls: &ServerTls,
    stream: I,
    peer: SocketAddr,
    ctx: &ConnContext,
) -> Option<tokio_rustls::server::TlsStream<I>>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let accept = tokio::time::timeout(ctx.handshake_timeout, tls.acceptor().accept(stream));
    let error = tokio::select! {
        result = accept => match result {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("timed out after {:?}", ctx.handshake_timeout),
        },
        () = ctx.hard_stop.wait() => return None,
    };
    metrics::counter!(names::TLS_HANDSHAKE_ERRORS, "listener" => tls.listener().to_owned())
        .increment(1);
    tracing::debug!(listener = %tls.listener(), client = %peer, error = %error, "tls handshake failed");
    None
}

/// Serves HTTP on one (plain or TLS) connection until it ends, idles out or
/// weir stops.
async fn serve_http<I>(
    stream: I,
    peer: SocketAddr,
    ctx: &ConnContext,
    activity: &Arc<LastActivity>,
    over_tls: bool,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let gateway = Arc::clone(&ctx.gateway);
    let tunnel = proxy::TunnelSlot::default();
    let tunnel_for_requests = tunnel.clone();
    let opened = tokio::time::Instant::now();
    let downstream = Arc::new(crate::exchange::Downstream::new(peer, over_tls, opened));
    let requests = Arc::clone(&downstream);
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        // Only a request that may upgrade needs the tunnel slot (inserting
        // an extension allocates).
        if req.headers().contains_key(hyper::header::UPGRADE) {
            req.extensions_mut().insert(tunnel_for_requests.clone());
        }
        let gateway = Arc::clone(&gateway);
        let downstream = Arc::clone(&downstream);
        async move { Ok::<_, std::convert::Infallible>(proxy::handle(gateway, downstream, req).await) }
    });
    let conn = ctx.builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    // The header read and keep-alive timeouts, on one timer re-armed only
    // when it fires.
    let deadlines = Deadlines {
        header_read_timeout: ctx.handshake_timeout,
        keepalive: ctx.keepalive,
    };
    let check = tokio::time::sleep_until(deadlines.first(opened));
    tokio::pin!(check);
    let mut closing = false;
    loop {
        tokio::select! {
            // Polled on every wake-up of the task: the work first, and no
            // random branch order to draw.
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(client = %peer, error = %e, "http connection ended with an error");
                }
                // An upgrade outlives hyper's connection: wait for its tunnel
                // here, so it keeps this connection's limits.
                let task = tunnel.0.lock().ok().and_then(|mut t| t.take());
                if let Some(task) = task {
                    wait_tunnel(task, activity, ctx).await;
                }
                return;
            }
            () = &mut check, if !closing => {
                match deadlines.due(tokio::time::Instant::now(), &requests.clock, activity) {
                    Due::HeadTimeout => {
                        tracing::debug!(client = %peer, first = !requests.clock.started(), "no request head within the header read timeout; closing");
                        return;
                    }
                    // Idle for the keep-alive time: close (requests in
                    // flight finish).
                    Due::Idle => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    Due::At(at) => check.as_mut().reset(at),
                }
            }
            () = ctx.shutdown.wait(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = ctx.hard_stop.wait() => return,
        }
    }
}

/// A tunnel idle (no byte either way) this long is closed.
const TUNNEL_IDLE: Duration = Duration::from_secs(3600);

/// Waits for an upgrade tunnel to end; aborts it when idle for
/// [`TUNNEL_IDLE`] or when weir stops for good.
async fn wait_tunnel(
    mut task: tokio::task::JoinHandle<()>,
    activity: &Arc<LastActivity>,
    ctx: &ConnContext,
) {
    let mut check = tokio::time::interval(Duration::from_secs(30));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut task => return,
            _ = check.tick() => {
                let now = tokio::time::Instant::now();
                if now.saturating_duration_since(activity.last_seen(now)) >= TUNNEL_IDLE {
                    task.abort();
                    return;
                }
            }
            () = ctx.hard_stop.wait() => {
                task.abort();
                return;
            }
        }
    }
}
