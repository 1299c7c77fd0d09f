//! Fake TCP backends with the behaviours the fault scenarios need.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// What a fake backend does with each connection.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Writes `{id}\n` at once (server speaks first), then echoes every byte
    /// until EOF, then closes.
    Greet,
    /// Reads until the client half-closes, then replies `{id} got {n} bytes\n`
    /// and closes.
    ReadAllThenReply,
    /// Writes `n` bytes of a known pattern, then closes (FIN).
    WriteThenClose(usize),
    /// Writes `{id}\n`, then resets the connection (RST, SO_LINGER 0).
    GreetThenReset,
    /// Accepts and never reads or writes.
    Stall,
    /// Connection number `k` (from 0) gets `replies[k % len]` written at once, then closes.
    Cycle(Vec<&'static str>),
}

/// A running fake backend.
pub struct FakeBackend {
    /// Its address.
    pub addr: SocketAddr,
    /// Its id, as it greets.
    pub id: String,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    /// Bytes each finished connection received, in order of finishing.
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
    task: JoinHandle<()>,
}

/// The byte pattern `WriteThenClose` sends: position mod 251.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

impl FakeBackend {
    /// Starts a backend on an ephemeral loopback port.
    pub async fn start(id: &str, behaviour: Behaviour) -> FakeBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, id, behaviour)
    }

    /// Starts a backend on a given (previously used) address.
    pub async fn start_at(addr: SocketAddr, id: &str, behaviour: Behaviour) -> FakeBackend {
        let listener = TcpListener::bind(addr).await.unwrap();
        Self::serve(listener, id, behaviour)
    }

    fn serve(listener: TcpListener, id: &str, behaviour: Behaviour) -> FakeBackend {
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (id2, acc, rec) = (id.to_owned(), accepted.clone(), received.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let k = acc.fetch_add(1, Ordering::SeqCst);
                let behaviour = match &behaviour {
                    Behaviour::Cycle(replies) => Behaviour::Cycle(vec![replies[k % replies.len()]]),
                    other => other.clone(),
                };
                let (id, rec) = (id2.clone(), rec.clone());
                tokio::spawn(async move { handle(stream, &id, &behaviour, &rec).await });
            }
        });
        FakeBackend {
            addr,
            id: id.to_owned(),
            accepted,
            received,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Stops accepting: the port is closed (connections are then refused).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for FakeBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    mut stream: TcpStream,
    id: &str,
    behaviour: &Behaviour,
    received: &Mutex<Vec<Vec<u8>>>,
) {
    match behaviour {
        Behaviour::Greet => {
            if stream
                .write_all(format!("{id}\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            let mut got = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        got.extend_from_slice(&buf[..n]);
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            received.lock().await.push(got);
        }
        Behaviour::ReadAllThenReply => {
            let mut got = Vec::new();
            if stream.read_to_end(&mut got).await.is_err() {
                return;
            }
            let _ = stream
                .write_all(format!("{id} got {} bytes\n", got.len()).as_bytes())
                .await;
            received.lock().await.push(got);
        }
        Behaviour::WriteThenClose(n) => {
            let _ = stream.write_all(&pattern(*n)).await;
        }
        Behaviour::GreetThenReset => {
            let _ = stream.write_all(format!("{id}\n").as_bytes()).await;
            let _ = stream.flush().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
        Behaviour::Cycle(reply) => {
            let _ = stream.write_all(reply[0].as_bytes()).await;
        }
        Behaviour::Stall => {
            let mut buf = [0u8; 1];
            // Hold the connection open until the peer goes away.
            let _ = tokio::time::timeout(Duration::from_secs(120), async {
                std::future::pending::<()>().await;
                let _ = stream.read(&mut buf).await;
            })
            .await;
        }
    }
}

/// A loopback address where nothing listens (connections are refused).
///
/// The port stays bound, never listening, for the rest of the test run: a
/// port merely freed could be handed to another test's listener running in
/// parallel, which would then answer instead of refusing. (The socket has
/// no SO_REUSEADDR, so no other socket can bind the port meanwhile.)
pub fn refused_addr() -> SocketAddr {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    // Held for the process's life (a handful per run).
    std::mem::forget(socket);
    addr
}

/// A SYN black hole: a listening socket with a tiny backlog, filled by
/// connections nobody accepts, so further connection attempts hang until the
/// client's connect timeout. Keep the returned value alive while in use.
pub struct BlackHole {
    /// The address whose connects hang.
    pub addr: SocketAddr,
    _listener: Socket,
    _fillers: Vec<std::net::TcpStream>,
}

impl BlackHole {
    /// Creates the black hole and verifies it swallows a SYN.
    pub fn new() -> BlackHole {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        listener.bind(&any.into()).unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        // With backlog 0 the accept queue holds one; fill it (and a spare).
        for _ in 0..4 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => fillers.push(s),
                Err(_) => break,
            }
        }
        BlackHole {
            addr,
            _listener: listener,
            _fillers: fillers,
        }
    }
}
