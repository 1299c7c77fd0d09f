//! Active health probes: TCP connect, and send/expect.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Healthy when a TCP connection is established.
    Tcp,
    /// Connect, send `send`, healthy when the reply starts with `expect`.
    SendExpect {
        /// Bytes written after connecting (may be empty: server speaks first).
        send: Vec<u8>,
        /// The reply must start with these bytes.
        expect: Vec<u8>,
    },
    /// Send one UDP datagram `send`; healthy when a reply datagram starts
    /// with `expect`. An ICMP port unreachable fails at once.
    Udp {
        /// The datagram to send (e.g. a DNS query).
        send: Vec<u8>,
        /// The reply must start with these bytes.
        expect: Vec<u8>,
    },
}

/// Why a probe failed (debug log only).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer in time.
    #[error("probe timed out after {0:?}")]
    Timeout(Duration),
    /// Connect, write or read failed.
    #[error("probe i/o error: {0}")]
    Io(#[from] io::Error),
    /// The reply did not start with the expected bytes.
    #[error("unexpected reply {0:?}")]
    Mismatch(String),
}

impl Probe {
    /// Runs the probe against `addr`, bounded by `timeout` as a whole.
    pub async fn run(&self, addr: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
        match tokio::time::timeout(timeout, self.run_unbounded(addr)).await {
            Ok(result) => result,
            Err(_) => Err(ProbeError::Timeout(timeout)),
        }
    }

    async fn run_unbounded(&self, addr: SocketAddr) -> Result<(), ProbeError> {
        if let Self::Udp { send, expect } = self {
            return udp(addr, send, expect).await;
        }
        let mut stream = TcpStream::connect(addr).await?;
        let Self::SendExpect { send, expect } = self else {
            return Ok(());
        };
        if !send.is_empty() {
            stream.write_all(send).await?;
        }
        let mut reply = vec![0u8; expect.len()];
        let mut got = 0;
        while got < reply.len() {
            let n = stream.read(&mut reply[got..]).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if reply[..got] == expect[..] {
            Ok(())
        } else {
            Err(ProbeError::Mismatch(
                String::from_utf8_lossy(&reply[..got]).into_owned(),
            ))
        }
    }
}

async fn udp(addr: SocketAddr, send: &[u8], expect: &[u8]) -> Result<(), ProbeError> {
    let local: SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse()
    } else {
        "0.0.0.0:0".parse()
    }
    .map_err(|_| ProbeError::Io(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(addr).await?;
    socket.send(send).await?;
    let mut reply = vec![0u8; 65_536];
    let n = socket.recv(&mut reply).await?;
    if reply[..n].starts_with(expect) {
        Ok(())
    } else {
        let shown = &reply[..n.min(expect.len().max(16))];
        Err(ProbeError::Mismatch(
            String::from_utf8_lossy(shown).into_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn send_expect_matches_prefix_only() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 6];
                let _ = s.read_exact(&mut buf).await;
                let _ = s.write_all(b"+PONG\r\n").await;
            }
        });
        let ok = Probe::SendExpect {
            send: b"PING\r\n".to_vec(),
            expect: b"+PONG".to_vec(),
        };
        ok.run(addr, Duration::from_secs(2)).await.unwrap();
        let bad = Probe::SendExpect {
            send: b"PING\r\n".to_vec(),
            expect: b"-ERR".to_vec(),
        };
        assert!(matches!(
            bad.run(addr, Duration::from_secs(2)).await,
            Err(ProbeError::Mismatch(_))
        ));
    }

    #[tokio::test]
    async fn udp_probe_matches_reply_prefix() {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                let (n, from) = server.recv_from(&mut buf).await.unwrap();
                let mut reply = b"ok:".to_vec();
                reply.extend_from_slice(&buf[..n]);
                server.send_to(&reply, from).await.unwrap();
            }
        });
        let ok = Probe::Udp {
            send: b"x".to_vec(),
            expect: b"ok:x".to_vec(),
        };
        ok.run(addr, Duration::from_secs(2)).await.unwrap();
        let bad = Probe::Udp {
            send: b"x".to_vec(),
            expect: b"no".to_vec(),
        };
        assert!(bad.run(addr, Duration::from_secs(2)).await.is_err());
        // A closed UDP port answers with ICMP port unreachable: fails fast.
        let closed = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let started = std::time::Instant::now();
        assert!(ok.run(closed, Duration::from_secs(5)).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[tokio::test]
    async fn closed_port_fails() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(Probe::Tcp.run(port, Duration::from_secs(2)).await.is_err());
    }
}
