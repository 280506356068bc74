//! Request extractors. Auth is an extractor so a handler cannot forget it: a handler that
//! takes [`UserAuth`] or [`AgentAuth`] only runs for authenticated callers, and every
//! rejection is an [`ApiError`] with the common JSON body.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;
use crate::store::AgentRecord;

/// A JSON body whose errors name the offending field.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let mime = ct.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest {
                    field: None,
                    message: format!("cannot read body: {rejection}"),
                }
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserializes, naming the field at fault (`serde_path_to_error` gives the path for type
/// errors; missing and unknown fields are named in serde's message).
///
/// Every request body of this API is a JSON object, so anything else is refused here:
/// serde would otherwise fill a struct from an array by position (`[null,null]` would
/// become a valid `{"a":null,"b":null}`). Nested structs get the same rule from
/// [`crate::json_body::Strict`], naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        // Empty input: serde's "EOF while parsing" says it best.
        None => {}
        Some(first) => {
            let kind = match first {
                b'[' => "an array",
                b'"' => "a string",
                b'n' => "null",
                b't' | b'f' => "a boolean",
                b'-' | b'0'..=b'9' => "a number",
                _ => "not JSON",
            };
            return Err(ApiError::BadRequest {
                field: None,
                message: format!("the request body must be a JSON object, but it is {kind}"),
            });
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // `Strict` refuses arrays for nested structs too (see `json_body`).
    match serde_path_to_error::deserialize::<_, T>(crate::json_body::Strict(&mut de)) {
        Ok(v) => {
            de.end().map_err(|e| ApiError::BadRequest {
                field: None,
                message: format!("invalid JSON: {e}"),
            })?;
            Ok(v)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::BadRequest {
                    field: None,
                    message: format!("invalid JSON: {inner}"),
                });
            }
            let message = inner.to_string();
            let named = backticked(&message);
            let field = match (path.as_str(), named) {
                (".", Some(name)) => Some(name),
                (".", None) => None,
                // serde_path_to_error's path ends at the parent for a missing field but
                // already includes an unknown one.
                (p, Some(name)) if message.starts_with("missing field") => {
                    Some(format!("{p}.{name}"))
                }
                (p, _) => Some(p.to_string()),
            };
            let message = strip_position(&message);
            Err(ApiError::BadRequest { field, message })
        }
    }
}

fn backticked(message: &str) -> Option<String> {
    if !(message.starts_with("missing field") || message.starts_with("unknown field")) {
        return None;
    }
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

/// serde_json appends " at line 1 column 17"; the field name says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The client's address: the TCP peer, or the `X-Forwarded-For` hop set by a trusted proxy.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Through the extractor (not the raw extension) so tests' MockConnectInfo works.
        let peer = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if !state.config.trusted_proxies.contains(&peer) {
            return Ok(ClientIp(peer));
        }
        // Walk X-Forwarded-For from the right, skipping our own proxies: the first other
        // address is the one a trusted proxy saw.
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        let client = forwarded
            .iter()
            .rev()
            .find(|ip| !state.config.trusted_proxies.contains(ip))
            .copied()
            .unwrap_or(peer);
        Ok(ClientIp(client))
    }
}

/// Whether the client reached the core over HTTPS: `public_url` is `https://…`, or a
/// trusted proxy said `X-Forwarded-Proto: https`. Decides the `Secure` cookie attribute.
pub struct Https(pub bool);

impl FromRequestParts<AppState> for Https {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state
            .config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
        {
            return Ok(Https(true));
        }
        let peer = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map(|c| c.0.ip());
        let trusted = peer.is_ok_and(|ip| state.config.trusted_proxies.contains(&ip));
        let forwarded_https = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
        Ok(Https(trusted && forwarded_https))
    }
}

/// An authenticated UI/API user (Bearer access token).
pub struct UserAuth {
    pub username: String,
}

const BAD_TOKEN: ApiError = ApiError::Unauthorized {
    code: "unauthorized",
    message: "missing, invalid or expired access token",
};

impl FromRequestParts<AppState> for UserAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(BAD_TOKEN)?;
        let claims = state.jwt.verify(token.trim()).map_err(|_| BAD_TOKEN)?;
        let username = claims.sub.clone();
        let user = state
            .blocking(move |s| Ok(s.get_user(&username)?))
            .await?
            .ok_or(BAD_TOKEN)?;
        if user.token_generation != claims.tg {
            return Err(BAD_TOKEN);
        }
        Ok(UserAuth {
            username: user.username,
        })
    }
}

/// An authenticated agent (ID + key headers).
pub struct AgentAuth {
    pub agent: AgentRecord,
}

const BAD_AGENT: ApiError = ApiError::Unauthorized {
    code: "invalid_agent_key",
    message: "unknown agent ID or wrong agent key",
};

impl FromRequestParts<AppState> for AgentAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let id = header(capstan_proto::HEADER_AGENT_ID).ok_or(BAD_AGENT)?;
        let key = header(capstan_proto::HEADER_AGENT_KEY).ok_or(BAD_AGENT)?;
        if id.len() > 64 || key.len() > 256 {
            return Err(BAD_AGENT);
        }
        // From the in-memory snapshot (refreshed after every write to nodes, key rotation
        // included): a beat costs no store read to authenticate.
        let agent = state
            .fleet
            .snapshot()
            .agent(&id)
            .cloned()
            .ok_or(BAD_AGENT)?;
        if !crate::auth::secret::hashes_equal(
            &agent.key_hash,
            &crate::auth::secret::hash(key.trim()),
        ) {
            return Err(BAD_AGENT);
        }
        Ok(AgentAuth { agent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        port: u16,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    fn field_of(json: &str) -> Option<String> {
        match parse_json::<Body>(json.as_bytes()) {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("expected bad request, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of("{}"), Some("name".into()));
        assert_eq!(field_of(r#"{"name":5}"#), Some("name".into()));
        assert_eq!(field_of(r#"{"name":"a","nmae":1}"#), Some("nmae".into()));
        assert_eq!(
            field_of(r#"{"name":"a","inner":{"port":"x"}}"#),
            Some("inner.port".into())
        );
        assert_eq!(
            field_of(r#"{"name":"a","inner":{}}"#),
            Some("inner.port".into())
        );
        assert_eq!(field_of(r#"{"name":"#), None);
        assert_eq!(field_of(r#"{"name":"a"} trailing"#), None);
    }

    #[test]
    fn only_an_object_fills_a_struct() {
        for body in [
            "[null,null]",
            r#"["a",null]"#,
            " \n[]",
            "null",
            "\"x\"",
            "5",
            "true",
        ] {
            match parse_json::<Body>(body.as_bytes()) {
                Err(ApiError::BadRequest { message, .. }) => {
                    assert!(
                        message.contains("request body must be a JSON object"),
                        "{body}: {message}"
                    )
                }
                other => panic!("{body}: expected bad request, got {other:?}"),
            }
        }
        assert!(parse_json::<Body>(br#" {"name":"a"}"#).is_ok());
        assert_eq!(
            field_of(r#"{"name":"a","inner":[7]}"#),
            Some("inner".into())
        );
    }
}
