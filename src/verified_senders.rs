//! Sender credentials verified under one config snapshot.
//!
//! bcrypt is slow on purpose, so a successful basic-auth verification is remembered — as a
//! digest of user, password and hash, never the password — and Alertmanager's steady stream of
//! requests pays for it once. The cache belongs to the snapshot: a reload starts a fresh one, so
//! a removed user or a changed hash is never let in from memory. It is a lock-free set, read and
//! written on the request path without any request waiting for another.

/// Remembered successful verifications; cleared when full (an attacker cannot fill it: only
/// correct passwords get in).
const CAPACITY: usize = 1024;

/// Digests of credentials that verified.
#[derive(Debug, Default)]
pub struct VerifiedSenders {
    digests: papaya::HashSet<[u8; 32]>,
}

impl VerifiedSenders {
    /// Whether these credentials verified before.
    pub fn contains(&self, digest: &[u8; 32]) -> bool {
        self.digests.pin().contains(digest)
    }

    /// Remembers credentials that just verified.
    pub fn insert(&self, digest: [u8; 32]) {
        let digests = self.digests.pin();
        if digests.len() >= CAPACITY {
            digests.clear();
        }
        digests.insert(digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_stays_bounded() {
        let verified = VerifiedSenders::default();
        verified.insert([1; 32]);
        assert!(verified.contains(&[1; 32]));
        assert!(!verified.contains(&[2; 32]));
        for n in 0..=CAPACITY {
            let mut digest = [0; 32];
            digest[..8].copy_from_slice(&(n as u64).to_le_bytes());
            verified.insert(digest);
        }
        assert!(verified.digests.pin().len() <= CAPACITY);
    }
}
