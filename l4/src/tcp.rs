//! The TCP proxy service: accept → key → select → connect → forward.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use weir_common::listener::{Accepted, Acceptor, bind_tcp_copies};
use weir_common::metrics as names;
use weir_common::shutdown::{Drain, Shutdown};
use weir_config::Listener;

use crate::connect::{self, Unavailable};
use crate::forward::{self, ByteCounters, End, ForwardOptions};
use weir_common::pool::PoolRuntime;

/// A bind failure, naming the address.
#[derive(Debug, thiserror::Error)]
#[error("listener {listener:?}: cannot bind {addr}: {source}")]
pub struct BindError {
    /// Listener name.
    pub listener: String,
    /// The address.
    pub addr: SocketAddr,
    /// The cause (e.g. address in use, permission denied).
    pub source: io::Error,
}

/// Metric handles of one listener, registered once.
#[derive(Debug, Clone)]
struct ListenerMetrics {
    active: Gauge,
    bytes: ByteCounters,
    unavailable: [Counter; 2],
    idle_timeouts: Counter,
    stream_errors: [Counter; 2],
    duration: Histogram,
}

impl ListenerMetrics {
    fn new(name: &str) -> Self {
        let l = || ("listener", name.to_owned());
        let unavailable = |u: Unavailable| metrics::counter!(names::LISTENER_NO_BACKEND, "listener" => name.to_owned(), "reason" => u.label());
        Self {
            active: metrics::gauge!(names::LISTENER_ACTIVE, &[l()]),
            bytes: ByteCounters {
                upstream: metrics::counter!(names::LISTENER_BYTES, "listener" => name.to_owned(), "direction" => "upstream"),
                downstream: metrics::counter!(names::LISTENER_BYTES, "listener" => name.to_owned(), "direction" => "downstream"),
            },
            unavailable: [
                unavailable(Unavailable::NoReadyBackend),
                unavailable(Unavailable::AllFailed),
            ],
            idle_timeouts: metrics::counter!(names::LISTENER_IDLE_TIMEOUTS, &[l()]),
            stream_errors: ["client", "backend"].map(|side| {
                metrics::counter!(names::LISTENER_STREAM_ERRORS, "listener" => name.to_owned(), "side" => side)
            }),
            duration: metrics::histogram!(names::CONNECTION_DURATION, &[l()]),
        }
    }
}

/// A bound TCP listener with everything it needs to serve.
#[derive(Debug)]
pub struct TcpService {
    config: Listener,
    sockets: Vec<std::net::TcpListener>,
    pool: Arc<PoolRuntime>,
}

struct Shared {
    config: Listener,
    pool: Arc<PoolRuntime>,
    metrics: ListenerMetrics,
    limit: Arc<Semaphore>,
    clients: Option<crate::client_limits::PerClient>,
}

impl TcpService {
    /// Binds every address of `config`, `workers` sockets each (one per
    /// worker thread, see [`weir_common::workers`]); on any failure nothing
    /// stays bound.
    pub fn bind(
        config: &Listener,
        pool: Arc<PoolRuntime>,
        workers: usize,
    ) -> Result<Self, BindError> {
        let mut sockets = Vec::new();
        for &addr in &config.bind {
            let copies =
                bind_tcp_copies(addr, config.backlog, workers).map_err(|source| BindError {
                    listener: config.name.clone(),
                    addr,
                    source,
                })?;
            for socket in &copies {
                connect::tune_listener(socket, config.keepalive);
            }
            sockets.extend(copies);
        }
        Ok(Self {
            config: config.clone(),
            sockets,
            pool,
        })
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The bound addresses (port 0 resolved), one per configured address.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        weir_common::listener::distinct_addrs(&self.sockets, std::net::TcpListener::local_addr)
    }

    /// Serves until `shutdown`: accept loops stop, and this returns. Open
    /// connections carry on (each holds a `drain` guard) until they end or
    /// `hard_stop` fires. Socket `i` of each address is served by worker
    /// `i % workers.len()`, where its connections then live.
    pub async fn serve(
        self,
        shutdown: Shutdown,
        hard_stop: Shutdown,
        drain: Drain,
        workers: Vec<Handle>,
    ) -> io::Result<()> {
        let shared = Arc::new(Shared {
            metrics: ListenerMetrics::new(&self.config.name),
            clients: crate::client_limits::PerClient::new(&self.config),
            limit: Arc::new(Semaphore::new(self.config.max_connections)),
            config: self.config,
            pool: self.pool,
        });
        weir_common::workers::serve_each(&workers, self.sockets, |socket| {
            let (shared, shutdown, hard_stop, drain) = (
                Arc::clone(&shared),
                shutdown.clone(),
                hard_stop.clone(),
                drain.clone(),
            );
            async move {
                // Registered with the worker's own reactor.
                let listener = TcpListener::from_std(socket)?;
                accept_loop(listener, shared, shutdown, hard_stop, drain).await;
                Ok(())
            }
        })
        .await
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: Shutdown,
    hard_stop: Shutdown,
    drain: Drain,
) {
    let mut acceptor = Acceptor::new(listener, &shared.config.name, Arc::clone(&shared.limit));
    while let Some(Accepted {
        stream,
        peer,
        permit,
    }) = acceptor.next(&shutdown).await
    {
        let slot = match &shared.clients {
            Some(clients) => match clients.admit(&stream, peer) {
                Some(slot) => Some(slot),
                None => continue,
            },
            None => None,
        };
        let (shared, hard_stop, guard) = (Arc::clone(&shared), hard_stop.clone(), drain.enter());
        tokio::spawn(async move {
            tokio::select! {
                // Polled on every wake-up of the task: the work first, and no
                // random branch order to draw.
                biased;
                () = handle(stream, peer, &shared) => {}
                () = hard_stop.wait() => {}
            }
            drop(slot);
            drop(permit);
            drop(guard);
        });
    }
}

async fn handle(client: TcpStream, peer: SocketAddr, shared: &Shared) {
    let started = Instant::now();
    let m = &shared.metrics;
    m.active.increment(1.0);
    let _active = GaugeGuard(&m.active);
    let cfg = &shared.config;
    // On Linux the accepted socket inherited TCP_NODELAY and keepalive
    // from the listener (`connect::tune_listener`).
    #[cfg(not(target_os = "linux"))]
    connect::tune(&client, cfg.keepalive);
    // Boxed: connecting happens once, and its state need not stay in the
    // task of every held connection.
    let upstream = match Box::pin(connect::connect(
        &shared.pool,
        peer,
        cfg.connect_attempts,
        cfg.connect_timeout,
    ))
    .await
    {
        Ok(u) => u,
        Err(why) => {
            m.unavailable[why as usize].increment(1);
            tracing::warn!(listener = %cfg.name, pool = %shared.pool.name, client = %peer, reason = why.label(), "closing client: {why}");
            return;
        }
    };
    let bm = shared.pool.backend_metrics.get(upstream.index);
    if let Some(bm) = bm {
        bm.connections.increment(1);
        bm.active.increment(1.0);
    }
    let opts = ForwardOptions {
        idle_timeout: cfg.idle_timeout,
        splice: cfg.splice,
        keepalive: cfg.keepalive,
    };
    let outcome = forward::forward(&client, &upstream.stream, opts, &m.bytes).await;
    if let Some(bm) = bm {
        bm.active.decrement(1.0);
    }
    match outcome.end {
        End::Closed => {}
        End::IdleTimeout => m.idle_timeouts.increment(1),
        End::ClientError => m.stream_errors[0].increment(1),
        End::BackendError => m.stream_errors[1].increment(1),
    }
    m.duration.record(started.elapsed().as_secs_f64());
    tracing::debug!(
        listener = %cfg.name, client = %peer, backend = %upstream.backend.name,
        upstream_bytes = outcome.upstream, downstream_bytes = outcome.downstream, end = ?outcome.end,
        "connection closed"
    );
}

/// Decrements a gauge on drop (also when the task is cancelled).
struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
