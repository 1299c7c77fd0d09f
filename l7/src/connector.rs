//! Connections to backends: TCP (with a connect timeout and `TCP_NODELAY`),
//! then TLS for pools with `[pools.tls]`, and a reason for every failure.
//!
//! The connector plugs into hyper-util's pooled client. It speaks TLS when
//! the request URI's scheme is `https` (the gateway builds `https` URIs only
//! for TLS pools), checks the name configured for the backend's address, and
//! tells the client when ALPN chose `h2`. Failures carry a
//! [`ConnectFailure`] with the reason the backend metrics are labelled by
//! (`refused`, `timeout`, `other`) — the same three labels as L4.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
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

    /// The failure inside a client error, if it is a connect failure.
    pub fn find(error: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(f) = e.downcast_ref::<Self>() {
                return Some(*f);
            }
            next = e.source();
        }
        None
    }

    fn of_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Self::Refused,
            io::ErrorKind::TimedOut => Self::Timeout,
            _ => Self::Other,
        }
    }
}

/// The TLS side of a pool's connector.
struct Tls {
    connector: TlsConnector,
    /// The name each backend must prove, by address.
    names: HashMap<SocketAddr, ServerName<'static>>,
    handshake_timeout: Duration,
}

/// Connects to backends, for one hyper-util client.
#[derive(Clone)]
pub struct Connector {
    tcp: HttpConnector,
    tls: Option<Arc<Tls>>,
}

impl Connector {
    /// Cleartext connections with `connect_timeout`.
    pub fn plain(connect_timeout: Duration) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.set_nodelay(true);
        // https URIs are ours to handle (TLS pools).
        tcp.enforce_http(false);
        Self { tcp, tls: None }
    }

    /// TLS connections: `names` maps each backend address to the name its
    /// certificate must prove; the handshake shares `connect_timeout`'s bound.
    pub fn tls(
        connect_timeout: Duration,
        config: rustls::ClientConfig,
        names: HashMap<SocketAddr, ServerName<'static>>,
    ) -> Self {
        Self {
            tls: Some(Arc::new(Tls {
                connector: TlsConnector::from(Arc::new(config)),
                names,
                handshake_timeout: connect_timeout,
            })),
            ..Self::plain(connect_timeout)
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<Stream>, ConnectFailure>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = ConnectFailure;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx).map_err(|_| ConnectFailure::Other)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = if uri.scheme_str() == Some("https") {
            self.tls.clone()
        } else {
            None
        };
        let connecting = self.tcp.call(uri);
        Box::pin(async move {
            let tcp = connecting.await.map_err(|e| {
                let io = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<io::Error>());
                io.map_or(ConnectFailure::Other, ConnectFailure::of_io)
            })?;
            let tcp = tcp.into_inner();
            let Some(tls) = tls else {
                return Ok(TokioIo::new(Stream::Plain(tcp)));
            };
            let peer = tcp.peer_addr().map_err(|e| ConnectFailure::of_io(&e))?;
            let Some(name) = tls.names.get(&peer).cloned() else {
                tracing::warn!(%peer, "no TLS server name for this backend address");
                return Err(ConnectFailure::Tls);
            };
            match tokio::time::timeout(tls.handshake_timeout, tls.connector.connect(name, tcp))
                .await
            {
                Err(_) => Err(ConnectFailure::Timeout),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake with backend failed");
                    Err(ConnectFailure::Tls)
                }
                Ok(Ok(stream)) => Ok(TokioIo::new(Stream::Tls(Box::new(stream)))),
            }
        })
    }
}

/// A connection to a backend, cleartext or TLS.
pub enum Stream {
    /// Cleartext TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Stream {
    // No `HttpInfo` extra (TcpStream's own `connected()` adds one): the
    // client would copy it into every response's extensions, an allocation
    // per request that nothing here reads.
    fn connected(&self) -> Connected {
        match self {
            Self::Plain(_) => Connected::new(),
            Self::Tls(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                Connected::new().negotiated_h2()
            }
            Self::Tls(_) => Connected::new(),
        }
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
