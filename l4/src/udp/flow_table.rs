//! The UDP flow table: which client is talking to which upstream socket.
//!
//! Sans-io (house rule 3): it holds no sockets and reads no clock. Callers
//! pass `now`, and get back the flows that ended so they can close them. A
//! flow is keyed by the client's address; it lives until it has been idle
//! for `idle_timeout`, until it has seen `responses` replies for every
//! datagram the client sent on it (DNS-style request/response; nginx's
//! `proxy_responses`, so a client that pipelines queries from one port
//! loses none), or until it is the least recently used flow when a new one
//! needs room (`max_flows` bounds memory). Invariants are asserted
//! in debug builds after every change.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One flow and the caller's state for it (its upstream socket, backend…).
#[derive(Debug)]
pub struct Flow<T> {
    /// The caller's per-flow state.
    pub state: T,
    /// When it was last used (either direction).
    pub last_seen: Instant,
    /// Datagrams from the client so far.
    pub requests: u32,
    /// Replies seen so far.
    pub replies: u32,
    tick: u64,
}

/// What to do with a reply from the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Forward it; the flow lives on.
    Forward,
    /// Forward it; the flow has had `responses` replies per request and is now removed.
    ForwardAndClose,
    /// The flow is gone: drop the reply (and count it).
    NoFlow,
}

/// Flows of one listener socket.
#[derive(Debug)]
pub struct FlowTable<T> {
    flows: HashMap<SocketAddr, Flow<T>>,
    /// Recency order: tick → client. The first entry is the least recently used.
    lru: BTreeMap<u64, SocketAddr>,
    tick: u64,
    last_now: Option<Instant>,
    max_flows: usize,
    idle_timeout: Duration,
    responses: Option<u32>,
}

impl<T> FlowTable<T> {
    /// An empty table. `max_flows` is at least 1.
    pub fn new(max_flows: usize, idle_timeout: Duration, responses: Option<u32>) -> Self {
        Self {
            flows: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            last_now: None,
            max_flows: max_flows.max(1),
            idle_timeout,
            responses,
        }
    }

    /// Flows open now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True when no flow is open.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The most flows the table holds.
    pub fn max_flows(&self) -> usize {
        self.max_flows
    }

    /// Time never runs backwards inside the table, whatever callers pass.
    fn clamp(&mut self, now: Instant) -> Instant {
        let now = match self.last_now {
            Some(last) if last > now => last,
            _ => now,
        };
        self.last_now = Some(now);
        now
    }

    fn touch(&mut self, client: SocketAddr, now: Instant) -> Option<&mut Flow<T>> {
        let flow = self.flows.get_mut(&client)?;
        self.lru.remove(&flow.tick);
        self.tick += 1;
        flow.tick = self.tick;
        flow.last_seen = now;
        self.lru.insert(self.tick, client);
        Some(flow)
    }

    /// A datagram from `client`: its flow, marked as used now and counted.
    pub fn get(&mut self, client: SocketAddr, now: Instant) -> Option<&mut Flow<T>> {
        let now = self.clamp(now);
        let flow = self.touch(client, now)?;
        flow.requests = flow.requests.saturating_add(1);
        Some(flow)
    }

    /// The flow of `client` without touching it.
    pub fn peek(&self, client: &SocketAddr) -> Option<&Flow<T>> {
        self.flows.get(client)
    }

    /// Opens a flow for `client`, for the datagram it just sent. When the table is full the least recently
    /// used flow is evicted and returned so the caller can close it. An
    /// existing flow of the same client is replaced and returned.
    pub fn insert(
        &mut self,
        client: SocketAddr,
        state: T,
        now: Instant,
    ) -> Option<(SocketAddr, Flow<T>)> {
        let now = self.clamp(now);
        let displaced = match self.remove(&client) {
            Some(old) => Some((client, old)),
            None if self.flows.len() >= self.max_flows => self.pop_lru(),
            None => None,
        };
        self.tick += 1;
        self.lru.insert(self.tick, client);
        self.flows.insert(
            client,
            Flow {
                state,
                last_seen: now,
                requests: 1,
                replies: 0,
                tick: self.tick,
            },
        );
        self.check_invariants();
        displaced
    }

    fn pop_lru(&mut self) -> Option<(SocketAddr, Flow<T>)> {
        let (_, client) = self.lru.pop_first()?;
        self.flows.remove(&client).map(|f| (client, f))
    }

    /// Removes the flow of `client`.
    pub fn remove(&mut self, client: &SocketAddr) -> Option<Flow<T>> {
        let flow = self.flows.remove(client)?;
        self.lru.remove(&flow.tick);
        self.check_invariants();
        Some(flow)
    }

    /// Accounts one reply to `client`. With `ForwardAndClose` the flow has
    /// been removed and is returned for closing.
    pub fn on_reply(&mut self, client: SocketAddr, now: Instant) -> (Reply, Option<Flow<T>>) {
        let now = self.clamp(now);
        let limit = self.responses;
        let Some(flow) = self.touch(client, now) else {
            return (Reply::NoFlow, None);
        };
        flow.replies = flow.replies.saturating_add(1);
        if limit.is_some_and(|n| u64::from(flow.replies) >= u64::from(n) * u64::from(flow.requests))
        {
            let flow = self.remove(&client);
            return (Reply::ForwardAndClose, flow);
        }
        (Reply::Forward, None)
    }

    /// Removes and returns every flow idle for `idle_timeout` or longer.
    pub fn expire(&mut self, now: Instant) -> Vec<(SocketAddr, Flow<T>)> {
        let now = self.clamp(now);
        let mut ended = Vec::new();
        while let Some((_, client)) = self.lru.first_key_value() {
            let client = *client;
            let idle = self
                .flows
                .get(&client)
                .is_some_and(|f| now.saturating_duration_since(f.last_seen) >= self.idle_timeout);
            if !idle {
                break;
            }
            if let Some(flow) = self.pop_lru() {
                ended.push(flow);
            }
        }
        self.check_invariants();
        ended
    }

    /// When the next flow would expire if nothing happens (for the timer).
    pub fn next_expiry(&self) -> Option<Instant> {
        let (_, client) = self.lru.first_key_value()?;
        self.flows
            .get(client)
            .map(|f| f.last_seen + self.idle_timeout)
    }

    /// Removes every flow (shutdown).
    pub fn drain(&mut self) -> Vec<(SocketAddr, Flow<T>)> {
        self.lru.clear();
        self.flows.drain().collect()
    }

    /// Asserts the table's invariants (debug builds; always in tests).
    pub fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        assert!(
            self.flows.len() <= self.max_flows,
            "{} flows over max {}",
            self.flows.len(),
            self.max_flows
        );
        assert_eq!(
            self.flows.len(),
            self.lru.len(),
            "flow map and recency list differ"
        );
        let mut last_seen: Option<Instant> = None;
        for (tick, client) in &self.lru {
            let flow = self.flows.get(client);
            assert!(
                flow.is_some_and(|f| f.tick == *tick),
                "recency entry {tick} for {client} is stale"
            );
            if let Some(f) = flow {
                assert!(
                    last_seen.is_none_or(|l| l <= f.last_seen),
                    "recency order disagrees with last_seen"
                );
                last_seen = Some(f.last_seen);
                assert!(
                    self.responses.is_none_or(|n| u64::from(f.replies) < u64::from(n) * u64::from(f.requests)),
                    "flow kept past its responses"
                );
            }
        }
    }
}
