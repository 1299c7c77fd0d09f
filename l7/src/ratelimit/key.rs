//! What a request is counted by: its rate-limit key, a fixed-seed 64-bit
//! hash of the policy's key parts (client IP, a header, a JWT claim, the
//! route), so two weir instances compute the same key for the same request
//! and Redis never sees raw header values.

use std::borrow::Cow;
use std::net::IpAddr;

use weir_common::hash::{hash_bytes_seeded, mix64};
use weir_config::rate_limit::KeyPart;

/// Where claim keys (`claim:NAME`) find a request's verified JWT claims.
///
/// The JWT authenticator runs before rate limits and leaves the verified
/// claims in the request's extensions; an implementation of this trait reads
/// them: [`JwtClaims`], the default (another may be installed with
/// [`super::RateLimits::with_claims`]). A request without the claim is
/// keyed by its client IP.
pub trait ClaimSource: Send + Sync {
    /// The value of claim `name` of the request, as bytes (a string claim's
    /// text, other claims as their JSON), or `None` when absent or
    /// unauthenticated.
    fn claim<'a>(&self, parts: &'a http::request::Parts, name: &str) -> Option<Cow<'a, [u8]>>;
}

/// The claims the JWT step verified: [`crate::auth::Claims`] in the
/// request's extensions. A string claim keys by its text, any other by its
/// JSON, each behind the name of the provider that verified it: `sub` 42 of
/// one identity provider is not `sub` 42 of another, so the two do not share
/// a limit. The default source of [`super::RateLimits`].
#[derive(Debug, Clone, Copy, Default)]
pub struct JwtClaims;

impl ClaimSource for JwtClaims {
    fn claim<'a>(&self, parts: &'a http::request::Parts, name: &str) -> Option<Cow<'a, [u8]>> {
        let claims = parts.extensions.get::<crate::auth::Claims>()?;
        let value = claims.get(name)?;
        let json;
        let bytes = match value.as_str() {
            Some(text) => text.as_bytes(),
            None => {
                json = serde_json::to_vec(value).ok()?;
                &json
            }
        };
        let provider = claims.provider().as_bytes();
        let mut key = Vec::with_capacity(provider.len() + 1 + bytes.len());
        key.extend_from_slice(provider);
        key.push(0);
        key.extend_from_slice(bytes);
        Some(Cow::Owned(key))
    }
}

/// No claims: every claim key part falls back to the client IP.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoClaims;

impl ClaimSource for NoClaims {
    fn claim<'a>(&self, _: &'a http::request::Parts, _: &str) -> Option<Cow<'a, [u8]>> {
        None
    }
}

// One seed per kind of part, so a header whose value is "10.0.0.1" and the
// client IP 10.0.0.1 are different keys.
const SEED_IP: u64 = 1;
const SEED_HEADER: u64 = 2;
const SEED_CLAIM: u64 = 3;
const SEED_ROUTE: u64 = 4;

fn ip_hash(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => hash_bytes_seeded(&v4.octets(), SEED_IP),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hash_bytes_seeded(&v4.octets(), SEED_IP),
            None => hash_bytes_seeded(&v6.octets(), SEED_IP),
        },
    }
}

/// The key of a request for a policy keyed by `parts`. A header or claim
/// the request lacks counts as its client IP.
pub fn request_key(
    key: &[KeyPart],
    parts: &http::request::Parts,
    client: IpAddr,
    route: &str,
    claims: &dyn ClaimSource,
) -> u64 {
    let mut h = 0u64;
    for (i, part) in key.iter().enumerate() {
        let one = match part {
            KeyPart::ClientIp => ip_hash(client),
            KeyPart::Route => hash_bytes_seeded(route.as_bytes(), SEED_ROUTE),
            KeyPart::Header(name) => match parts.headers.get(name.as_str()) {
                Some(v) => hash_bytes_seeded(v.as_bytes(), SEED_HEADER),
                None => ip_hash(client),
            },
            KeyPart::Claim(name) => match claims.claim(parts, name) {
                Some(v) => hash_bytes_seeded(&v, SEED_CLAIM),
                None => ip_hash(client),
            },
        };
        // Order matters: [a, b] and [b, a] are different combinations.
        h = mix64(h ^ one.rotate_left(i as u32 * 7));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn jwt_claim_keys_belong_to_their_provider() {
        let with = |provider: &str, sub: &str| {
            let mut p = parts(&[]);
            let mut claims = crate::auth::verify::ClaimMap::new();
            claims.insert("sub".into(), serde_json::Value::from(sub));
            p.extensions
                .insert(crate::auth::Claims::new(provider, claims));
            request_key(&[KeyPart::Claim("sub".into())], &p, A, "r", &JwtClaims)
        };
        assert_eq!(with("idp-a", "42"), with("idp-a", "42"));
        assert_ne!(with("idp-a", "42"), with("idp-a", "43"));
        assert_ne!(
            with("idp-a", "42"),
            with("idp-b", "42"),
            "the same subject of two identity providers is two clients"
        );
        // No claims: the client IP, as for a missing header.
        let p = parts(&[]);
        assert_eq!(
            request_key(&[KeyPart::Claim("sub".into())], &p, A, "r", &JwtClaims),
            request_key(&[KeyPart::ClientIp], &p, A, "r", &NoClaims)
        );
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    /// A claim source for tests: the claim `sub` is the `x-test-sub` header.
    struct HeaderClaims;
    impl ClaimSource for HeaderClaims {
        fn claim<'a>(&self, parts: &'a http::request::Parts, name: &str) -> Option<Cow<'a, [u8]>> {
            (name == "sub")
                .then(|| parts.headers.get("x-test-sub"))
                .flatten()
                .map(|v| Cow::Borrowed(v.as_bytes()))
        }
    }

    #[test]
    fn client_ip_and_header_keys() {
        let ip = [KeyPart::ClientIp];
        let p = parts(&[]);
        assert_eq!(
            request_key(&ip, &p, A, "r", &NoClaims),
            request_key(&ip, &p, A, "other", &NoClaims)
        );
        assert_ne!(
            request_key(&ip, &p, A, "r", &NoClaims),
            request_key(&ip, &p, B, "r", &NoClaims)
        );
        let hdr = [KeyPart::Header("x-api-key".into())];
        let k1 = request_key(&hdr, &parts(&[("x-api-key", "k1")]), A, "r", &NoClaims);
        let k1_b = request_key(&hdr, &parts(&[("x-api-key", "k1")]), B, "r", &NoClaims);
        let k2 = request_key(&hdr, &parts(&[("x-api-key", "k2")]), A, "r", &NoClaims);
        assert_eq!(k1, k1_b, "an API key is counted wherever it comes from");
        assert_ne!(k1, k2);
        // Without the header: counted by client IP, like a client_ip key.
        assert_eq!(
            request_key(&hdr, &p, A, "r", &NoClaims),
            request_key(&ip, &p, A, "r", &NoClaims)
        );
        // A header whose value looks like an IP is not that IP.
        let fake = request_key(
            &hdr,
            &parts(&[("x-api-key", "10.0.0.1")]),
            B,
            "r",
            &NoClaims,
        );
        assert_ne!(fake, request_key(&ip, &p, A, "r", &NoClaims));
    }

    #[test]
    fn route_and_combinations() {
        let p = parts(&[]);
        let route = [KeyPart::Route];
        assert_eq!(
            request_key(&route, &p, A, "r1", &NoClaims),
            request_key(&route, &p, B, "r1", &NoClaims)
        );
        assert_ne!(
            request_key(&route, &p, A, "r1", &NoClaims),
            request_key(&route, &p, A, "r2", &NoClaims)
        );
        let both = [KeyPart::ClientIp, KeyPart::Route];
        let swapped = [KeyPart::Route, KeyPart::ClientIp];
        assert_ne!(
            request_key(&both, &p, A, "r1", &NoClaims),
            request_key(&both, &p, A, "r2", &NoClaims)
        );
        assert_ne!(
            request_key(&both, &p, A, "r1", &NoClaims),
            request_key(&both, &p, B, "r1", &NoClaims)
        );
        assert_ne!(
            request_key(&both, &p, A, "r1", &NoClaims),
            request_key(&swapped, &p, A, "r1", &NoClaims)
        );
    }

    #[test]
    fn claim_keys_use_the_claim_source_and_fall_back_to_the_client_ip() {
        let claim = [KeyPart::Claim("sub".into())];
        let ip = [KeyPart::ClientIp];
        let with = parts(&[("x-test-sub", "alice")]);
        let without = parts(&[]);
        // No claim source yet (the JWT branch wires one): keyed by IP.
        assert_eq!(
            request_key(&claim, &with, A, "r", &NoClaims),
            request_key(&ip, &with, A, "r", &NoClaims)
        );
        // With claims: alice is one key from any address.
        let a1 = request_key(&claim, &with, A, "r", &HeaderClaims);
        let a2 = request_key(&claim, &with, B, "r", &HeaderClaims);
        assert_eq!(a1, a2);
        assert_ne!(a1, request_key(&ip, &with, A, "r", &HeaderClaims));
        // A request without the claim: its IP.
        assert_eq!(
            request_key(&claim, &without, B, "r", &HeaderClaims),
            request_key(&ip, &without, B, "r", &HeaderClaims)
        );
    }

    #[test]
    fn mapped_ipv6_is_its_ipv4() {
        let ip = [KeyPart::ClientIp];
        let p = parts(&[]);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            request_key(&ip, &p, A, "r", &NoClaims),
            request_key(&ip, &p, mapped, "r", &NoClaims)
        );
    }
}
