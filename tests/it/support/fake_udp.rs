//! Fake UDP backends that answer with their id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A UDP backend. For each datagram it replies:
/// - `sleep:<ms>:<text>` → `{id}:<text>` after the delay;
/// - `empty-reply` → a zero-length datagram;
/// - `twice` → two replies `{id}:1` and `{id}:2`;
/// - anything over 1000 bytes → the same bytes (echo);
/// - anything else → `{id}:<payload>`.
pub struct FakeUdp {
    /// Its address.
    pub addr: SocketAddr,
    /// Datagrams received.
    pub received: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FakeUdp {
    /// Starts a backend on an ephemeral loopback port.
    pub async fn start(id: &str) -> FakeUdp {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Self::serve(socket, id)
    }

    /// Starts a backend on a given address.
    pub async fn start_at(addr: SocketAddr, id: &str) -> FakeUdp {
        let socket = UdpSocket::bind(addr).await.unwrap();
        Self::serve(socket, id)
    }

    fn serve(socket: UdpSocket, id: &str) -> FakeUdp {
        let addr = socket.local_addr().unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let (count, id) = (received.clone(), id.to_owned());
        let socket = Arc::new(socket);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let data = buf[..n].to_vec();
                let (socket, id) = (socket.clone(), id.clone());
                tokio::spawn(async move { answer(&socket, &id, &data, from).await });
            }
        });
        FakeUdp {
            addr,
            received,
            task,
        }
    }

    /// Datagrams received so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    /// Closes the socket: datagrams to it now get ICMP port unreachable.
    pub async fn stop(mut self) {
        self.task.abort();
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }
}

impl Drop for FakeUdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(socket: &UdpSocket, id: &str, data: &[u8], to: SocketAddr) {
    let text = String::from_utf8_lossy(data);
    if data.len() > 1000 {
        let _ = socket.send_to(data, to).await;
    } else if text == "empty-reply" {
        let _ = socket.send_to(&[], to).await;
    } else if text == "twice" {
        let _ = socket.send_to(format!("{id}:1").as_bytes(), to).await;
        let _ = socket.send_to(format!("{id}:2").as_bytes(), to).await;
    } else if let Some(rest) = text.strip_prefix("sleep:") {
        let (ms, msg) = rest.split_once(':').unwrap_or((rest, ""));
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        let _ = socket.send_to(format!("{id}:{msg}").as_bytes(), to).await;
    } else {
        let _ = socket.send_to(format!("{id}:{text}").as_bytes(), to).await;
    }
}

/// A client socket on loopback.
pub async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// Sends `msg` to `to` and waits (bounded) for one reply.
pub async fn ask(c: &UdpSocket, to: SocketAddr, msg: &[u8]) -> Vec<u8> {
    c.send_to(msg, to).await.unwrap();
    recv(c, Duration::from_secs(5))
        .await
        .expect("a reply within 5 s")
}

/// One datagram, or None after `within`.
pub async fn recv(c: &UdpSocket, within: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65_536];
    match tokio::time::timeout(within, c.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// The id part of a `{id}:…` reply.
pub fn id_of(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply)
        .split(':')
        .next()
        .unwrap_or("")
        .to_owned()
}
