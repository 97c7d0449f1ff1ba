//! A stable, dependency-free hash for change detection: config and secret-file hashes, TLS and
//! proxy fingerprints, alert fingerprints.
//!
//! A leaf module on purpose: `config`, `tls`, `watch`, `route` and `deliver` all hash bytes, and
//! none of them should import another just for that (an import circle config ↔ tls once did).

/// FNV-1a, cut to 48 bits so it is exact as a Prometheus sample value (an `f64`).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash & 0xffff_ffff_ffff
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn is_stable_and_fits_in_48_bits() {
        // The published FNV-1a 64 value of "a" is 0xaf63dc4c8601ec8c; we keep its low 48 bits.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c & 0xffff_ffff_ffff);
        assert!(fnv1a(&[0xff; 1000]) < 1 << 48);
    }
}
