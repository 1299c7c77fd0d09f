//! The raw configuration: serde types that mirror the TOML file.
//!
//! These doc comments are the configuration reference (docs/configuration.md
//! repeats them, and a test keeps the two in step). Every key is optional
//! unless marked *required*; an unknown key is an error. Values that need
//! checking (addresses, durations, names of algorithms) stay strings here so
//! that validation can report every bad value at once with its field path.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[admin]`: the admin listener serving `/metrics` and `/healthz`.
    #[serde(default)]
    pub admin: RawAdmin,
    /// `[runtime]`: process-wide settings.
    #[serde(default)]
    pub runtime: RawRuntime,
    /// `[[listeners]]`: where clients connect. At least one is required.
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    /// `[[pools]]`: groups of backends that listeners send to.
    #[serde(default)]
    pub pools: Vec<RawPool>,
}

/// `[admin]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address of the admin HTTP listener (`/metrics`, `/healthz`), IP:port.
    /// Default `"127.0.0.1:9090"`. Keep it off public interfaces.
    pub address: Option<String>,
    /// Serve the admin listener at all. Default `true`.
    pub enabled: Option<bool>,
}

/// `[runtime]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    /// Worker threads of the async runtime. Default: one per CPU core.
    pub worker_threads: Option<usize>,
    /// On SIGTERM/SIGINT, how long open connections may run on before they
    /// are closed. Duration. Default `"30s"`.
    pub shutdown_grace: Option<String>,
}

/// A listener's bind addresses: one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `bind = "0.0.0.0:5432"`
    One(String),
    /// `bind = ["0.0.0.0:5432", "[::]:5432"]`
    Many(Vec<String>),
}

impl OneOrMany {
    /// The addresses as a list.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Self::One(one) => std::slice::from_ref(one),
            Self::Many(many) => many,
        }
    }
}

/// `[[listeners]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    /// *Required.* Unique name; the `listener` label of its metrics.
    pub name: String,
    /// *Required.* One or more IP:port addresses to accept on, e.g.
    /// `"0.0.0.0:5432"` or `["0.0.0.0:5432", "[::]:5432"]`.
    pub bind: OneOrMany,
    /// Protocol: `"tcp"`. Default `"tcp"`.
    pub protocol: Option<String>,
    /// *Required.* Name of the pool this listener sends connections to.
    pub pool: String,
    /// Most client connections open at once; past it new connections are
    /// closed at accept and counted. Default `10000`.
    pub max_connections: Option<u64>,
    /// Listen backlog (queued, not yet accepted connections). Default `1024`.
    pub backlog: Option<u32>,
    /// Bound on one connection attempt to a backend. Duration. Default `"5s"`.
    pub connect_timeout: Option<String>,
    /// A connection with no bytes in either direction for this long is closed
    /// on both sides. Duration. Default `"1h"` (database pools idle a lot).
    pub idle_timeout: Option<String>,
    /// How many backends to try, in the selector's order, before giving up
    /// on a client connection. 1 to 8. Default `3`.
    pub connect_attempts: Option<u32>,
    /// Forward with zero-copy `splice(2)` on Linux; `false` uses a user-space
    /// copy. Default `true`.
    pub splice: Option<bool>,
    /// TCP keepalive idle time on client and backend sockets, so dead peers
    /// of long-lived connections are noticed. Duration, or `"off"`.
    /// Default `"60s"`.
    pub keepalive: Option<String>,
}

/// `[[pools]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    /// *Required.* Unique name; the `pool` label of its metrics.
    pub name: String,
    /// Load-balancing algorithm: `"round_robin"`, `"weighted_round_robin"`,
    /// `"least_connections"`, `"random_two_choices"`, `"maglev"` or
    /// `"ring_hash"`. Default `"round_robin"`.
    pub algorithm: Option<String>,
    /// What consistent-hash algorithms (`maglev`, `ring_hash`) hash:
    /// `"client_ip"` (a client sticks to one backend) or `"client_ip_port"`.
    /// Default `"client_ip"`.
    pub hash_key: Option<String>,
    /// `maglev` only: lookup table size, a prime. Default `65537`. Keep it at
    /// least 100 × the number of backends for an even spread.
    pub maglev_table_size: Option<u32>,
    /// `ring_hash` only: bounded-load factor (> 1.0); no backend takes more
    /// than factor × the average in-flight load. Default: unbounded.
    pub balance_factor: Option<f64>,
    /// *Required.* The backends, at least one.
    pub backends: Vec<RawBackend>,
    /// `[pools.health_check]`: active checks. Without it every backend is
    /// up until real traffic fails it.
    pub health_check: Option<RawHealthCheck>,
    /// Count failed connections from real traffic against a backend (passive
    /// checks): `fall` consecutive failures mark it down. Default `true`.
    pub passive: Option<bool>,
    /// Without active checks: how long a backend marked down by real traffic
    /// rests before it is tried again. Duration. Default `"10s"`.
    pub fail_timeout: Option<String>,
}

/// `[[pools.backends]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    /// Name in logs and the `backend` metric label, unique in the pool.
    /// Default: the address as written. Consistent hashing places keys by
    /// this name, so renaming a backend moves its keys.
    pub name: Option<String>,
    /// *Required.* `host:port` or `IP:port`; a host name is resolved once at
    /// start-up and must resolve.
    pub address: String,
    /// Relative share of traffic, 1 to 256. Default `1`.
    pub weight: Option<u32>,
}

/// `[pools.health_check]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// `"tcp"` (connect only) or `"send_expect"`. Default `"tcp"`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Time between probes of one backend. Duration. Default `"2s"`.
    pub interval: Option<String>,
    /// Bound on one probe. Duration. Default `"1s"`.
    pub timeout: Option<String>,
    /// Consecutive successes to mark a backend up. Default `2`. With checks
    /// configured a backend starts down until it has passed `rise` probes.
    pub rise: Option<u32>,
    /// Consecutive failures (probes or, with `passive`, real connections) to
    /// mark a backend down. Default `3`.
    pub fall: Option<u32>,
    /// `send_expect`: bytes to send, as text with escapes (`"PING\r\n"`).
    pub send: Option<String>,
    /// `send_expect`: bytes to send, as hex (`"50494e470d0a"`).
    pub send_hex: Option<String>,
    /// `send_expect`: *required* reply prefix, as text (`"+PONG"`).
    pub expect: Option<String>,
    /// `send_expect`: reply prefix as hex.
    pub expect_hex: Option<String>,
}
