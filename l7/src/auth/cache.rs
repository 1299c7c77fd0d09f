//! A cache of tokens whose signature verified, per provider.
//!
//! Clients on keep-alive connections send the same token with every
//! request, and an RS256 signature check costs more than proxying the
//! request itself; so a token seen before skips the signature (never the
//! claims: `exp`, `nbf`, `iss`, `aud`, required claims and scopes are
//! checked again on every request, at that request's time). Entries are
//! keyed by the whole token text (a hit needs the exact bytes that
//! verified), and tagged with the key-set version they verified under: when
//! a JWKS refresh changes the keys, older entries stop matching, so a key
//! removed by the identity provider stops admitting cached tokens at once.
//! Only tokens that passed every check are stored; bounded: when full, the
//! cache is emptied (it refills from traffic).

use std::collections::HashMap;
use std::sync::Mutex;

use super::Claims;

/// Most tokens kept per provider (each at most `max_token_bytes`).
pub const CAPACITY: usize = 4096;

/// Verified tokens of one provider.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<Box<str>, (u64, Claims)>>,
}

impl TokenCache {
    /// The claims of `token` if it verified under key-set `version`.
    pub fn get(&self, token: &str, version: u64) -> Option<Claims> {
        let entries = self.entries.lock().ok()?;
        match entries.get(token) {
            Some((v, claims)) if *v == version => Some(claims.clone()),
            _ => None,
        }
    }

    /// Remembers that `token` verified under key-set `version`.
    pub fn insert(&self, token: &str, version: u64, claims: Claims) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY && !entries.contains_key(token) {
                entries.clear();
            }
            entries.insert(token.into(), (version, claims));
        }
    }

    /// Tokens held now.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    /// True when no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_need_the_same_token_and_key_version_and_the_size_is_bounded() {
        let cache = TokenCache::default();
        let claims = Claims::new("p", serde_json::Map::new());
        cache.insert("a.b.c", 1, claims.clone());
        assert!(cache.get("a.b.c", 1).is_some());
        assert!(cache.get("a.b.c", 2).is_none(), "keys changed since");
        assert!(cache.get("a.b.d", 1).is_none());
        for i in 0..CAPACITY + 10 {
            cache.insert(&format!("t{i}"), 1, claims.clone());
            assert!(cache.len() <= CAPACITY);
        }
    }
}
