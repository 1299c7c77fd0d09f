//! Connecting to a backend, with a timeout and failover across candidates.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;
use weir_common::backend::{Backend, InFlight};
use weir_common::health::{self, Source};
use weir_common::listener::AcceptErrorKind;

use weir_common::pool::PoolRuntime;

/// Why no backend could be reached (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// The selector had no ready backend.
    #[error("no ready backend")]
    NoReadyBackend,
    /// Every candidate tried failed to connect.
    #[error("every backend tried failed")]
    AllFailed,
}

impl Unavailable {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::NoReadyBackend => "no_ready_backend",
            Self::AllFailed => "all_failed",
        }
    }
}

/// A live backend connection.
#[derive(Debug)]
pub struct Upstream {
    /// The socket.
    pub stream: TcpStream,
    /// Index of the backend in the snapshot it was chosen from.
    pub index: usize,
    /// The backend.
    pub backend: Backend,
    /// Holds the backend's in-flight count for the connection's life.
    pub in_flight: InFlight,
}

/// Sets TCP_NODELAY and keepalive on a proxied socket.
pub fn tune(stream: &TcpStream, keepalive: Option<Duration>) {
    let _ = stream.set_nodelay(true);
    if let Some(idle) = keepalive {
        let ka = TcpKeepalive::new()
            .with_time(idle)
            .with_interval((idle / 4).max(Duration::from_secs(1)));
        let _ = SockRef::from(stream).set_tcp_keepalive(&ka);
    }
}

/// Tries up to `attempts` candidates for `client`, in the selector's order.
pub async fn connect(
    pool: &PoolRuntime,
    client: SocketAddr,
    attempts: u32,
    timeout: Duration,
    keepalive: Option<Duration>,
) -> Result<Upstream, Unavailable> {
    let selector = pool.selector.load();
    let key = pool.hash_key.key(client);
    let candidates = selector.candidates(key, attempts as usize);
    if candidates.is_empty() {
        return Err(Unavailable::NoReadyBackend);
    }
    for &index in candidates.as_slice() {
        let Some(backend) = selector.backend(index) else {
            continue;
        };
        let index = index as usize;
        // Count the attempt as in flight so least-connections sees it at once.
        let in_flight = backend.state.begin();
        // weir's own shortage (out of fds or memory for the socket) says
        // nothing about the backend: it must not count against its health.
        let mut local = false;
        let result = match tokio::time::timeout(timeout, TcpStream::connect(backend.addr)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => {
                local = AcceptErrorKind::of(&e) == AcceptErrorKind::Exhausted;
                Err(if e.kind() == io::ErrorKind::ConnectionRefused {
                    0
                } else {
                    2
                })
            }
            Err(_) => Err(1),
        };
        match result {
            Ok(stream) => {
                tune(&stream, keepalive);
                if pool.passive {
                    health::report(&pool.name, backend, true, Source::Traffic);
                }
                return Ok(Upstream {
                    stream,
                    index,
                    backend: backend.clone(),
                    in_flight,
                });
            }
            Err(reason) => {
                if let Some(m) = pool.backend_metrics.get(index) {
                    m.connect_errors[reason].increment(1);
                }
                tracing::debug!(pool = %pool.name, backend = %backend.name, reason = ["refused", "timeout", "other"][reason], "connect to backend failed");
                if pool.passive && !local {
                    health::report(&pool.name, backend, false, Source::Traffic);
                }
            }
        }
    }
    Err(Unavailable::AllFailed)
}
