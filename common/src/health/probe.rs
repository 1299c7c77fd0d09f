//! Active health probes: TCP connect, send/expect, UDP and HTTP.

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
    /// Connect, send one HTTP/1.1 request (`Connection: close`), healthy when
    /// the reply's status code is within `expect_status`. Only the status line
    /// is read, at most [`HTTP_STATUS_LINE_MAX`] bytes of it.
    Http {
        /// Request method (`"GET"`).
        method: String,
        /// Request target, starting with `/` (`"/healthz"`).
        path: String,
        /// `Host` header; `None` sends the backend's `ip:port`.
        host: Option<String>,
        /// Healthy status codes, inclusive (`(200, 399)`).
        expect_status: (u16, u16),
    },
}

/// Most bytes an HTTP probe reads looking for the end of the status line.
pub const HTTP_STATUS_LINE_MAX: usize = 8 * 1024;

/// Why a probe failed (debug log only).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer in time.
    #[error("probe timed out after {0:?}")]
    Timeout(Duration),
    /// Connect, write or read failed.
    #[error("probe i/o error: {0}")]
    Io(#[from] io::Error),
    /// The reply was not the expected one: another prefix, an HTTP status
    /// outside the range, or no valid HTTP status line.
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
        if let Self::Http {
            method,
            path,
            host,
            expect_status,
        } = self
        {
            let host = host.clone().unwrap_or_else(|| addr.to_string());
            return http(&mut stream, method, path, &host, *expect_status).await;
        }
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

async fn http(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    host: &str,
    (low, high): (u16, u16),
) -> Result<(), ProbeError> {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: weir-health\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    let line_end = loop {
        if let Some(end) = head.iter().position(|&b| b == b'\n') {
            break end;
        }
        if head.len() >= HTTP_STATUS_LINE_MAX {
            return Err(ProbeError::Mismatch(format!(
                "no HTTP status line in the first {HTTP_STATUS_LINE_MAX} bytes"
            )));
        }
        let room = (HTTP_STATUS_LINE_MAX - head.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Err(ProbeError::Mismatch(format!(
                "connection closed before the status line (got {})",
                shown(&head)
            )));
        }
        head.extend_from_slice(&chunk[..n]);
    };
    let line = &head[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match parse_status_line(line) {
        Some(status) if (low..=high).contains(&status) => Ok(()),
        Some(status) => Err(ProbeError::Mismatch(format!(
            "status {status}, expected {low}-{high}"
        ))),
        None => Err(ProbeError::Mismatch(format!(
            "malformed status line {}",
            shown(line)
        ))),
    }
}

/// The status code of an HTTP/1.x status line without its line end:
/// `HTTP/1.1 200 OK`, `HTTP/1.0 503` (the reason phrase may be missing).
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/")?;
    let [major, b'.', minor, b' ', rest @ ..] = rest else {
        return None;
    };
    if !major.is_ascii_digit() || !minor.is_ascii_digit() {
        return None;
    }
    let (code, reason) = match rest {
        [a, b, c] => ([*a, *b, *c], &[][..]),
        [a, b, c, b' ', reason @ ..] => ([*a, *b, *c], reason),
        _ => return None,
    };
    // The reason phrase is HTAB, SP, VCHAR or obs-text: no control bytes.
    if !code.iter().all(u8::is_ascii_digit)
        || reason
            .iter()
            .any(|&b| b != b'\t' && (b < b' ' || b == 0x7f))
    {
        return None;
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    (100..=999).contains(&status).then_some(status)
}

/// Up to 64 bytes of a reply, for the debug log.
fn shown(bytes: &[u8]) -> String {
    format!(
        "{:?}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(64)])
    )
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

    /// A loopback HTTP server answering every connection with `reply` (sent
    /// in the given pieces, then closed); the request heads it read come
    /// back on the channel.
    async fn http_server(
        reply: Vec<&'static [u8]>,
    ) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 512];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
                for piece in &reply {
                    let _ = s.write_all(piece).await;
                    let _ = s.flush().await;
                    tokio::task::yield_now().await;
                }
            }
        });
        (addr, rx)
    }

    fn get(path: &str, expect_status: (u16, u16)) -> Probe {
        Probe::Http {
            method: "GET".to_owned(),
            path: path.to_owned(),
            host: None,
            expect_status,
        }
    }

    const T: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn http_ok_status_passes_and_the_request_is_minimal() {
        let (addr, mut heads) =
            http_server(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).await;
        get("/healthz", (200, 399)).run(addr, T).await.unwrap();
        assert_eq!(
            heads.recv().await.unwrap(),
            format!(
                "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: weir-health\r\nConnection: close\r\n\r\n"
            )
        );
        let with_host = Probe::Http {
            method: "HEAD".to_owned(),
            path: "/".to_owned(),
            host: Some("app.example.com".to_owned()),
            expect_status: (200, 200),
        };
        with_host.run(addr, T).await.unwrap();
        assert_eq!(
            heads.recv().await.unwrap(),
            "HEAD / HTTP/1.1\r\nHost: app.example.com\r\nUser-Agent: weir-health\r\nConnection: close\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn http_status_outside_the_range_fails() {
        let (addr, _heads) = http_server(vec![b"HTTP/1.1 500 Internal Server Error\r\n\r\n"]).await;
        let err = get("/", (200, 399)).run(addr, T).await.unwrap_err();
        assert!(
            matches!(&err, ProbeError::Mismatch(m) if m.contains("500")),
            "{err}"
        );
        get("/", (500, 599)).run(addr, T).await.unwrap();
        assert!(get("/", (200, 499)).run(addr, T).await.is_err());
    }

    #[tokio::test]
    async fn http_garbage_reply_fails() {
        let (addr, _heads) = http_server(vec![b"SSH-2.0-OpenSSH_9.6\r\n"]).await;
        assert!(matches!(
            get("/", (200, 399)).run(addr, T).await,
            Err(ProbeError::Mismatch(_))
        ));
    }

    #[tokio::test]
    async fn http_close_before_the_status_line_fails() {
        for reply in [&b""[..], b"HTTP/1.1 20"] {
            let (addr, _heads) = http_server(vec![reply]).await;
            let result = get("/", (200, 399)).run(addr, T).await;
            assert!(
                matches!(&result, Err(ProbeError::Mismatch(m)) if m.contains("closed")),
                "{reply:?}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn http_1_0_reply_and_a_status_line_in_pieces_pass() {
        let (addr, _heads) = http_server(vec![b"HTTP/1.0 204\r\n\r\n"]).await;
        get("/", (204, 204)).run(addr, T).await.unwrap();
        let (addr, _heads) =
            http_server(vec![b"HTT", b"P/1.1 2", b"04 No Content\r", b"\n\r\n"]).await;
        get("/", (204, 204)).run(addr, T).await.unwrap();
    }

    #[tokio::test]
    async fn http_reads_at_most_8_kib_looking_for_the_status_line() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // An endless line, and the connection held open: the probe must
            // give up on the bound, not on its timeout.
            let _ = s.write_all(&[b'a'; 64 * 1024]).await;
            std::future::pending::<()>().await;
        });
        let started = std::time::Instant::now();
        let result = get("/", (200, 399))
            .run(addr, Duration::from_secs(10))
            .await;
        assert!(
            matches!(&result, Err(ProbeError::Mismatch(m)) if m.contains("8192")),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn http_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (_s, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
        });
        let result = get("/", (200, 399))
            .run(addr, Duration::from_millis(100))
            .await;
        assert!(matches!(result, Err(ProbeError::Timeout(_))), "{result:?}");
    }

    #[test]
    fn status_line_parser() {
        let cases: &[(&[u8], Option<u16>)] = &[
            (b"HTTP/1.1 200 OK", Some(200)),
            (b"HTTP/1.0 503 Service Unavailable", Some(503)),
            (b"HTTP/1.1 204", Some(204)),
            (b"HTTP/1.1 204 ", Some(204)),
            (b"HTTP/1.1 404 Not\tFound \xff", Some(404)),
            (b"HTTP/1.1 999 Odd", Some(999)),
            (b"HTTP/1.1 099 Low", None),
            (b"HTTP/1.1 20 OK", None),
            (b"HTTP/1.1 2000 OK", None),
            (b"HTTP/1.1 2x0 OK", None),
            (b"HTTP/1.1  200 OK", None),
            (b"HTTP/1.1 200OK", None),
            (b"HTTP/1.1 200 O\x00K", None),
            (b"http/1.1 200 OK", None),
            (b"HTTP/11 200 OK", None),
            (b"HTTP/x.1 200 OK", None),
            (b"HTTP/1.1", None),
            (b"ICY 200 OK", None),
            (b"", None),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse_status_line(line),
                *want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
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
