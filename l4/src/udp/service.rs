//! The UDP proxy service: the async shell around [`FlowTable`].
//!
//! Each listener address gets several sockets with SO_REUSEPORT; the kernel
//! keeps each client on one of them, so every socket owns its flow table
//! and no table is shared between sockets. A datagram from a new client
//! picks a backend with the pool's selector (Maglev on the client IP by
//! default) and opens a *connected* upstream socket for the flow; a small
//! task per flow relays the backend's replies to the client from the
//! listener's address. No flow holds a buffer: receive buffers are per
//! socket loop and per worker thread.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use metrics::{Counter, Gauge};
use tokio::net::UdpSocket;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;
use weir_common::backend::Backend;
use weir_common::health::{self, Source};
use weir_common::listener::bind_udp;
use weir_common::metrics as names;
use weir_common::shutdown::Shutdown;

use super::flow_table::{Flow, FlowTable, Reply};
use crate::tcp::BindError;
use weir_common::pool::PoolRuntime;

/// Largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;
/// How long a closed flow's socket keeps counting late replies before it closes.
const LINGER: Duration = Duration::from_secs(1);
/// Receive buffer: one more byte than any UDP payload, so nothing truncates.
const BUFFER: usize = 65_536;

/// Settings of one UDP listener.
#[derive(Debug, Clone)]
pub struct UdpSettings {
    /// Listener name (metric label).
    pub name: String,
    /// Addresses to bind.
    pub bind: Vec<SocketAddr>,
    /// SO_REUSEPORT sockets per address.
    pub sockets_per_address: usize,
    /// A flow idle this long is closed.
    pub idle_timeout: Duration,
    /// Close a flow after this many replies (DNS: 1).
    pub responses: Option<u32>,
    /// Most flows open at once, over all the listener's sockets.
    pub max_flows: usize,
    /// Larger datagrams are dropped and counted.
    pub max_datagram_size: usize,
}

/// Why a datagram was dropped (metric label order).
#[derive(Debug, Clone, Copy)]
enum DropReason {
    NoBackend = 0,
    Oversize,
    SendError,
    SocketError,
    FlowClosed,
}

const DROP_LABELS: [&str; 5] = [
    "no_backend",
    "oversize",
    "send_error",
    "socket_error",
    "flow_closed",
];

/// Why a flow closed (metric label order).
#[derive(Debug, Clone, Copy)]
enum Close {
    Idle = 0,
    Responses,
    Evicted,
    BackendDown,
    Refused,
    Shutdown,
}

const CLOSE_LABELS: [&str; 6] = [
    "idle",
    "responses",
    "evicted",
    "backend_down",
    "refused",
    "shutdown",
];

struct Metrics {
    datagrams: [Counter; 2],
    bytes: [Counter; 2],
    drops: [Counter; 5],
    closed: [Counter; 6],
    active: Gauge,
    opened: Counter,
    evicted: Counter,
    /// Per backend index: flows opened, datagrams up, datagrams down.
    backends: Vec<[Counter; 3]>,
}

impl Metrics {
    fn new(name: &str, pool: &PoolRuntime) -> Self {
        let l = || ("listener", name.to_owned());
        let dir = |metric: &'static str, d: &'static str| metrics::counter!(metric, "listener" => name.to_owned(), "direction" => d);
        let backends = pool
            .selector
            .load()
            .backends()
            .backends()
            .iter()
            .map(|b| {
                let (p, n) = (pool.name.to_string(), b.name.to_string());
                [
                    metrics::counter!(names::BACKEND_FLOWS, "pool" => p.clone(), "backend" => n.clone()),
                    metrics::counter!(names::BACKEND_DATAGRAMS, "pool" => p.clone(), "backend" => n.clone(), "direction" => "upstream"),
                    metrics::counter!(names::BACKEND_DATAGRAMS, "pool" => p, "backend" => n, "direction" => "downstream"),
                ]
            })
            .collect();
        Self {
            datagrams: [dir(names::LISTENER_DATAGRAMS, "upstream"), dir(names::LISTENER_DATAGRAMS, "downstream")],
            bytes: [dir(names::LISTENER_BYTES, "upstream"), dir(names::LISTENER_BYTES, "downstream")],
            drops: DROP_LABELS.map(|r| metrics::counter!(names::UDP_DROPS, "listener" => name.to_owned(), "reason" => r)),
            closed: CLOSE_LABELS
                .map(|r| metrics::counter!(names::UDP_FLOWS_CLOSED, "listener" => name.to_owned(), "reason" => r)),
            active: metrics::gauge!(names::UDP_FLOWS_ACTIVE, &[l()]),
            opened: metrics::counter!(names::UDP_FLOWS_OPENED, &[l()]),
            evicted: metrics::counter!(names::UDP_FLOWS_EVICTED, &[l()]),
            backends,
        }
    }

    fn dropped(&self, why: DropReason) {
        self.drops[why as usize].increment(1);
    }

    fn backend(&self, index: usize, which: usize) {
        if let Some(c) = self.backends.get(index) {
            c[which].increment(1);
        }
    }
}

/// Signals between a flow's owner (the table) and its reply task.
#[derive(Debug, Default)]
struct Control {
    closed: AtomicBool,
    /// The backend refused (ICMP port unreachable): re-pick on the next datagram.
    refused: AtomicBool,
    notify: Notify,
}

/// What the table keeps per flow.
struct FlowState {
    id: u64,
    index: usize,
    backend: Backend,
    upstream: Arc<UdpSocket>,
    control: Arc<Control>,
}

impl FlowState {
    /// A flow stays on its backend while the backend is healthy (draining
    /// only stops *new* flows) and has not refused.
    fn usable(&self) -> bool {
        self.backend.state.is_healthy() && !self.control.refused.load(Ordering::Relaxed)
    }
}

/// Everything one listener socket's loop and its flows' tasks share.
struct SocketShared {
    listener: Arc<UdpSocket>,
    table: Mutex<FlowTable<FlowState>>,
    pool: Arc<PoolRuntime>,
    metrics: Arc<Metrics>,
    max_datagram: usize,
    next_id: AtomicU64,
    /// Closed flows whose sockets still count late replies, and the cap.
    lingering: AtomicUsize,
    max_lingering: usize,
    shutdown: Shutdown,
}

impl SocketShared {
    fn table(&self) -> MutexGuard<'_, FlowTable<FlowState>> {
        match self.table.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn close(&self, flow: Flow<FlowState>, why: Close) {
        flow.state.control.closed.store(true, Ordering::Relaxed);
        flow.state.control.notify.notify_one();
        self.metrics.closed[why as usize].increment(1);
        self.metrics.active.decrement(1.0);
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// A bound UDP listener.
#[derive(Debug)]
pub struct UdpService {
    settings: UdpSettings,
    sockets: Vec<std::net::UdpSocket>,
    pool: Arc<PoolRuntime>,
}

impl UdpService {
    /// Binds `sockets_per_address` sockets on every address (for port 0, the
    /// first socket's port is reused for the rest).
    pub fn bind(settings: &UdpSettings, pool: Arc<PoolRuntime>) -> Result<Self, BindError> {
        let mut sockets = Vec::new();
        for &addr in &settings.bind {
            let err = |addr, source| BindError {
                listener: settings.name.clone(),
                addr,
                source,
            };
            let first = bind_udp(addr).map_err(|e| err(addr, e))?;
            let actual = first.local_addr().map_err(|e| err(addr, e))?;
            sockets.push(first);
            for _ in 1..settings.sockets_per_address.max(1) {
                sockets.push(bind_udp(actual).map_err(|e| err(actual, e))?);
            }
        }
        Ok(Self {
            settings: settings.clone(),
            sockets,
            pool,
        })
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The bound addresses (one per configured address).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        weir_common::listener::distinct_addrs(&self.sockets, std::net::UdpSocket::local_addr)
    }

    /// Serves until `shutdown`, then closes every flow. Socket `i` is
    /// served by worker `i % workers.len()`, where its flows then live.
    pub async fn serve(self, shutdown: Shutdown, workers: Vec<Handle>) -> io::Result<()> {
        let metrics = Arc::new(Metrics::new(&self.settings.name, &self.pool));
        let per_socket = (self.settings.max_flows / self.sockets.len().max(1)).max(1);
        let settings = self.settings;
        let pool = self.pool;
        weir_common::workers::serve_each(&workers, self.sockets, |socket| {
            let (pool, metrics, shutdown) =
                (Arc::clone(&pool), Arc::clone(&metrics), shutdown.clone());
            let (idle_timeout, responses) = (settings.idle_timeout, settings.responses);
            let max_datagram = settings.max_datagram_size;
            async move {
                let shared = Arc::new(SocketShared {
                    // Registered with the worker's own reactor.
                    listener: Arc::new(UdpSocket::from_std(socket)?),
                    table: Mutex::new(FlowTable::new(per_socket, idle_timeout, responses)),
                    pool,
                    metrics,
                    max_datagram,
                    next_id: AtomicU64::new(0),
                    lingering: AtomicUsize::new(0),
                    max_lingering: (per_socket / 8).max(16),
                    shutdown,
                });
                socket_loop(shared).await;
                Ok(())
            }
        })
        .await
    }
}

async fn socket_loop(shared: Arc<SocketShared>) {
    let mut buf = vec![0u8; BUFFER];
    // Both futures live across iterations: one shutdown registration and one
    // timer per socket, not one of each per datagram.
    let stop = shared.shutdown.wait();
    tokio::pin!(stop);
    let timer = tokio::time::sleep_until(far());
    tokio::pin!(timer);
    // While the timer is set for a flow, it is never later than the table's
    // next expiry: that only moves later while flows exist (expiring, closing
    // or touching the least recently used flow, or adding a newer one), so
    // the timer is re-armed only when it fires, or when it was idle and a
    // flow appeared. A flow is never expired late; a timer that fires early
    // finds nothing idle and is re-armed.
    let mut armed = false;
    loop {
        if !armed {
            if let Some(at) = shared.table().next_expiry() {
                timer.as_mut().reset(Instant::from_std(at));
                armed = true;
            }
        }
        tokio::select! {
            r = shared.listener.recv_from(&mut buf) => match r {
                Ok((n, client)) => on_datagram(&shared, &buf[..n], client),
                // Errors on an unconnected socket are per-datagram; carry on.
                Err(e) => tracing::debug!(error = %e, "udp receive failed"),
            },
            () = &mut timer => {
                let (ended, next) = {
                    let mut table = shared.table();
                    (table.expire(now()), table.next_expiry())
                };
                for (_, flow) in ended {
                    shared.close(flow, Close::Idle);
                }
                armed = next.is_some();
                timer.as_mut().reset(next.map_or_else(far, Instant::from_std));
            }
            () = &mut stop => break,
        }
    }
    let all = shared.table().drain();
    for (_, flow) in all {
        shared.close(flow, Close::Shutdown);
    }
}

/// A deadline for a timer with nothing to wait for.
fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn on_datagram(shared: &Arc<SocketShared>, data: &[u8], client: SocketAddr) {
    let m = &shared.metrics;
    if data.len() > shared.max_datagram {
        m.dropped(DropReason::Oversize);
        return;
    }
    let t = now();
    let mut avoid = None;
    let existing = {
        let mut table = shared.table();
        match table.get(client, t) {
            Some(flow) if flow.state.usable() => {
                Some((Arc::clone(&flow.state.upstream), flow.state.index))
            }
            Some(_) => {
                // Its backend went down or refused: the flow moves on.
                if let Some(old) = table.remove(&client) {
                    let refused = old.state.control.refused.load(Ordering::Relaxed);
                    if refused {
                        avoid = Some(old.state.index);
                    }
                    shared.close(
                        old,
                        if refused {
                            Close::Refused
                        } else {
                            Close::BackendDown
                        },
                    );
                }
                None
            }
            None => None,
        }
    };
    let (mut upstream, mut index) = match existing {
        Some(found) => found,
        None => match open_flow(shared, client, avoid, t) {
            Some(opened) => opened,
            None => return,
        },
    };
    // A direct send: UDP sends only block when the socket buffer is full,
    // and tokio's write readiness is unknown for a socket created just now.
    let mut result = socket2::SockRef::from(&*upstream).send(data);
    if matches!(&result, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused) {
        // An ICMP port unreachable from an earlier datagram surfaced here:
        // count it against the backend and resend on a flow elsewhere.
        let refused = shared.table().remove(&client);
        if let Some(old) = refused {
            backend_refused(shared, &old.state.backend);
            let avoid = Some(old.state.index);
            shared.close(old, Close::Refused);
            if let Some((u, i)) = open_flow(shared, client, avoid, t) {
                (upstream, index) = (u, i);
                result = socket2::SockRef::from(&*upstream).send(data);
            }
        }
    }
    match result {
        Ok(_) => {
            m.datagrams[0].increment(1);
            m.bytes[0].increment(data.len() as u64);
            m.backend(index, 1);
        }
        Err(e) => {
            tracing::debug!(error = %e, "udp send to backend failed");
            m.dropped(DropReason::SendError);
        }
    }
}

/// Passive health: an ICMP port unreachable counts against the backend.
fn backend_refused(shared: &SocketShared, backend: &Backend) {
    if shared.pool.passive {
        health::report(&shared.pool.name, backend, false, Source::Traffic);
    }
}

fn connect_upstream(backend: SocketAddr) -> io::Result<UdpSocket> {
    // Two syscalls: the socket is created non-blocking (and close-on-exec),
    // and connect(2) binds it to an ephemeral port itself, as an explicit
    // bind to the wildcard address and port 0 would.
    #[cfg(target_os = "linux")]
    let ty = socket2::Type::DGRAM.nonblocking();
    #[cfg(not(target_os = "linux"))]
    let ty = socket2::Type::DGRAM;
    let socket = socket2::Socket::new(socket2::Domain::for_address(backend), ty, None)?;
    #[cfg(not(target_os = "linux"))]
    socket.set_nonblocking(true)?;
    socket.connect(&backend.into())?;
    UdpSocket::from_std(socket.into())
}

fn open_flow(
    shared: &Arc<SocketShared>,
    client: SocketAddr,
    avoid: Option<usize>,
    t: std::time::Instant,
) -> Option<(Arc<UdpSocket>, usize)> {
    let m = &shared.metrics;
    let selector = shared.pool.selector.load();
    let candidates = selector.candidates(shared.pool.hash_key.key(client), 3);
    let pick = candidates
        .as_slice()
        .iter()
        .copied()
        .find(|&i| Some(i as usize) != avoid)
        .or_else(|| candidates.first());
    let Some((index, backend)) =
        pick.and_then(|i| selector.backend(i).map(|b| (i as usize, b.clone())))
    else {
        m.dropped(DropReason::NoBackend);
        return None;
    };
    let upstream = match connect_upstream(backend.addr) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::debug!(error = %e, backend = %backend.name, "cannot open an upstream udp socket");
            m.dropped(DropReason::SocketError);
            return None;
        }
    };
    let control = Arc::new(Control::default());
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(reply_task(
        Arc::clone(shared),
        client,
        id,
        Arc::clone(&upstream),
        Arc::clone(&control),
        backend.clone(),
        index,
    ));
    let state = FlowState {
        id,
        index,
        backend,
        upstream: Arc::clone(&upstream),
        control,
    };
    let displaced = shared.table().insert(client, state, t);
    m.opened.increment(1);
    m.active.increment(1.0);
    m.backend(index, 0);
    if let Some((_, old)) = displaced {
        m.evicted.increment(1);
        shared.close(old, Close::Evicted);
    }
    Some((upstream, index))
}

/// One of the capped places for a closed flow's socket to linger.
struct LingerSlot<'a>(&'a AtomicUsize);

impl<'a> LingerSlot<'a> {
    fn take(shared: &'a SocketShared) -> Option<Self> {
        if shared.lingering.fetch_add(1, Ordering::Relaxed) < shared.max_lingering {
            Some(Self(&shared.lingering))
        } else {
            shared.lingering.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }
}

impl Drop for LingerSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

thread_local! {
    // One receive buffer per worker thread for every flow's replies.
    static REPLY_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0u8; BUFFER]);
}

/// What one receive on a flow's socket produced.
enum Received {
    Relayed,
    Empty,
    Refused,
    Failed,
}

async fn reply_task(
    shared: Arc<SocketShared>,
    client: SocketAddr,
    id: u64,
    upstream: Arc<UdpSocket>,
    control: Arc<Control>,
    backend: Backend,
    index: usize,
) {
    // Registered once for the task's life, not once per reply.
    let stop = shared.shutdown.wait();
    tokio::pin!(stop);
    let closed = control.notify.notified();
    tokio::pin!(closed);
    let relay = || relay_all(&shared, &upstream, client, id, &control, &backend, index);
    // Open: relay replies until the flow is closed.
    loop {
        tokio::select! {
            // Polled on every wake-up of the task: the work first, and no
            // random branch order to draw.
            biased;
            ready = upstream.readable() => {
                if ready.is_err() {
                    control.refused.store(true, Ordering::Relaxed);
                    return;
                }
                if relay().is_break() {
                    return;
                }
            }
            () = &mut closed => break,
            () = &mut stop => return,
        }
    }
    // Closed: linger, counting late replies as drops. Lingering sockets sit
    // outside `max_flows`; a capped number may linger, so a flood of
    // evictions cannot grow descriptors past the bound. The rest close at
    // once. The slot is held until the task ends, whichever way.
    let Some(_slot) = LingerSlot::take(&shared) else {
        return;
    };
    let linger = tokio::time::sleep(LINGER);
    tokio::pin!(linger);
    loop {
        tokio::select! {
            ready = upstream.readable() => {
                if ready.is_err() || relay().is_break() {
                    return;
                }
            }
            () = &mut linger => return,
            () = &mut stop => return,
        }
    }
}

/// Relays every reply waiting on the flow's socket; `Break` ends the task.
fn relay_all(
    shared: &SocketShared,
    upstream: &UdpSocket,
    client: SocketAddr,
    id: u64,
    control: &Control,
    backend: &Backend,
    index: usize,
) -> ControlFlow<()> {
    loop {
        match receive_one(shared, upstream, client, id, control, index) {
            Received::Relayed => {}
            Received::Empty => return ControlFlow::Continue(()),
            Received::Refused => {
                backend_refused(shared, backend);
                control.refused.store(true, Ordering::Relaxed);
                return ControlFlow::Break(());
            }
            Received::Failed => {
                // The socket is dead to us (e.g. an ICMP host unreachable):
                // with nothing reading replies the flow would be a black
                // hole, so the next datagram re-picks, like after a refusal.
                control.refused.store(true, Ordering::Relaxed);
                return ControlFlow::Break(());
            }
        }
    }
}

fn receive_one(
    shared: &SocketShared,
    upstream: &UdpSocket,
    client: SocketAddr,
    id: u64,
    control: &Control,
    index: usize,
) -> Received {
    REPLY_BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        let n = match upstream.try_recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Received::Empty,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Received::Refused,
            Err(e) => {
                tracing::debug!(error = %e, "udp receive from backend failed");
                return Received::Failed;
            }
        };
        let m = &shared.metrics;
        m.backend(index, 2);
        if control.closed.load(Ordering::Relaxed) {
            m.dropped(DropReason::FlowClosed);
            return Received::Relayed;
        }
        let (verdict, finished) = {
            let mut table = shared.table();
            match table.peek(&client) {
                Some(flow) if flow.state.id == id => table.on_reply(client, now()),
                _ => (Reply::NoFlow, None),
            }
        };
        if verdict == Reply::NoFlow {
            m.dropped(DropReason::FlowClosed);
            return Received::Relayed;
        }
        match socket2::SockRef::from(&*shared.listener).send_to(&buf[..n], &client.into()) {
            Ok(_) => {
                m.datagrams[1].increment(1);
                m.bytes[1].increment(n as u64);
            }
            Err(_) => m.dropped(DropReason::SendError),
        }
        if let Some(flow) = finished {
            shared.close(flow, Close::Responses);
        }
        Received::Relayed
    })
}
