//! Argon2id password hashing. Hashing costs ~55 ms of CPU, so callers run it on the
//! blocking pool, never on an async worker.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Minimum length enforced for passwords set through the API and CLI.
pub const MIN_LEN: usize = 8;
/// Upper bound so a huge body cannot buy a long hash computation.
pub const MAX_LEN: usize = 1024;

/// Hashes with a fresh random salt into a PHC string (`$argon2id$v=19$...`).
pub fn hash(password: &str) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Verifies against a PHC string. A malformed stored hash verifies as false.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A valid hash of a random password, verified against when the user does not exist so
/// that "no such user" takes as long as "wrong password".
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(&super::secret::random_token(16)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_then_verify() {
        let h = super::hash("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &h));
        assert!(!super::verify("wrong horse", &h));
        assert!(!super::verify("x", "not a phc string"));
    }
}
