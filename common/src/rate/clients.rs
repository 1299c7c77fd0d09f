//! Per-client connection limits for a listener: connections open at once
//! and new connections per second (GCRA), both keyed by source IP.
//!
//! [`ClientLimits::admit`] either hands out a [`ClientSlot`], a drop guard
//! that gives the concurrent slot back when the connection ends (however it
//! ends: closed, reset, task cancelled), or says which limit refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::{KeyedStore, Rate};

/// Which per-client limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections_per_client`.
    Concurrent,
    /// `connection_rate_per_client`.
    Rate,
}

impl Refused {
    /// The metric `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Concurrent => "max_connections_per_client",
            Self::Rate => "connection_rate_per_client",
        }
    }
}

/// The per-client limits of one listener.
#[derive(Debug)]
pub struct ClientLimits {
    max_concurrent: Option<u32>,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
    rate: Option<KeyedStore>,
}

/// One admitted connection's concurrent slot; released on drop.
#[derive(Debug)]
pub struct ClientSlot {
    ip: IpAddr,
    open: Option<Arc<Mutex<HashMap<IpAddr, u32>>>>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some(open) = &self.open else { return };
        let mut map = open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl ClientLimits {
    /// Limits with at most `max_concurrent` connections per client and
    /// `rate` new connections per client; `None` for neither means no limit.
    /// `max_clients` bounds the rate limiter's memory.
    pub fn new(max_concurrent: Option<u32>, rate: Option<Rate>, max_clients: usize) -> Self {
        Self {
            max_concurrent,
            open: Arc::default(),
            rate: rate.map(|r| KeyedStore::new(r, max_clients)),
        }
    }

    /// True when a limit is set.
    pub fn is_active(&self) -> bool {
        self.max_concurrent.is_some() || self.rate.is_some()
    }

    /// Clients with a connection open now.
    pub fn clients_open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Admits a new connection from `ip` at `now` (nanoseconds).
    pub fn admit(&self, ip: IpAddr, now: u64) -> Result<ClientSlot, Refused> {
        // The concurrent limit first: a client refused for it does not also
        // spend its rate.
        if let Some(max) = self.max_concurrent {
            let map = self
                .open
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if map.get(&ip).copied().unwrap_or(0) >= max {
                return Err(Refused::Concurrent);
            }
        }
        if let Some(rate) = &self.rate
            && !rate.check(crate::hash::hash_ip(ip), now).allowed
        {
            return Err(Refused::Rate);
        }
        let Some(max) = self.max_concurrent else {
            return Ok(ClientSlot { ip, open: None });
        };
        let mut map = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return Err(Refused::Concurrent);
        }
        *n += 1;
        Ok(ClientSlot {
            ip,
            open: Some(Arc::clone(&self.open)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn concurrent_slots_come_back_on_drop() {
        let limits = ClientLimits::new(Some(2), None, 1000);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let s1 = limits.admit(a, 0).unwrap();
        let _s2 = limits.admit(a, 0).unwrap();
        assert_eq!(limits.admit(a, 0).unwrap_err(), Refused::Concurrent);
        let _other = limits.admit(b, 0).unwrap();
        drop(s1);
        let _s3 = limits.admit(a, 0).unwrap();
        assert_eq!(limits.clients_open(), 2);
    }

    #[test]
    fn rate_per_client() {
        let limits = ClientLimits::new(None, Some(Rate::new(1, Duration::from_secs(1), 3)), 1000);
        let a: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            limits.admit(a, 0).unwrap();
        }
        assert_eq!(limits.admit(a, 0).unwrap_err(), Refused::Rate);
        assert!(limits.admit([127, 0, 0, 2].into(), 0).is_ok());
        assert!(limits.admit(a, 1_000_000_000).is_ok());
        assert_eq!(limits.clients_open(), 0);
    }
}
