//! Metric names, defined once, with their descriptions.
//!
//! Library code only calls the `metrics` macros with these names; the binary
//! installs the Prometheus exporter and calls [`describe`] once. Conventions:
//! `weir_` prefix, base units, counters end in `_total`, and labels of low
//! cardinality only (`listener`, `pool`, `backend`, `direction`, `reason`,
//! `result`).

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Build information; value 1, labels `version`.
pub const BUILD_INFO: &str = "weir_build_info";
/// Connections accepted, by `listener`.
pub const LISTENER_ACCEPTED: &str = "weir_listener_connections_accepted_total";
/// Connections open now, by `listener`.
pub const LISTENER_ACTIVE: &str = "weir_listener_connections_active";
/// Connections refused at accept, by `listener` and `reason`
/// (`max_connections`, `max_connections_per_client`, `connection_rate_per_client`).
pub const LISTENER_REJECTED: &str = "weir_listener_connections_rejected_total";
/// Errors from accept(2), by `listener` and `reason` (`fd_exhausted`, `aborted`, `other`).
pub const LISTENER_ACCEPT_ERRORS: &str = "weir_listener_accept_errors_total";
/// Bytes forwarded, by `listener` and `direction` (`upstream` = client→backend, `downstream`).
pub const LISTENER_BYTES: &str = "weir_listener_bytes_total";
/// Connections that ended without reaching any backend, by `listener` and `reason`.
pub const LISTENER_NO_BACKEND: &str = "weir_listener_backend_unavailable_total";
/// Connections closed by the idle timeout, by `listener`.
pub const LISTENER_IDLE_TIMEOUTS: &str = "weir_listener_idle_timeouts_total";
/// Proxied connections that ended in a socket error, by `listener` and
/// `side` (`client`, `backend`): resets and broken pipes mid-stream.
pub const LISTENER_STREAM_ERRORS: &str = "weir_listener_stream_errors_total";
/// Lifetime of proxied connections, by `listener`.
pub const CONNECTION_DURATION: &str = "weir_connection_duration_seconds";
/// Connections established to a backend, by `pool` and `backend`.
pub const BACKEND_CONNECTIONS: &str = "weir_backend_connections_total";
/// Connections open to a backend now, by `pool` and `backend`.
pub const BACKEND_ACTIVE: &str = "weir_backend_connections_active";
/// Failed connection attempts, by `pool`, `backend` and `reason` (`refused`, `timeout`, `other`).
pub const BACKEND_CONNECT_ERRORS: &str = "weir_backend_connect_errors_total";
/// 1 while the backend is up, 0 while down; by `pool` and `backend`.
pub const BACKEND_UP: &str = "weir_backend_up";
/// Health probe results, by `pool`, `backend` and `result` (`success`, `failure`).
pub const HEALTH_CHECKS: &str = "weir_health_checks_total";
/// Health state changes, by `pool`, `backend` and `to` (`up`, `down`).
pub const HEALTH_TRANSITIONS: &str = "weir_health_transitions_total";

/// Datagrams forwarded by a UDP listener, by `listener` and `direction`.
pub const LISTENER_DATAGRAMS: &str = "weir_listener_datagrams_total";
/// UDP datagrams dropped, by `listener` and `reason` (`no_backend`,
/// `oversize`, `send_error`, `socket_error`, `flow_closed`).
pub const UDP_DROPS: &str = "weir_udp_datagrams_dropped_total";
/// UDP flows open now, by `listener`.
pub const UDP_FLOWS_ACTIVE: &str = "weir_udp_flows_active";
/// UDP flows opened, by `listener`.
pub const UDP_FLOWS_OPENED: &str = "weir_udp_flows_opened_total";
/// UDP flows evicted to make room at `max_flows`, by `listener`.
pub const UDP_FLOWS_EVICTED: &str = "weir_udp_flows_evicted_total";
/// UDP flows closed, by `listener` and `reason` (`idle`, `responses`,
/// `evicted`, `backend_down`, `refused`, `shutdown`).
pub const UDP_FLOWS_CLOSED: &str = "weir_udp_flows_closed_total";
/// UDP flows opened to a backend, by `pool` and `backend`.
pub const BACKEND_FLOWS: &str = "weir_backend_flows_total";
/// UDP datagrams exchanged with a backend, by `pool`, `backend` and `direction`.
pub const BACKEND_DATAGRAMS: &str = "weir_backend_datagrams_total";

/// HTTP requests answered, by `listener`, `route`, `method` and `class`
/// (`1xx` … `5xx`).
pub const HTTP_REQUESTS: &str = "weir_http_requests_total";
/// HTTP request duration until the response body ends, by `listener` and `route`.
pub const HTTP_DURATION: &str = "weir_http_request_duration_seconds";
/// HTTP requests in progress, by `listener`.
pub const HTTP_ACTIVE: &str = "weir_http_requests_active";
/// Requests the gateway answered itself, by `listener` and `reason`
/// (`bad_request`, `no_route`, `body_too_large`, `no_backend`, `bad_gateway`, `timeout`).
pub const HTTP_ERRORS: &str = "weir_http_gateway_errors_total";
/// Requests retried on another backend, by `listener` and `route`.
pub const HTTP_RETRIES: &str = "weir_http_retries_total";
/// Retries refused by the retry budget, by `listener`.
pub const HTTP_RETRY_BUDGET_EXHAUSTED: &str = "weir_http_retry_budget_exhausted_total";
/// Requests whose client went away before the response began, by
/// `listener` (also counted in [`HTTP_REQUESTS`] as status 499).
pub const HTTP_ABANDONED: &str = "weir_http_requests_abandoned_total";

/// Backends ejected by outlier detection, by `pool` and `backend`.
pub const HTTP_EJECTIONS: &str = "weir_http_outlier_ejections_total";

/// TLS handshakes that failed or timed out, by `listener`.
pub const TLS_HANDSHAKE_ERRORS: &str = "weir_tls_handshake_errors_total";
/// Certificate reloads (SIGHUP), by `listener` and `result` (`ok`, `error`).
pub const TLS_RELOADS: &str = "weir_tls_reloads_total";

/// JWT authentication decisions, by `provider` and `reason` (`ok`,
/// `missing`, `expired`, `bad_signature`, `unknown_kid`, `insufficient_scope`, …).
pub const JWT_DECISIONS: &str = "weir_jwt_decisions_total";
/// JWKS fetches, by `provider` and `result` (`ok`, `error`).
pub const JWKS_FETCHES: &str = "weir_jwks_fetches_total";
/// Keys in the provider's current JWKS, by `provider`.
pub const JWKS_KEYS: &str = "weir_jwks_keys";
/// Seconds since the provider's JWKS was last fetched successfully, by
/// `provider` (-1 until the first success).
pub const JWKS_AGE: &str = "weir_jwks_age_seconds";
/// Rate-limit decisions, by `policy` and `result` (`allowed`, `limited`,
/// `dry_run` = would have been limited, `failed_open` / `failed_closed` =
/// the Redis check failed and the policy's `on_error` decided).
pub const RATE_LIMIT_DECISIONS: &str = "weir_rate_limit_decisions_total";
/// Failed Redis checks of global policies, by `policy` and `reason`
/// (`timeout`, `error`).
pub const RATE_LIMIT_REDIS_ERRORS: &str = "weir_rate_limit_redis_errors_total";
/// Duration of Redis checks of global policies (successful or not), by `policy`.
pub const RATE_LIMIT_REDIS_DURATION: &str = "weir_rate_limit_redis_duration_seconds";
/// Keys tracked in memory by local policies, by `policy`.
pub const RATE_LIMIT_KEYS: &str = "weir_rate_limit_keys";

/// Redis call duration buckets, seconds (the default timeout is 50 ms).
pub const REDIS_DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// HTTP request duration buckets, seconds.
pub const HTTP_DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Connection duration histogram buckets, seconds: from a quick query to a
/// day-long pooled database session.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0, 86_400.0,
];

/// Registers every description with the installed recorder.
pub fn describe() {
    describe_gauge!(BUILD_INFO, "weir build information; always 1.");
    describe_counter!(LISTENER_ACCEPTED, "Connections accepted by the listener.");
    describe_gauge!(LISTENER_ACTIVE, "Connections open on the listener now.");
    describe_counter!(
        LISTENER_REJECTED,
        "Connections refused at accept, by reason."
    );
    describe_counter!(
        LISTENER_ACCEPT_ERRORS,
        "Errors returned by accept(2), by reason."
    );
    describe_counter!(
        LISTENER_BYTES,
        Unit::Bytes,
        "Bytes forwarded, by direction."
    );
    describe_counter!(
        LISTENER_NO_BACKEND,
        "Connections closed because no backend could be reached, by reason."
    );
    describe_counter!(
        LISTENER_IDLE_TIMEOUTS,
        "Connections closed by the idle timeout."
    );
    describe_counter!(
        LISTENER_STREAM_ERRORS,
        "Proxied connections that ended in a socket error, by side."
    );
    describe_counter!(LISTENER_DATAGRAMS, "UDP datagrams forwarded, by direction.");
    describe_counter!(UDP_DROPS, "UDP datagrams dropped, by reason.");
    describe_gauge!(UDP_FLOWS_ACTIVE, "UDP flows open now.");
    describe_counter!(UDP_FLOWS_OPENED, "UDP flows opened.");
    describe_counter!(
        UDP_FLOWS_EVICTED,
        "UDP flows evicted at max_flows (least recently used first)."
    );
    describe_counter!(UDP_FLOWS_CLOSED, "UDP flows closed, by reason.");
    describe_counter!(BACKEND_FLOWS, "UDP flows opened to the backend.");
    describe_counter!(
        BACKEND_DATAGRAMS,
        "UDP datagrams exchanged with the backend, by direction."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route, method and status class."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request duration until the response body ends."
    );
    describe_gauge!(HTTP_ACTIVE, "HTTP requests in progress.");
    describe_counter!(
        HTTP_ERRORS,
        "HTTP requests the gateway answered itself, by reason."
    );
    describe_counter!(
        HTTP_EJECTIONS,
        "Backends ejected by HTTP outlier detection."
    );
    describe_counter!(HTTP_RETRIES, "HTTP requests retried on another backend.");
    describe_counter!(
        HTTP_RETRY_BUDGET_EXHAUSTED,
        "HTTP retries refused by the retry budget."
    );
    describe_counter!(
        HTTP_ABANDONED,
        "HTTP requests whose client went away before the response began (logged as status 499)."
    );
    describe_histogram!(
        CONNECTION_DURATION,
        Unit::Seconds,
        "Lifetime of proxied connections."
    );
    describe_counter!(
        BACKEND_CONNECTIONS,
        "Connections established to the backend."
    );
    describe_gauge!(BACKEND_ACTIVE, "Connections open to the backend now.");
    describe_counter!(
        BACKEND_CONNECT_ERRORS,
        "Failed connection attempts to the backend, by reason."
    );
    describe_gauge!(BACKEND_UP, "1 while the backend is up, 0 while it is down.");
    describe_counter!(HEALTH_CHECKS, "Active health check results.");
    describe_counter!(HEALTH_TRANSITIONS, "Backend health state changes.");
    describe_counter!(
        JWT_DECISIONS,
        "JWT authentication decisions, by provider and reason."
    );
    describe_counter!(JWKS_FETCHES, "JWKS fetches, by provider and result.");
    describe_gauge!(JWKS_KEYS, "Keys in the provider's current JWKS.");
    describe_gauge!(
        JWKS_AGE,
        Unit::Seconds,
        "Seconds since the JWKS was last fetched successfully; -1 before the first success."
    );
    describe_counter!(
        RATE_LIMIT_DECISIONS,
        "Rate-limit decisions per policy, by result."
    );
    describe_counter!(
        RATE_LIMIT_REDIS_ERRORS,
        "Failed Redis checks of global rate-limit policies, by reason."
    );
    describe_histogram!(
        RATE_LIMIT_REDIS_DURATION,
        Unit::Seconds,
        "Duration of Redis checks of global rate-limit policies."
    );
    describe_gauge!(
        RATE_LIMIT_KEYS,
        "Keys tracked in memory by a local rate-limit policy."
    );
    describe_counter!(
        TLS_HANDSHAKE_ERRORS,
        "TLS handshakes that failed or timed out."
    );
    describe_counter!(
        TLS_RELOADS,
        "Certificate reloads, by result; on error the previous certificates stay."
    );
}
