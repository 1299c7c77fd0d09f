//! The raw configuration: serde types that mirror the TOML file.
//!
//! These doc comments are the configuration reference (docs/configuration.md
//! repeats them, and a test keeps the two in step). Every key is optional
//! unless marked *required*; an unknown key is an error. Values that need
//! checking (addresses, durations, names of algorithms) stay strings here so
//! that validation can report every bad value at once with its field path.
//!
//! A *duration* is a string of `<integer><unit>` groups, unit `ms`, `s`, `m`,
//! `h` or `d` (`"250ms"`, `"5s"`, `"1m30s"`), greater than zero; a bare
//! number is refused.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of [admin], [runtime], [[listeners]], [[pools]], [[jwt_providers]], [[rate_limits]] and [redis]"
)]
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
    /// `[[jwt_providers]]`: JWT issuers that routes can require (`auth`).
    #[serde(default)]
    pub jwt_providers: Vec<RawJwtProvider>,
    /// `[[rate_limits]]`: named request rate limits that routes refer to.
    #[serde(default)]
    pub rate_limits: Vec<RawRateLimit>,
    /// `[redis]`: the Redis server that `global` rate limits share.
    pub redis: Option<RawRedis>,
}

/// `[admin]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [admin] table")]
pub struct RawAdmin {
    /// Address of the admin HTTP listener (`/metrics`, `/healthz`), IP:port.
    /// Default `"127.0.0.1:9090"`. Keep it off public interfaces.
    pub address: Option<String>,
    /// Serve the admin listener at all. Default `true`.
    pub enabled: Option<bool>,
}

/// `[runtime]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [runtime] table")]
pub struct RawRuntime {
    /// Worker threads of the async runtime, 1 to 1024. Default: one per CPU
    /// core.
    pub worker_threads: Option<usize>,
    /// On SIGTERM/SIGINT, how long open connections may run on before they
    /// are closed. Duration. Default `"30s"`.
    pub shutdown_grace: Option<String>,
}

/// What a [`OneOrMany`] holds: the words a value of the wrong type is told
/// it should be.
pub trait Expecting {
    /// One value, described: `an address string like "0.0.0.0:5432"`.
    const ONE: &'static str;
}

/// One string or a list of them (`bind = "…"` or `bind = ["…", "…"]`).
#[derive(Debug, Clone)]
pub struct OneOrMany<E>(Vec<String>, std::marker::PhantomData<E>);

impl<E> OneOrMany<E> {
    /// The values as a list.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

// By hand rather than `#[serde(untagged)]`, whose error ("data did not match
// any variant of untagged enum") does not tell the user what to write.
impl<'de, E: Expecting> Deserialize<'de> for OneOrMany<E> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<E>(std::marker::PhantomData<E>);
        impl<'de, E: Expecting> serde::de::Visitor<'de> for Visitor<E> {
            type Value = OneOrMany<E>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} or a list of them", E::ONE)
            }

            fn visit_str<Er: serde::de::Error>(self, v: &str) -> Result<Self::Value, Er> {
                Ok(OneOrMany(vec![v.to_owned()], std::marker::PhantomData))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut many = Vec::new();
                while let Some(one) = seq.next_element::<String>()? {
                    many.push(one);
                }
                Ok(OneOrMany(many, std::marker::PhantomData))
            }
        }
        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

/// A listener's bind addresses.
#[derive(Debug, Clone)]
pub struct Addresses;

impl Expecting for Addresses {
    const ONE: &'static str = "an address string like \"0.0.0.0:5432\"";
}

/// JWT provider names (a route's `auth`).
#[derive(Debug, Clone)]
pub struct ProviderNames;

impl Expecting for ProviderNames {
    const ONE: &'static str = "a provider name like \"idp\"";
}

/// The parts of a rate-limit key.
#[derive(Debug, Clone)]
pub struct KeyParts;

impl Expecting for KeyParts {
    const ONE: &'static str = "a key like \"client_ip\"";
}

/// `[[listeners]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[listeners]] table")]
pub struct RawListener {
    /// *Required.* Unique, non-empty name; the `listener` label of its
    /// metrics.
    pub name: String,
    /// *Required.* One or more IP:port addresses to accept on, e.g.
    /// `"0.0.0.0:5432"` or `["0.0.0.0:5432", "[::]:5432"]`. No address may be
    /// used twice by one protocol in the file (nor, for TCP, be
    /// `admin.address`); a TCP and a UDP listener may share one (DNS on
    /// port 53). Port 0 lets the kernel pick a free port.
    pub bind: OneOrMany<Addresses>,
    /// Protocol: `"tcp"` (streams), `"udp"` (datagrams, in flows), `"http"`
    /// (the L7 gateway: HTTP/1.1 and cleartext HTTP/2 on one port) or
    /// `"https"` (the gateway over TLS: HTTP/2 or HTTP/1.1 as ALPN says).
    /// Default `"tcp"`. Keys marked *TCP only*, *UDP only*, *HTTP only* (which
    /// apply to `"https"` too) or *HTTPS only* are errors on a listener of
    /// another protocol.
    pub protocol: Option<String>,
    /// Name of the pool this listener sends connections to. *Required* for
    /// TCP and UDP listeners; on an HTTP listener it is optional and catches
    /// the requests no route matches (without it they get 404).
    pub pool: Option<String>,
    /// *TCP only.* Most client connections open at once; past it new
    /// connections are closed at accept and counted. 1 to 10000000.
    /// Default `10000`.
    pub max_connections: Option<u64>,
    /// *TCP only.* Listen backlog (queued, not yet accepted connections),
    /// 1 to 65535. Default `1024`.
    pub backlog: Option<u32>,
    /// *TCP only.* Bound on one connection attempt to a backend. Duration.
    /// Default `"5s"`.
    pub connect_timeout: Option<String>,
    /// TCP: a connection with no bytes in either direction for this long is
    /// closed on both sides. UDP: a flow with no datagram either way for this
    /// long ends. Duration. Default `"1h"` for TCP (database pools idle a
    /// lot), `"30s"` for UDP.
    pub idle_timeout: Option<String>,
    /// *TCP only.* How many backends to try, in the selector's order, before
    /// giving up on a client connection. 1 to 8. Default `3`.
    pub connect_attempts: Option<u32>,
    /// *TCP only.* Forward with zero-copy `splice(2)` on Linux; `false` uses a
    /// user-space copy. Default `true`.
    pub splice: Option<bool>,
    /// *TCP only.* TCP keepalive idle time on client and backend sockets, so
    /// dead peers of long-lived connections are noticed. Duration from 1s to
    /// 32767s (the kernel's limit), or `"off"`. Default `"60s"`.
    pub keepalive: Option<String>,
    /// *UDP only.* Replies the backend sends per client datagram (nginx's
    /// `proxy_responses`), 1 to 1000000: a flow ends once every datagram the
    /// client sent has had this many replies. `1` suits request/response
    /// protocols like DNS so flows do not pile up. Default: unlimited (flows
    /// end at the idle timeout).
    pub responses: Option<u32>,
    /// *UDP only.* Most flows open at once (each holds one socket); when
    /// full, the least recently used flow is evicted. 1 to 1000000.
    /// Default: half the process's open-file limit.
    pub max_flows: Option<u64>,
    /// *UDP only.* Larger datagrams are dropped and counted, 1 to 65507
    /// bytes. Default `65507` (the largest UDP payload over IPv4).
    pub max_datagram_size: Option<u32>,
    /// *UDP only.* Sockets per address, sharing it with SO_REUSEPORT so
    /// every core receives, 1 to 64. Default: one per CPU core.
    pub sockets: Option<u32>,
    /// *HTTP only.* A client must send a request's whole header block within
    /// this long of starting it (slowloris), or the connection is closed.
    /// Duration. Default `"10s"`.
    pub header_read_timeout: Option<String>,
    /// *HTTP only.* Largest request header block, 8192 to 1048576 bytes;
    /// larger gets 431. Default `65536`.
    pub max_header_bytes: Option<u32>,
    /// *HTTP only.* Most request header fields, 1 to 1000; more gets 431.
    /// Default `100`.
    pub max_headers: Option<u32>,
    /// *HTTP only.* Largest request body, 0 to 1099511627776 bytes; larger
    /// gets 413. Default `10485760` (10 MiB).
    pub max_body_bytes: Option<u64>,
    /// *HTTP only.* How long an idle keep-alive connection stays open between
    /// requests. Duration. Default `"60s"`.
    pub keepalive_timeout: Option<String>,
    /// *HTTP only.* Most concurrent HTTP/2 streams per connection, 1 to
    /// 10000. Default `100`.
    pub max_concurrent_streams: Option<u32>,
    /// *HTTP only.* Where the access log goes, one JSON object per request:
    /// `"stdout"`, `"off"`, or a file path (appended). Default `"stdout"`.
    pub access_log: Option<String>,
    /// *HTTP only.* Also send the standard `Forwarded` header (RFC 7239:
    /// `for`, `host`, `proto`) to backends, appended to the client's,
    /// beside the `X-Forwarded-*` headers. Default `false`.
    pub forwarded: Option<bool>,
    /// *HTTP only.* This proxy's name in a `Via` header added to requests
    /// and responses (`Via: 1.1 NAME`), a token such as `"weir"`. Default:
    /// no `Via`.
    pub via: Option<String>,
    /// *HTTP only.* `[[listeners.routes]]`: how requests are matched to
    /// pools. At least one for an HTTP listener; a request no route matches
    /// gets 404.
    pub routes: Option<Vec<RawRoute>>,
    /// *HTTPS only.* `[[listeners.certificates]]`: the certificates to serve,
    /// *required*, at least one. The first is the default, for clients that
    /// send no server name (SNI) or one no certificate is for.
    pub certificates: Option<Vec<RawCertificate>>,
    /// *HTTPS only.* Oldest TLS version accepted: `"1.2"` (TLS 1.2 and 1.3)
    /// or `"1.3"` (TLS 1.3 only). Older versions are always refused.
    /// Default `"1.2"`.
    pub tls_min_version: Option<String>,
    /// *TCP only.* Most connections one client (source IP) may have open at
    /// once; past it its new connections are closed at accept and counted.
    /// 1 to 1000000. Default: unlimited.
    pub max_connections_per_client: Option<u32>,
    /// *TCP only.* New connections per client (source IP), as a rate
    /// (`"20/s"`, `"600/m"`); faster ones are closed at accept and counted.
    /// Default: unlimited.
    pub connection_rate_per_client: Option<String>,
    /// *TCP only.* With `connection_rate_per_client`: new connections a
    /// client may open at once, 1 to 1000000. Default: the rate's count.
    pub connection_burst_per_client: Option<u32>,
}

/// `[[listeners.certificates]]`
///
/// One certificate of an https listener. The files are read and checked by
/// `weir check` and at start-up, and read again on SIGHUP. A client gets the
/// certificate whose `server_names` has the name it asked for (SNI): an
/// exact name first, then a `*.` wildcard; otherwise the first certificate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[listeners.certificates]] table")]
pub struct RawCertificate {
    /// *Required.* Path to the PEM certificate chain: the server's
    /// certificate first, then its intermediates. A relative path is
    /// relative to the configuration file's directory.
    pub cert: String,
    /// *Required.* Path to the PEM private key of that certificate,
    /// unencrypted: PKCS#8 (`BEGIN PRIVATE KEY`), PKCS#1 (`BEGIN RSA PRIVATE
    /// KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`). May be the same file as `cert`.
    pub key: String,
    /// Names this certificate is served for: exact (`"api.example.com"`) or
    /// one leading wildcard label (`"*.example.com"`). Default: the DNS names
    /// in the certificate's subjectAltName.
    pub server_names: Option<Vec<String>>,
}

/// `[[listeners.routes]]`
///
/// A request matches a route when every condition the route sets holds. The
/// most specific match wins: an exact `path` before the longest
/// `path_prefix`, then a route with a `host` before one without, then file
/// order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[listeners.routes]] table")]
pub struct RawRoute {
    /// Name in logs and the `route` metric label, unique in the listener.
    /// Default: `routes[N]`.
    pub name: Option<String>,
    /// Host to match (the `Host` header or HTTP/2 `:authority`, without the
    /// port): exact (`"api.example.com"`) or one leading wildcard label
    /// (`"*.example.com"`, which does not match `example.com` itself).
    /// Default: any host.
    pub host: Option<String>,
    /// Exact path to match (`"/healthz"`). Set `path` or `path_prefix`,
    /// not both. Default: any path.
    pub path: Option<String>,
    /// Path prefix to match, on segment boundaries: `"/api"` matches `/api`
    /// and `/api/users`, not `/apiary`. `"/"` matches everything.
    pub path_prefix: Option<String>,
    /// A regular expression the whole path must match (`"/users/[0-9]+"`),
    /// instead of `path` or `path_prefix`; tried after exact paths and
    /// prefixes, before a catch-all `/`, in file order.
    pub path_regex: Option<String>,
    /// Methods to match (`["GET", "HEAD"]`). Default: any method.
    pub methods: Option<Vec<String>>,
    /// Request headers that must be present with exactly these values
    /// (`{ "x-tenant" = "blue" }`; names are case-insensitive). Default: none.
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// Pool the matched requests go to. *Required* unless `redirect` is set.
    pub pool: Option<String>,
    /// With `path_prefix`: remove the matched prefix before forwarding
    /// (`/api/users` → `/users`). Default `false`.
    pub strip_prefix: Option<bool>,
    /// With `path_prefix`: replace the matched prefix with this before
    /// forwarding (`"/v2"`: `/api/users` → `/v2/users`). Default: unchanged.
    pub rewrite_prefix: Option<String>,
    /// Answer with a redirect to this location instead of forwarding
    /// (`"https://example.com/new"`). Default: forward.
    pub redirect: Option<String>,
    /// Status of `redirect`: 301, 302, 307 or 308. Default `302`.
    pub redirect_code: Option<u16>,
    /// Request headers to set (replacing any) before forwarding. Default: none.
    pub request_headers_set: Option<std::collections::BTreeMap<String, String>>,
    /// Request headers to add (keeping any) before forwarding. Default: none.
    pub request_headers_add: Option<std::collections::BTreeMap<String, String>>,
    /// Request headers to remove before forwarding. Default: none.
    pub request_headers_remove: Option<Vec<String>>,
    /// Response headers to set (replacing any) before answering. Default: none.
    pub response_headers_set: Option<std::collections::BTreeMap<String, String>>,
    /// Response headers to add (keeping any) before answering. Default: none.
    pub response_headers_add: Option<std::collections::BTreeMap<String, String>>,
    /// Response headers to remove before answering. Default: none.
    pub response_headers_remove: Option<Vec<String>>,
    /// Bound on connecting to a backend. Duration. Default `"5s"`.
    pub connect_timeout: Option<String>,
    /// Bound on waiting for the backend's response headers once the request
    /// is sent; past it the client gets 504 (408 when the backend waits for
    /// a body the client stopped sending). Duration. Default `"30s"`.
    pub response_timeout: Option<String>,
    /// Bound on the whole exchange, request and response body included.
    /// Duration. Default `"5m"`.
    pub request_timeout: Option<String>,
    /// Retries on another backend, 0 to 5: always after a failed connect;
    /// after a 502, 503 or a reset only for idempotent methods. Retries are
    /// also capped by the listener's retry budget (20% of recent requests, at
    /// most 10 banked). Default `1`.
    pub retries: Option<u32>,
    /// JWT providers (`[[jwt_providers]]` names) a request must present a
    /// valid token from: one name or a list, where any one may succeed.
    /// Without a token the answer is 401, never the backend. Default: open.
    pub auth: Option<OneOrMany<ProviderNames>>,
    /// Names of `[[rate_limits]]` policies the matched requests must all
    /// pass (`["per-client", "per-key"]`); not with `redirect`. Default: none.
    pub rate_limits: Option<Vec<String>>,
}

/// `[[pools]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[pools]] table")]
pub struct RawPool {
    /// *Required.* Unique, non-empty name; the `pool` label of its metrics.
    pub name: String,
    /// Load-balancing algorithm: `"round_robin"`, `"weighted_round_robin"`,
    /// `"least_connections"`, `"random_two_choices"`, `"maglev"` or
    /// `"ring_hash"`. Default `"round_robin"`.
    pub algorithm: Option<String>,
    /// What consistent-hash algorithms (`maglev`, `ring_hash`) hash:
    /// `"client_ip"` (a client sticks to one backend) or `"client_ip_port"`;
    /// for pools used only by HTTP listeners also `"header:NAME"`,
    /// `"cookie:NAME"` or `"path"` (a request without the header or cookie
    /// falls back to the client IP).
    /// Ignored (with a warning) by the other algorithms. Default `"client_ip"`.
    pub hash_key: Option<String>,
    /// `maglev` only: lookup table size, a prime no larger than 1000003.
    /// Default `65537`. Keep it at least 100 × the number of backends for an
    /// even spread (smaller tables get a warning).
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
    /// `[pools.outlier_detection]`: passive ejection of backends that keep
    /// failing HTTP requests (HTTP listeners only). Default: off.
    pub outlier_detection: Option<RawOutlierDetection>,
    /// Without active checks: how long a backend marked down by real traffic
    /// rests before it is tried again. Duration. Default `"10s"`.
    pub fail_timeout: Option<String>,
    /// The HTTP version HTTP listeners speak to this pool's backends:
    /// `"http1"` (HTTP/1.1) or `"h2c"` (cleartext HTTP/2 with prior
    /// knowledge, which gRPC backends need: trailers and `te: trailers` pass
    /// through, requests share multiplexed connections; WebSocket upgrades
    /// need `"http1"`). Ignored by TCP and UDP listeners (with a warning for
    /// `"h2c"` on a pool only they use). `"h2"` is HTTP/2 over TLS and needs
    /// `[pools.tls]`. Default `"http1"`.
    pub http_version: Option<String>,
    /// TLS to the backends (`[pools.tls]`); without it, cleartext.
    pub tls: Option<RawUpstreamTls>,
}

/// `[pools.tls]`
///
/// HTTP listeners connect to this pool's backends over TLS, verifying each
/// backend's certificate. `tls = {}` is enough with public certificates.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a TLS table like { ca_file = \"ca.pem\" }"
)]
pub struct RawUpstreamTls {
    /// PEM file of the authorities trusted to sign the backends'
    /// certificates (a private CA, or a self-signed certificate itself).
    /// Default `"/etc/ssl/certs/ca-certificates.crt"`.
    pub ca_file: Option<String>,
    /// The name sent in SNI and verified against every backend's
    /// certificate. Default: the host of each backend's `address`.
    pub server_name: Option<String>,
    /// PEM client certificate chain, for backends that require mutual TLS
    /// (with `key`).
    pub cert: Option<String>,
    /// The client certificate's PEM private key.
    pub key: Option<String>,
}

/// `[[pools.backends]]`
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a backend table like { address = \"10.0.0.1:5432\" }"
)]
pub struct RawBackend {
    /// Name in logs and the `backend` metric label, non-empty and unique in
    /// the pool.
    /// Default: the address as written. Consistent hashing places keys by
    /// this name, so renaming a backend moves its keys.
    pub name: Option<String>,
    /// *Required.* `host:port` or `IP:port` (`"[::1]:5432"` for IPv6), port
    /// not 0, unique in the pool; a host name is resolved once at start-up
    /// and must resolve.
    pub address: String,
    /// Relative share of traffic, 1 to 256. Default `1`.
    pub weight: Option<u32>,
}

/// `[pools.health_check]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [pools.health_check] table")]
pub struct RawHealthCheck {
    /// `"tcp"` (connect only), `"send_expect"`, `"udp"` or `"http"` (one
    /// HTTP/1.1 request, judged by its status code). Default `"tcp"`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Time between probes of one backend. Duration. Default `"2s"`.
    pub interval: Option<String>,
    /// Bound on one probe. Duration. Default `"1s"`. Longer than `interval`
    /// gets a warning: probes of one backend never overlap.
    pub timeout: Option<String>,
    /// Consecutive successes to mark a backend up, 1 to 100. Default `2`. With checks
    /// configured a backend starts down until it has passed `rise` probes.
    pub rise: Option<u32>,
    /// Consecutive failures (probes or, with `passive`, real connections) to
    /// mark a backend down, 1 to 100. Default `3`.
    pub fall: Option<u32>,
    /// `send_expect`: bytes to send first, as text; TOML escapes work in a
    /// double-quoted string (`"PING\r\n"`). Set this or `send_hex`, not both;
    /// neither sends nothing and just reads (a server's greeting).
    pub send: Option<String>,
    /// `send_expect`: bytes to send, as hex digits, spaces allowed
    /// (`"50494e470d0a"`).
    pub send_hex: Option<String>,
    /// `send_expect`: the reply must start with these bytes, as text
    /// (`"+PONG"`). `send_expect` needs this or `expect_hex`, non-empty.
    pub expect: Option<String>,
    /// `send_expect`: the expected reply prefix as hex digits.
    pub expect_hex: Option<String>,
    /// `http`: the request path, starting with `/`, query allowed
    /// (`"/healthz"`). Default `"/"`.
    pub path: Option<String>,
    /// `http`: the request method, an HTTP token, sent in upper case
    /// (`"HEAD"`). Default `"GET"`.
    pub method: Option<String>,
    /// `http`: the `Host` header, no spaces or control characters. Default:
    /// the backend's address as `ip:port`.
    pub host: Option<String>,
    /// `http`: healthy status codes, an inclusive range `"200-399"` or one
    /// code `"204"`, within 100 to 599. Default `"200-399"`.
    pub expect_status: Option<String>,
}

/// `[pools.outlier_detection]`
///
/// A backend that answers `consecutive_failures` 5xx responses in a row (or
/// fails to connect) to HTTP listeners is ejected from selection for
/// `base_ejection`, doubled on each further ejection up to `max_ejection`.
/// The last ready backend of a pool is never ejected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [pools.outlier_detection] table")]
pub struct RawOutlierDetection {
    /// Consecutive 5xx responses or failed connects that eject a backend,
    /// 1 to 1000. Default `5`.
    pub consecutive_failures: Option<u32>,
    /// First ejection time; each further ejection doubles it. Duration.
    /// Default `"30s"`.
    pub base_ejection: Option<String>,
    /// Longest ejection. Duration. Default `"5m"`.
    pub max_ejection: Option<String>,
}

/// `[[jwt_providers]]`
///
/// An issuer of JSON Web Tokens and how to check them. A route with `auth`
/// naming it lets a request through only with a valid token (signature,
/// algorithm, `exp`/`nbf` with leeway, `iss`, `aud`, required claims and
/// scopes). Keys may come from any mix of the key fields; at least one is
/// *required*. Secrets are never printed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[jwt_providers]] table")]
pub struct RawJwtProvider {
    /// *Required.* Unique, non-empty name: what routes' `auth` refers to,
    /// and the `provider` label of its metrics.
    pub name: String,
    /// *Required.* The `iss` claim a token must carry, exactly.
    pub issuer: Option<String>,
    /// Audiences this gateway accepts: the token's `aud` (a string or a
    /// list) must contain one of them. Default: `aud` is not checked.
    pub audiences: Option<Vec<String>>,
    /// *Required.* Algorithms a token may use, at least one, from `HS256`,
    /// `HS384`, `HS512`, `RS256`, `RS384`, `RS512`, `PS256`, `PS384`,
    /// `PS512`, `ES256`, `ES384`, `EdDSA`. `none` is refused.
    pub algorithms: Option<Vec<String>>,
    /// Clock skew allowed on `exp` and `nbf`. Duration. Default `"60s"`.
    pub leeway: Option<String>,
    /// Claims a token must carry besides `exp` (always required), e.g.
    /// `["sub"]`. Default: none.
    pub required_claims: Option<Vec<String>>,
    /// Scopes a token must carry, all of them, in its `scope` claim (space
    /// separated) or `scp` (a list or a space-separated string); a valid
    /// token without them gets 403. Default: none.
    pub required_scopes: Option<Vec<String>>,
    /// Read the token from this request header instead of `Authorization:
    /// Bearer` (a leading `Bearer ` is accepted). Set at most one of
    /// `header`, `cookie`, `query`. Default: `Authorization: Bearer`.
    pub header: Option<String>,
    /// Read the token from this cookie. Default: `Authorization: Bearer`.
    pub cookie: Option<String>,
    /// Read the token from this query parameter. Default: `Authorization:
    /// Bearer`.
    pub query: Option<String>,
    /// Path to a file holding the HMAC secret (bytes as is, one trailing
    /// newline removed), for `HS*` algorithms. Relative to the
    /// configuration file's directory. Default: none.
    pub hmac_secret_file: Option<String>,
    /// Name of an environment variable holding the HMAC secret, read at
    /// start-up. Set `hmac_secret_file` or this, not both. Default: none.
    pub hmac_secret_env: Option<String>,
    /// PEM public keys (`BEGIN PUBLIC KEY`, or `BEGIN RSA PUBLIC KEY`):
    /// RSA, EC P-256/P-384 or Ed25519. Default: none.
    pub public_key_files: Option<Vec<String>>,
    /// Path to a JWKS file (`{"keys": [...]}`), read at start-up.
    /// Default: none.
    pub jwks_file: Option<String>,
    /// URL of the identity provider's JWKS (`https://` or `http://`), fetched at start-up
    /// and every `jwks_refresh`, and on a token whose `kid` is unknown (at
    /// most once per `jwks_cooldown`). A failed fetch keeps the last good
    /// keys. Default: none.
    pub jwks_url: Option<String>,
    /// How often the JWKS URL is fetched again. Duration. Default `"5m"`.
    pub jwks_refresh: Option<String>,
    /// Least time between two fetches caused by an unknown `kid`, so a
    /// flood of bogus kids cannot hammer the identity provider. Duration.
    /// Default `"30s"`.
    pub jwks_cooldown: Option<String>,
    /// PEM file of the authorities trusted to sign an `https` `jwks_url`'s
    /// certificate (a private identity provider). Default
    /// `"/etc/ssl/certs/ca-certificates.crt"`.
    pub jwks_ca_file: Option<String>,
    /// Claims forwarded to the backend as request headers (`{ sub =
    /// "X-User-Id" }`). Headers with these names sent by the client are
    /// removed first, so they cannot be forged. Default: none.
    pub claims_to_headers: Option<std::collections::BTreeMap<String, String>>,
    /// Forward the token to the backend; `false` removes it (the header,
    /// cookie or query parameter it came in). Default `false`.
    pub forward_token: Option<bool>,
    /// Longest token accepted, 128 to 65536 bytes; longer is refused
    /// before any decoding. Default `8192`.
    pub max_token_bytes: Option<u32>,
    /// The `realm` of the `WWW-Authenticate` challenge. Default `"weir"`.
    pub realm: Option<String>,
}

/// `[[rate_limits]]`
///
/// A named request rate limit (GCRA: a bucket of `burst` requests refilled
/// at `rate`), counted per key. Routes refer to it by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[rate_limits]] table")]
pub struct RawRateLimit {
    /// *Required.* Unique, non-empty name; the `policy` label of its metrics
    /// and its name in the `RateLimit` headers.
    pub name: String,
    /// *Required.* Requests per second, minute or hour per key:
    /// `"<count>/s"`, `"<count>/m"` or `"<count>/h"`, count 1 to 1000000000.
    pub rate: String,
    /// Requests one key may send at once (the bucket's size), 1 to
    /// 1000000000. Default: the rate's count.
    pub burst: Option<u64>,
    /// What a request is counted by: `"client_ip"`, `"header:NAME"` (an API
    /// key), `"claim:NAME"` (a verified JWT claim), `"route"`, or a list of
    /// them for their combination. A request without the header or claim is
    /// counted by its client IP. Default `"client_ip"`.
    pub key: Option<OneOrMany<KeyParts>>,
    /// Where the counts live: `"local"` (this process's memory) or `"global"`
    /// (the `[redis]` server, shared by every weir instance using it).
    /// Default `"local"`.
    pub scope: Option<String>,
    /// *Global only.* When Redis fails or is slower than `timeout`:
    /// `"fail_open"` (allow the request) or `"fail_closed"` (answer 503).
    /// Default `"fail_open"`.
    pub on_error: Option<String>,
    /// *Global only.* Bound on one Redis check. Duration. Default `"50ms"`.
    pub timeout: Option<String>,
    /// Count the requests that would be limited, but let them through.
    /// Default `false`.
    pub dry_run: Option<bool>,
    /// Send the `RateLimit-Policy` and `RateLimit` headers on allowed
    /// responses too (429s always carry them). Default `false`.
    pub headers: Option<bool>,
}

/// `[redis]`
///
/// The Redis server global rate limits keep their counts in. Any number of
/// weir instances pointing at the same server share their limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [redis] table")]
pub struct RawRedis {
    /// *Required.* The server, `host:port` (`"127.0.0.1:6379"`).
    pub address: String,
    /// ACL user name (Redis 6+). Default: none (the `default` user).
    pub username: Option<String>,
    /// File holding the password (trailing newline ignored); relative to
    /// the configuration file. Default: none.
    pub password_file: Option<String>,
    /// Environment variable holding the password; when it is set it wins
    /// over `password_file`. Default: none.
    pub password_env: Option<String>,
    /// Prefix of every key weir writes. Default `"weir:rl:"`.
    pub key_prefix: Option<String>,
    /// Bound on connecting (and reconnecting) to Redis. Duration.
    /// Default `"1s"`.
    pub connect_timeout: Option<String>,
}
