//! Short-lived access tokens: HS256 JWTs signed with a key generated once per store.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    /// The user's token generation when issued; a password change bumps it.
    pub tg: u64,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

#[derive(Debug, thiserror::Error)]
#[error("token: {0}")]
pub struct TokenError(String);

impl JwtKeys {
    pub fn new(secret: &[u8]) -> JwtKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        // Tokens live minutes; no clock leeway beyond a few seconds is needed.
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn issue(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| TokenError(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| TokenError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_token_verifies_and_tampering_fails() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef");
        let now = crate::clock::now_ms() / 1000;
        let t = keys
            .issue(&Claims {
                sub: "admin".into(),
                iat: now,
                exp: now + 60,
                tg: 0,
            })
            .expect("issue");
        assert_eq!(keys.verify(&t).expect("verify").sub, "admin");
        let other = JwtKeys::new(b"another-key-another-key-another!");
        assert!(other.verify(&t).is_err());
        let expired = keys
            .issue(&Claims {
                sub: "admin".into(),
                iat: now - 100,
                exp: now - 60,
                tg: 0,
            })
            .expect("issue");
        assert!(keys.verify(&expired).is_err());
    }
}
