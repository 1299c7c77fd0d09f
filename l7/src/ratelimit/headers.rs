//! The response headers of rate limits, after the IETF draft *RateLimit
//! header fields for HTTP* (draft-ietf-httpapi-ratelimit-headers-09):
//! structured-field lists with one item per policy,
//! `RateLimit-Policy: "name";q=<quota>;w=<window seconds>` and
//! `RateLimit: "name";r=<remaining>;t=<seconds until full>`, plus
//! `Retry-After` (RFC 9110) on a 429.

use std::fmt::Write as _;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use weir_common::rate::{Decision, Rate};

use super::{Verdict, ceil_secs};
use crate::error::GatewayError;

/// `RateLimit-Policy`.
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// A policy's `RateLimit-Policy` item. The name is a config name: quotes
/// and backslashes are escaped as sf-string requires, and anything outside
/// printable ASCII is dropped.
pub fn policy_item(name: &str, rate: &Rate) -> String {
    format!(
        "{};q={};w={}",
        sf_string(name),
        rate.count(),
        rate.period().as_secs().max(1)
    )
}

fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Collects the items of the policies checked for one request.
#[derive(Debug, Default)]
pub struct Builder {
    policy: String,
    state: String,
    retry_after: Option<Duration>,
}

impl Builder {
    /// Adds one policy's items.
    pub fn item(&mut self, policy_item: &str, name: &str, d: &Decision) {
        if !self.policy.is_empty() {
            self.policy.push_str(", ");
            self.state.push_str(", ");
        }
        self.policy.push_str(policy_item);
        let _ = write!(
            self.state,
            "{};r={};t={}",
            sf_string(name),
            d.remaining,
            ceil_secs(d.reset)
        );
    }

    /// Sets `Retry-After` (the longest wins).
    pub fn retry_after(&mut self, d: Duration) {
        self.retry_after = Some(self.retry_after.map_or(d, |r| r.max(d)));
    }

    fn headers(self) -> Option<HeaderMap> {
        if self.policy.is_empty() && self.retry_after.is_none() {
            return None;
        }
        let mut h = HeaderMap::new();
        if !self.policy.is_empty()
            && let (Ok(p), Ok(s)) = (
                HeaderValue::from_str(&self.policy),
                HeaderValue::from_str(&self.state),
            )
        {
            h.insert(RATELIMIT_POLICY.clone(), p);
            h.insert(RATELIMIT.clone(), s);
        }
        if let Some(d) = self.retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from(ceil_secs(d).max(1)));
        }
        Some(h)
    }

    /// The request goes on, with these headers.
    pub fn allow(self) -> Verdict {
        Verdict {
            headers: self.headers(),
            reject: None,
        }
    }

    /// The request is refused with `e`.
    pub fn reject(self, e: GatewayError) -> Verdict {
        Verdict {
            headers: self.headers(),
            reject: Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_follow_the_draft_syntax() {
        let rate = Rate::new(100, Duration::from_secs(60), 10);
        assert_eq!(
            policy_item("per-client", &rate),
            "\"per-client\";q=100;w=60"
        );
        assert_eq!(sf_string("a\"b\\c\u{e9}"), "\"a\\\"b\\\\c\"");
        let mut b = Builder::default();
        let d = Decision {
            allowed: false,
            remaining: 0,
            retry_after: Duration::from_millis(1200),
            reset: Duration::from_millis(5500),
        };
        b.item(&policy_item("a", &rate), "a", &d);
        b.item(&policy_item("b", &rate), "b", &d);
        b.retry_after(d.retry_after);
        let v = b.reject(GatewayError::TooManyRequests);
        let h = v.headers.unwrap();
        assert_eq!(h[&RATELIMIT_POLICY], "\"a\";q=100;w=60, \"b\";q=100;w=60");
        assert_eq!(h[&RATELIMIT], "\"a\";r=0;t=6, \"b\";r=0;t=6");
        assert_eq!(h[RETRY_AFTER], "2");
        assert!(Builder::default().allow().headers.is_none());
    }
}
