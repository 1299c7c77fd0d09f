//! Errors the gateway answers itself, with their status and a fixed public body.
//!
//! Every error knows its side (client, backend, weir) for the metric label
//! and log level; the body is a small JSON object and never carries internal
//! detail (`{"error": "bad gateway", "request_id": "…"}`).

use http::StatusCode;

/// A request the gateway answers without (or instead of) a backend response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The request is malformed (bad path, bad host).
    #[error("bad request")]
    BadRequest,
    /// No route matches.
    #[error("no route")]
    NoRoute,
    /// The body is larger than `max_body_bytes`.
    #[error("request body too large")]
    BodyTooLarge,
    /// The pool has no ready backend.
    #[error("no ready backend")]
    NoBackend,
    /// The backend failed (refused, reset, malformed response).
    #[error("bad gateway")]
    BadGateway,
    /// The backend did not answer in time.
    #[error("gateway timeout")]
    Timeout,
    /// The client stopped sending its request body while the backend
    /// waited for it.
    #[error("request timeout")]
    ClientTimeout,
    /// A rate limit refused the request.
    #[error("too many requests")]
    TooManyRequests,
    /// A `fail_closed` rate limit could not check (Redis down or slow).
    #[error("rate limit unavailable")]
    RateLimitUnavailable,
}

impl GatewayError {
    /// Every error, in the order of [`Self::index`].
    pub const ALL: [Self; 9] = [
        Self::BadRequest,
        Self::NoRoute,
        Self::BodyTooLarge,
        Self::NoBackend,
        Self::BadGateway,
        Self::Timeout,
        Self::ClientTimeout,
        Self::TooManyRequests,
        Self::RateLimitUnavailable,
    ];

    /// Position in [`Self::ALL`] (exhaustive: a new variant must be placed).
    pub fn index(self) -> usize {
        match self {
            Self::BadRequest => 0,
            Self::NoRoute => 1,
            Self::BodyTooLarge => 2,
            Self::NoBackend => 3,
            Self::BadGateway => 4,
            Self::Timeout => 5,
            Self::ClientTimeout => 6,
            Self::TooManyRequests => 7,
            Self::RateLimitUnavailable => 8,
        }
    }

    /// The `reason` label of `weir_http_gateway_errors_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::NoRoute => "no_route",
            Self::BodyTooLarge => "body_too_large",
            Self::NoBackend => "no_backend",
            Self::BadGateway => "bad_gateway",
            Self::Timeout => "timeout",
            Self::ClientTimeout => "client_timeout",
            Self::TooManyRequests => "rate_limited",
            Self::RateLimitUnavailable => "rate_limit_unavailable",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::RateLimitUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Whose fault (metric label, log level).
    pub fn side(self) -> &'static str {
        match self {
            Self::BadRequest
            | Self::NoRoute
            | Self::BodyTooLarge
            | Self::ClientTimeout
            | Self::TooManyRequests => "client",
            Self::NoBackend | Self::BadGateway | Self::Timeout => "backend",
            Self::RateLimitUnavailable => "weir",
        }
    }

    /// The public JSON body.
    pub fn body(self, request_id: &str) -> String {
        serde_json::json!({ "error": self.to_string(), "request_id": request_id }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_error_at_its_index_with_its_own_reason() {
        let mut reasons = std::collections::HashSet::new();
        for (i, e) in GatewayError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i, "{e:?}");
            assert!(reasons.insert(e.reason()), "{e:?}");
        }
    }
}
