//! Stable, non-cryptographic fingerprints of bytes: config hashes, client reuse keys, dedup keys.

/// FNV-1a, cut to 48 bits so it is exact as a Prometheus sample value.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash & 0xffff_ffff_ffff
}
