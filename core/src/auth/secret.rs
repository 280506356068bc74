//! Random secrets (agent keys, refresh and join tokens) and their stored form.
//!
//! These secrets carry 256 bits of entropy, so a single SHA-256 is a sound stored form:
//! there is nothing to brute-force, and it keeps the 1 Hz heartbeat check at microseconds
//! (argon2 would cost ~55 ms per beat per agent).

use rand::RngCore;
use sha2::{Digest, Sha256};

/// `bytes` random bytes, hex encoded (URL-, shell- and env-file-safe).
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The stored form of a secret.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two hashes without an early exit on the first differing byte.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_random_and_hashes_compare() {
        let a = super::random_token(32);
        assert_eq!(a.len(), 64);
        assert_ne!(a, super::random_token(32));
        assert!(super::hashes_equal(&super::hash(&a), &super::hash(&a)));
        assert!(!super::hashes_equal(&super::hash(&a), &super::hash("b")));
    }
}
