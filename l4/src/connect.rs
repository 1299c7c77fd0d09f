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
    tune_socket(SockRef::from(stream), keepalive);
}

/// Sets TCP_NODELAY and keepalive on a listening socket. On Linux the
/// sockets it accepts inherit both (the kernel copies the listener's
/// options into each new connection and starts its keepalive timer), so
/// client sockets need no system calls of their own: four fewer per
/// connection.
pub fn tune_listener(listener: &std::net::TcpListener, keepalive: Option<Duration>) {
    tune_socket(SockRef::from(listener), keepalive);
}

fn tune_socket(socket: SockRef<'_>, keepalive: Option<Duration>) {
    let _ = socket.set_tcp_nodelay(true);
    if let Some(idle) = keepalive {
        set_keepalive(socket, idle);
    }
}

/// Turns on TCP keepalive: the first probe after `idle` without a packet,
/// then one every quarter of that (at least 1 s).
pub(crate) fn set_keepalive(socket: SockRef<'_>, idle: Duration) {
    let ka = TcpKeepalive::new()
        .with_time(idle)
        .with_interval((idle / 4).max(Duration::from_secs(1)));
    let _ = socket.set_tcp_keepalive(&ka);
}

/// Tries up to `attempts` candidates for `client`, in the selector's order.
/// The connected socket has TCP_NODELAY; keepalive is left to the forwarder,
/// which arms it once the connection has lived a moment
/// ([`crate::forward::KEEPALIVE_AFTER`]).
pub async fn connect(
    pool: &PoolRuntime,
    client: SocketAddr,
    attempts: u32,
    timeout: Duration,
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
                let _ = stream.set_nodelay(true);
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn accepted_sockets_inherit_the_listeners_nodelay_and_keepalive() {
        let listener = weir_common::listener::bind_tcp("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        listener.set_nonblocking(false).unwrap();
        let idle = Duration::from_secs(42);
        tune_listener(&listener, Some(idle));
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let s = SockRef::from(&accepted);
        assert!(s.tcp_nodelay().unwrap(), "TCP_NODELAY inherited");
        assert!(s.keepalive().unwrap(), "SO_KEEPALIVE inherited");
        assert_eq!(
            s.tcp_keepalive_time().unwrap(),
            idle,
            "TCP_KEEPIDLE inherited"
        );
        assert_eq!(
            s.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(10),
            "TCP_KEEPINTVL inherited"
        );
    }
}
