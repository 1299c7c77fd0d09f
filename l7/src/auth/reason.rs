//! Why a request was let through or refused, and the per-provider decision
//! counters (`weir_jwt_decisions_total{provider, reason}`).
//!
//! Every outcome is one [`Reason`]: its metric label, its HTTP status
//! (401, or 403 for a valid token without the scopes) and the short
//! `error_description` of the challenge, which never echoes the token.
//! Counters are created on first use per reason and kept, so the request
//! path never builds a label string.

use std::sync::OnceLock;

use metrics::Counter;
use weir_common::metrics as names;

/// The outcome of checking one request against one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A valid token: the request goes on.
    Ok,
    /// No token where the provider reads it.
    Missing,
    /// Longer than `max_token_bytes`: refused before any decoding.
    Oversized,
    /// Not three base64url parts, or a header or payload that is not a
    /// JSON object, or a claim of the wrong type.
    Malformed,
    /// `alg` is `none` or not in the provider's `algorithms`.
    AlgNotAllowed,
    /// The header embeds or points at a key (`jwk`, `jku`, `x5u`, `x5c`):
    /// never fetched, never trusted.
    EmbeddedKey,
    /// The header has `crit`: weir understands no extension.
    UnknownCrit,
    /// No key has the token's `kid`.
    UnknownKid,
    /// The provider has no key yet (JWKS not fetched).
    NoKeys,
    /// No key of the algorithm's family (an HMAC `alg` with only public
    /// keys: the RS256→HS256 confusion), or the key's own `alg` differs.
    KeyMismatch,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is past (with leeway), or missing.
    Expired,
    /// `nbf` is in the future (with leeway).
    NotYetValid,
    /// `iss` is not the provider's issuer.
    BadIssuer,
    /// `aud` names none of the provider's audiences.
    BadAudience,
    /// A claim in `required_claims` is absent.
    MissingClaim,
    /// A valid token without every required scope: 403.
    InsufficientScope,
}

impl Reason {
    /// Every reason, in label order.
    pub const ALL: [Reason; 17] = [
        Reason::Ok,
        Reason::Missing,
        Reason::Oversized,
        Reason::Malformed,
        Reason::AlgNotAllowed,
        Reason::EmbeddedKey,
        Reason::UnknownCrit,
        Reason::UnknownKid,
        Reason::NoKeys,
        Reason::KeyMismatch,
        Reason::BadSignature,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::BadIssuer,
        Reason::BadAudience,
        Reason::MissingClaim,
        Reason::InsufficientScope,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missing => "missing",
            Self::Oversized => "oversized",
            Self::Malformed => "malformed",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::EmbeddedKey => "embedded_key",
            Self::UnknownCrit => "unknown_crit",
            Self::UnknownKid => "unknown_kid",
            Self::NoKeys => "no_keys",
            Self::KeyMismatch => "key_mismatch",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadIssuer => "bad_issuer",
            Self::BadAudience => "bad_audience",
            Self::MissingClaim => "missing_claim",
            Self::InsufficientScope => "insufficient_scope",
        }
    }

    /// The `error_description` of the challenge: short, fixed, no token.
    pub fn description(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missing => "no token",
            Self::Oversized => "token too large",
            Self::Malformed => "malformed token",
            Self::AlgNotAllowed => "algorithm not allowed",
            Self::EmbeddedKey => "embedded or remote keys are not accepted",
            Self::UnknownCrit => "unsupported critical header",
            Self::UnknownKid => "unknown key id",
            Self::NoKeys => "signing keys unavailable",
            Self::KeyMismatch => "algorithm does not match the key",
            Self::BadSignature => "invalid signature",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::BadIssuer => "wrong issuer",
            Self::BadAudience => "wrong audience",
            Self::MissingClaim => "required claim missing",
            Self::InsufficientScope => "insufficient scope",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// How bad a failure is when several providers were tried: the most
    /// telling one is reported (a valid token without scopes beats a token
    /// meant for another provider, which beats no token at all).
    pub(crate) fn rank(self) -> u8 {
        match self {
            Self::Ok => 4,
            Self::InsufficientScope => 3,
            Self::Missing => 0,
            Self::UnknownKid | Self::NoKeys | Self::BadIssuer => 1,
            _ => 2,
        }
    }
}

/// The decision counters of one provider.
#[derive(Debug)]
pub struct DecisionMetrics {
    provider: String,
    counters: [OnceLock<Counter>; 17],
}

impl DecisionMetrics {
    /// Counters for `provider`, registered on first use.
    pub fn new(provider: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            counters: Default::default(),
        }
    }

    /// Counts one decision.
    pub fn count(&self, reason: Reason) {
        if let Some(slot) = self.counters.get(reason.index()) {
            slot.get_or_init(|| {
                metrics::counter!(names::JWT_DECISIONS, "provider" => self.provider.clone(), "reason" => reason.label())
            })
            .increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_indexes_match() {
        let mut labels: Vec<&str> = Reason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Reason::ALL.len());
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(!r.description().is_empty());
        }
    }
}
