//! Fixed-seed hashing for selection keys.
//!
//! Two weir processes with the same configuration must send the same key to
//! the same backend, so nothing here may use `RandomState`. The function is
//! FNV-1a over the bytes followed by the SplitMix64 finaliser, which gives
//! FNV's stability with a well-mixed output (FNV alone is weak in its low
//! bits, and Maglev and the ring index with them).

use std::net::{IpAddr, SocketAddr};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// SplitMix64's finaliser: a bijective 64-bit mixer.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hashes bytes with a fixed seed; stable across processes, versions and machines.
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    hash_bytes_seeded(bytes, 0)
}

/// Hashes bytes with a caller-chosen fixed seed (Maglev uses two independent ones).
#[inline]
pub fn hash_bytes_seeded(bytes: &[u8], seed: u64) -> u64 {
    let mut h = FNV_OFFSET ^ mix64(seed);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    mix64(h)
}

/// The selection key of a client IP address.
pub fn hash_ip(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => hash_bytes(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // A v4 client seen on a dual-stack socket hashes like the same client on a v4 socket.
            Some(v4) => hash_bytes(&v4.octets()),
            None => hash_bytes(&v6.octets()),
        },
    }
}

/// The selection key of a client IP address and port.
pub fn hash_ip_port(addr: SocketAddr) -> u64 {
    mix64(hash_ip(addr.ip()) ^ u64::from(addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Pinned: changing these moves every client of every consistent-hash pool.
        assert_eq!(hash_bytes(b""), mix64(FNV_OFFSET ^ mix64(0)));
        assert_eq!(
            hash_ip("10.0.0.1".parse().unwrap()),
            hash_ip("::ffff:10.0.0.1".parse().unwrap())
        );
        assert_ne!(
            hash_ip_port("10.0.0.1:1".parse().unwrap()),
            hash_ip_port("10.0.0.1:2".parse().unwrap())
        );
    }
}
