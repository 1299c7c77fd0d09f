//! The listener seam: binding sockets and keeping an accept loop alive.
//!
//! Sockets are bound through socket2 (SO_REUSEADDR, SO_REUSEPORT, backlog,
//! IPV6_V6ONLY for v6 wildcards) before anything is spawned, so a bind
//! failure stops start-up cleanly. [`AcceptBackoff`] classifies accept(2)
//! errors: per-connection errors are skipped at once, fd exhaustion
//! (EMFILE/ENFILE/ENOBUFS/ENOMEM) backs off exponentially up to a second,
//! and nothing ends the loop.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// Binds a TCP listening socket ready for tokio.
pub fn bind_tcp(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// Binds `copies` (at least one) TCP listening sockets on `addr`, one per
/// worker thread; `SO_REUSEPORT` lets the kernel spread new connections over
/// them. For port 0 the first socket's port is used for the rest.
pub fn bind_tcp_copies(
    addr: SocketAddr,
    backlog: u32,
    copies: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    let first = bind_tcp(addr, backlog)?;
    let actual = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..copies.max(1) {
        sockets.push(bind_tcp(actual, backlog)?);
    }
    Ok(sockets)
}

/// The distinct bound addresses of `sockets` in order (the copies of one
/// address that [`bind_tcp_copies`] makes are adjacent), read with `addr`.
pub fn distinct_addrs<S>(
    sockets: &[S],
    addr: impl Fn(&S) -> io::Result<SocketAddr>,
) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = sockets.iter().filter_map(|s| addr(s).ok()).collect();
    addrs.dedup();
    addrs
}

/// Binds a UDP socket ready for tokio, with SO_REUSEPORT so several sockets
/// can share one address (the kernel spreads clients across them by their
/// address, so each client stays on one socket).
pub fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Bursts of small datagrams (DNS) overflow the default buffers first.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A connection accepted within the listener's limit.
#[derive(Debug)]
pub struct Accepted {
    /// The client's socket.
    pub stream: tokio::net::TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// One of the listener's `max_connections` slots, held for the
    /// connection's life.
    pub permit: tokio::sync::OwnedSemaphorePermit,
}

/// An accept loop's policy in one place, shared by the TCP proxy and the
/// HTTP gateway: connections over the limit are reset at once and counted;
/// accept errors are counted by kind, logged once per episode, and backed off
/// (fd exhaustion) or skipped (per-connection errors); nothing ends the loop
/// but shutdown.
#[derive(Debug)]
pub struct Acceptor {
    listener: tokio::net::TcpListener,
    name: String,
    limit: std::sync::Arc<tokio::sync::Semaphore>,
    accepted: metrics::Counter,
    rejected: metrics::Counter,
    errors: [metrics::Counter; 3],
    backoff: AcceptBackoff,
    logged: bool,
}

impl Acceptor {
    /// Accepts on `listener` for the listener named `name`, at most `limit`
    /// connections at once.
    pub fn new(
        listener: tokio::net::TcpListener,
        name: &str,
        limit: std::sync::Arc<tokio::sync::Semaphore>,
    ) -> Self {
        use crate::metrics as names;
        let error = |k: AcceptErrorKind| metrics::counter!(names::LISTENER_ACCEPT_ERRORS, "listener" => name.to_owned(), "reason" => k.label());
        Self {
            listener,
            name: name.to_owned(),
            limit,
            accepted: metrics::counter!(names::LISTENER_ACCEPTED, "listener" => name.to_owned()),
            rejected: metrics::counter!(names::LISTENER_REJECTED, "listener" => name.to_owned(), "reason" => "max_connections"),
            errors: [
                error(AcceptErrorKind::Connection),
                error(AcceptErrorKind::Exhausted),
                error(AcceptErrorKind::Other),
            ],
            backoff: AcceptBackoff::new(),
            logged: false,
        }
    }

    /// The next connection within the limit; `None` once `shutdown` fires.
    pub async fn next(&mut self, shutdown: &crate::shutdown::Shutdown) -> Option<Accepted> {
        loop {
            let result = tokio::select! {
                r = self.listener.accept() => r,
                () = shutdown.wait() => return None,
            };
            match result {
                Ok((stream, peer)) => {
                    self.backoff.reset();
                    self.logged = false;
                    self.accepted.increment(1);
                    match std::sync::Arc::clone(&self.limit).try_acquire_owned() {
                        Ok(permit) => {
                            return Some(Accepted {
                                stream,
                                peer,
                                permit,
                            });
                        }
                        Err(_) => {
                            self.rejected.increment(1);
                            // Reset rather than FIN: prompt for the client, no TIME_WAIT for us.
                            let _ =
                                socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                        }
                    }
                }
                Err(err) => {
                    let kind = AcceptErrorKind::of(&err);
                    self.errors[kind as usize].increment(1);
                    if !self.logged && kind != AcceptErrorKind::Connection {
                        tracing::warn!(listener = %self.name, error = %err, "accept failed; backing off");
                        self.logged = true;
                    }
                    let pause = self.backoff.pause(kind);
                    if !pause.is_zero() {
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            () = shutdown.wait() => return None,
                        }
                    }
                }
            }
        }
    }
}

/// What an accept(2) error means for the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptErrorKind {
    /// One connection failed before we got it (ECONNABORTED, EPROTO, …): skip it.
    Connection,
    /// Out of file descriptors or memory: back off and retry.
    Exhausted,
    /// Anything else: log, pause briefly, retry.
    Other,
}

impl AcceptErrorKind {
    /// Classifies an accept error.
    pub fn of(err: &io::Error) -> Self {
        use io::ErrorKind::*;
        match err.kind() {
            ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock => {
                Self::Connection
            }
            _ => match err.raw_os_error() {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM
                Some(24 | 23 | 105 | 12) => Self::Exhausted,
                // EPROTO, EPERM (firewall), ENETDOWN … are per-connection
                Some(71 | 1 | 100 | 64 | 92 | 93 | 95 | 101 | 112) => Self::Connection,
                _ => Self::Other,
            },
        }
    }

    /// The metric `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connection => "aborted",
            Self::Exhausted => "fd_exhausted",
            Self::Other => "other",
        }
    }
}

/// Exponential backoff for an accept loop under resource exhaustion.
#[derive(Debug)]
pub struct AcceptBackoff {
    next: Duration,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self::new()
    }
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// A fresh backoff.
    pub fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// How long to pause after an error of `kind` (zero: retry at once).
    pub fn pause(&mut self, kind: AcceptErrorKind) -> Duration {
        match kind {
            AcceptErrorKind::Connection => Duration::ZERO,
            AcceptErrorKind::Exhausted => {
                let pause = self.next;
                self.next = (self.next * 2).min(Self::MAX);
                pause
            }
            AcceptErrorKind::Other => Duration::from_millis(100),
        }
    }

    /// A connection was accepted: start small again.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_and_backs_off() {
        let emfile = io::Error::from_raw_os_error(24);
        assert_eq!(AcceptErrorKind::of(&emfile), AcceptErrorKind::Exhausted);
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(AcceptErrorKind::of(&aborted), AcceptErrorKind::Connection);
        let mut b = AcceptBackoff::new();
        let pauses: Vec<_> = (0..10)
            .map(|_| b.pause(AcceptErrorKind::Exhausted))
            .collect();
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*pauses.last().unwrap(), AcceptBackoff::MAX);
        b.reset();
        assert_eq!(b.pause(AcceptErrorKind::Exhausted), AcceptBackoff::FIRST);
    }

    #[test]
    fn copies_share_the_port_chosen_for_port_zero() {
        let sockets = bind_tcp_copies("127.0.0.1:0".parse().unwrap(), 16, 3).unwrap();
        assert_eq!(sockets.len(), 3);
        let addr = sockets[0].local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        for s in &sockets {
            assert_eq!(s.local_addr().unwrap(), addr);
        }
        // Every connection lands in exactly one copy's queue.
        let clients: Vec<_> = (0..24)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut accepted = 0;
        while accepted < clients.len() && std::time::Instant::now() < deadline {
            for s in &sockets {
                while s.accept().is_ok() {
                    accepted += 1;
                }
            }
            std::thread::yield_now();
        }
        assert_eq!(accepted, clients.len());
    }

    #[test]
    fn port_held_without_reuseport_is_in_use() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = bind_tcp(held.local_addr().unwrap(), 16).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
