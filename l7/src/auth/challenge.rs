//! The answers to a refused request (RFC 6750 §3): 401 with a `Bearer`
//! challenge, or 403 for a valid token without the required scope.
//!
//! `error_description` is one of [`Reason::description`]'s fixed strings:
//! the token, its claims and key ids are never echoed.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::reason::Reason;
use crate::body::{ProxyBody, full};
use crate::headers;

/// The `WWW-Authenticate` value for `reason` (never called with `Ok`).
pub fn challenge(reason: Reason, realm: &str, scope: &str) -> String {
    match reason {
        Reason::Missing => format!("Bearer realm=\"{realm}\""),
        Reason::InsufficientScope => format!(
            "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{}\", scope=\"{scope}\"",
            reason.description()
        ),
        _ => format!(
            "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
            reason.description()
        ),
    }
}

/// The gateway's response refusing a request for `reason`.
pub fn refuse(reason: Reason, realm: &str, scope: &str, request_id: &str) -> Response<ProxyBody> {
    let (status, error) = if reason == Reason::InsufficientScope {
        (StatusCode::FORBIDDEN, "forbidden")
    } else {
        (StatusCode::UNAUTHORIZED, "unauthorized")
    };
    let body = serde_json::json!({ "error": error, "request_id": request_id }).to_string();
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Realm and scopes are validated configuration: printable ASCII.
    if let Ok(v) = HeaderValue::from_str(&challenge(reason, realm, scope)) {
        h.insert(header::WWW_AUTHENTICATE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(headers::REQUEST_ID, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc_6750() {
        assert_eq!(
            challenge(Reason::Missing, "api", ""),
            "Bearer realm=\"api\""
        );
        assert_eq!(
            challenge(Reason::Expired, "api", ""),
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"token expired\""
        );
        assert!(
            challenge(Reason::InsufficientScope, "api", "read write")
                .contains("error=\"insufficient_scope\"")
        );
        assert_eq!(
            refuse(Reason::InsufficientScope, "r", "s", "id").status(),
            403
        );
        assert_eq!(refuse(Reason::BadSignature, "r", "", "id").status(), 401);
    }
}
