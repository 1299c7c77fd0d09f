//! UDP load balancing: flows with affinity, bounded memory and health checks.
//!
//! [`flow_table`] is the sans-io core (which client talks to which upstream
//! socket, LRU eviction, idle expiry, reply counting); [`service`] is the
//! thin async shell that owns the sockets.

pub mod flow_table;
pub mod service;

pub use service::{MAX_DATAGRAM, UdpService, UdpSettings};

/// The default `max_flows`: half the process's open-file limit (each flow
/// holds one socket), at most 1,000,000.
pub fn default_max_flows() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    (soft / 2).clamp(16, 1_000_000) as usize
}

#[cfg(test)]
mod flow_sim;
