//! Authentication primitives: password hashing, access tokens, secrets, login throttling.
//! HTTP concerns (headers, extractors) live in `extract.rs`; this module knows no axum.

pub mod jwt;
pub mod password;
pub mod rate_limit;
pub mod secret;
