//! A TCP listener's per-client connection limits at accept:
//! `max_connections_per_client` (concurrent, by source IP) and
//! `connection_rate_per_client` (GCRA, on tokio's clock). A connection over
//! either is reset at once (SO_LINGER 0: prompt for the client, no
//! TIME_WAIT for us), counted in `weir_listener_connections_rejected_total`
//! by reason, and logged at most once per 10 s per listener, with the count
//! of the ones not logged: a flood is one line, not one per connection.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use metrics::Counter;
use tokio::time::Instant;
use weir_common::metrics as names;
use weir_common::rate::Rate;
use weir_common::rate::clients::{ClientLimits, ClientSlot, Refused};
use weir_config::Listener;

/// Clients whose rate state is kept at most (idle ones are dropped first).
const MAX_CLIENTS: usize = 1 << 18;
/// At most one log line per this long.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The per-client limits of one listener, with their counters.
#[derive(Debug)]
pub struct PerClient {
    name: String,
    limits: ClientLimits,
    origin: Instant,
    rejected: [Counter; 2],
    /// When the last line was logged, and how many rejections since.
    log: Mutex<(Option<Instant>, u64)>,
}

impl PerClient {
    /// The limits of `config`, or `None` when it sets none.
    pub fn new(config: &Listener) -> Option<Self> {
        let o = config.client_limits;
        if o.is_empty() {
            return None;
        }
        let rate = o
            .rate
            .map(|(count, period, burst)| Rate::new(count, period, burst));
        let counter = |r: Refused| metrics::counter!(names::LISTENER_REJECTED, "listener" => config.name.clone(), "reason" => r.label());
        Some(Self {
            name: config.name.clone(),
            limits: ClientLimits::new(o.max_connections, rate, MAX_CLIENTS),
            origin: Instant::now(),
            rejected: [counter(Refused::Concurrent), counter(Refused::Rate)],
            log: Mutex::new((None, 0)),
        })
    }

    /// Admits the connection `stream` from `peer`, or resets it, counts it
    /// and returns `None`. The slot must live as long as the connection.
    pub fn admit(&self, stream: &tokio::net::TcpStream, peer: SocketAddr) -> Option<ClientSlot> {
        let now = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match self.limits.admit(peer.ip(), now) {
            Ok(slot) => Some(slot),
            Err(why) => {
                self.rejected[why as usize].increment(1);
                let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
                self.log(why, peer);
                None
            }
        }
    }

    fn log(&self, why: Refused, peer: SocketAddr) {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.1 += 1;
        if log.0.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            tracing::warn!(
                listener = %self.name, client = %peer, reason = why.label(),
                rejected_since_last_log = log.1,
                "closing a client's connection at accept: over its per-client limit"
            );
            *log = (Some(Instant::now()), 0);
        }
    }
}
