//! Connections to backends: TCP (with a connect timeout and `TCP_NODELAY`),
//! then TLS for pools with `[pools.tls]` (the name configured for the
//! backend's address is checked), and a reason for every failure: a
//! [`ConnectFailure`] with the label the backend metrics use (`refused`,
//! `timeout`, `other`) — the same three labels as L4.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Why a connection to a backend failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectFailure {
    /// The backend refused the connection.
    #[error("connection refused")]
    Refused,
    /// The connect (or the TLS handshake) timed out.
    #[error("connect timed out")]
    Timeout,
    /// The TLS handshake failed (certificate, name, protocol).
    #[error("TLS handshake failed")]
    Tls,
    /// Anything else (unreachable, out of file descriptors...).
    #[error("connect failed")]
    Other,
}

impl ConnectFailure {
    /// Index into a backend's `connect_errors` counters
    /// (`refused`, `timeout`, `other`).
    pub fn metric_index(self) -> usize {
        match self {
            Self::Refused => 0,
            Self::Timeout => 1,
            Self::Tls | Self::Other => 2,
        }
    }

    fn of_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Self::Refused,
            io::ErrorKind::TimedOut => Self::Timeout,
            _ => Self::Other,
        }
    }
}

/// The TLS side of a pool: the rustls client and the name each backend
/// must prove, by backend index (not by address: two backends named
/// differently may share an address, as virtual hosts behind one ingress).
pub struct TlsSide {
    connector: TlsConnector,
    names: Vec<Option<ServerName<'static>>>,
}

impl TlsSide {
    /// TLS with `config`; backend `i` is checked against `names[i]`.
    /// (Validation refuses names rustls cannot take; a `None` fails the
    /// backend's connects all the same.)
    pub fn new(config: rustls::ClientConfig, names: Vec<Option<ServerName<'static>>>) -> Self {
        Self {
            connector: TlsConnector::from(Arc::new(config)),
            names,
        }
    }

    /// The name backend `index` must prove.
    pub fn name(&self, index: usize) -> Option<&ServerName<'static>> {
        self.names.get(index)?.as_ref()
    }
}

/// Connects to `addr` within `timeout` (TCP, then TLS when `tls` gives the
/// pool's TLS side and the backend's index; the handshake gets its own
/// `timeout`), with `TCP_NODELAY`.
pub async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    tls: Option<(&TlsSide, usize)>,
) -> Result<Stream, ConnectFailure> {
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(ConnectFailure::Timeout),
        Ok(Err(e)) => return Err(ConnectFailure::of_io(&e)),
        Ok(Ok(tcp)) => tcp,
    };
    let _ = tcp.set_nodelay(true);
    let Some((tls, index)) = tls else {
        return Ok(Stream::Plain(tcp));
    };
    let Some(name) = tls.name(index).cloned() else {
        tracing::warn!(%addr, "no TLS server name for this backend");
        return Err(ConnectFailure::Tls);
    };
    match tokio::time::timeout(timeout, tls.connector.connect(name, tcp)).await {
        Err(_) => Err(ConnectFailure::Timeout),
        Ok(Err(e)) => {
            tracing::debug!(%addr, error = %e, "TLS handshake with backend failed");
            Err(ConnectFailure::Tls)
        }
        Ok(Ok(stream)) => Ok(Stream::Tls(Box::new(stream))),
    }
}

/// A connection to a backend, cleartext or TLS.
pub enum Stream {
    /// Cleartext TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// True when ALPN chose HTTP/2.
    pub fn is_h2(&self) -> bool {
        matches!(self, Self::Tls(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2"))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
