//! Login, token refresh (rotating), logout and password change.
//!
//! Two kinds of client hold a session. A script logs in and gets both tokens in the JSON
//! body. The web UI logs in with `session_cookie: true`: the refresh token then travels
//! only in an HttpOnly, SameSite=Strict cookie scoped to `/api/auth` (Secure when the
//! core is reached over HTTPS), so no script in the page can read it, and the body
//! carries the access token alone (kept in memory by the SPA). Refresh and logout take
//! the token from the body when given, else from the cookie. A refresh token works once;
//! presenting a used one revokes its whole family (see `store::tokens`).

use axum::Json;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::jwt::Claims;
use crate::auth::{password, secret};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::extract::{ApiJson, ClientIp, Https, UserAuth};
use crate::store::{RefreshTokenRecord, Rotation, UserRecord};

/// The cookie holding the web UI's refresh token.
pub const REFRESH_COOKIE: &str = "capstan_refresh";
/// The only path the browser sends the cookie to.
const COOKIE_PATH: &str = "/api/auth";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
    /// True (the web UI): the refresh token is set as an HttpOnly cookie and left out of
    /// the body. False (default, scripts): it is returned in the body.
    #[serde(default)]
    session_cookie: bool,
}

/// The refresh token to use; when absent, the `capstan_refresh` cookie's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    current_password: String,
    new_password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    access_token: String,
    /// Absent when the refresh token was set as a cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    username: String,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    username: String,
}

const INVALID_CREDENTIALS: ApiError = ApiError::Unauthorized {
    code: "invalid_credentials",
    message: "wrong username or password",
};
const INVALID_REFRESH: ApiError = ApiError::Unauthorized {
    code: "invalid_refresh_token",
    message: "refresh token is invalid, expired or already used",
};

fn check_len(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} bytes"),
        ));
    }
    Ok(())
}

pub(crate) fn throttle(state: &AppState, ip: std::net::IpAddr) -> Result<(), ApiError> {
    state
        .auth_limiter
        .check(ip)
        .map_err(|wait| ApiError::RateLimited {
            retry_after_secs: wait.as_secs().max(1),
        })
}

fn refresh_ttl_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.refresh_token_ttl_secs)
        .unwrap_or(i64::MAX / 2_000)
        .saturating_mul(1000)
}

/// The token pair for `user`, with an access token issued now.
fn token_response(
    state: &AppState,
    user: &UserRecord,
    refresh_token: String,
) -> Result<TokenResponse, ApiError> {
    let now = now_ms();
    let ttl = state.config.access_token_ttl_secs;
    let claims = Claims {
        sub: user.username.clone(),
        iat: now / 1000,
        exp: now / 1000 + i64::try_from(ttl).unwrap_or(i64::MAX / 2),
        tg: user.token_generation,
    };
    let access_token = state.jwt.issue(&claims).map_err(ApiError::internal)?;
    Ok(TokenResponse {
        access_token,
        refresh_token: Some(refresh_token),
        token_type: "Bearer",
        expires_in: ttl,
        username: user.username.clone(),
    })
}

/// Starts a session (a new refresh token family) for `user`.
fn issue(state: &AppState, user: &UserRecord) -> Result<TokenResponse, ApiError> {
    let now = now_ms();
    let refresh_token = secret::random_token(32);
    let hash = secret::hash(&refresh_token);
    state.store.insert_refresh(
        &hash,
        &RefreshTokenRecord {
            username: user.username.clone(),
            created_at_ms: now,
            expires_at_ms: now.saturating_add(refresh_ttl_ms(state)),
            family: hash.clone(),
            used_at_ms: None,
        },
    )?;
    token_response(state, user, refresh_token)
}

/// The refresh token from the request's cookie.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == REFRESH_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for the refresh token; `None` clears the cookie.
fn refresh_cookie(state: &AppState, https: bool, token: Option<&str>) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    let value = match token {
        Some(t) => format!(
            "{REFRESH_COOKIE}={t}; Path={COOKIE_PATH}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            state.config.refresh_token_ttl_secs
        ),
        None => format!(
            "{REFRESH_COOKIE}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
        ),
    };
    // Tokens are URL-safe base64 and the rest is ASCII: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Answers with the pair; in cookie mode the refresh token moves from the body into the
/// cookie.
fn session_response(
    state: &AppState,
    https: bool,
    mut tokens: TokenResponse,
    in_cookie: bool,
) -> Response {
    if !in_cookie {
        return Json(tokens).into_response();
    }
    let cookie = refresh_cookie(state, https, tokens.refresh_token.take().as_deref());
    (AppendHeaders([(SET_COOKIE, cookie)]), Json(tokens)).into_response()
}

/// Exchanges a username and password for an access and a refresh token (in the body, or
/// with `session_cookie` in an HttpOnly cookie). Rate-limited per source (IPv6 by /64).
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", security(()),
    request_body = LoginRequest,
    responses((status = 200, body = TokenResponse),
        (status = 400, body = capstan_proto::ErrorBody),
        (status = 401, body = capstan_proto::ErrorBody),
        (status = 429, body = capstan_proto::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Https(https): Https,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let in_cookie = req.session_cookie;
    throttle(&state, ip)?;
    check_len("username", &req.username, 64)?;
    check_len("password", &req.password, password::MAX_LEN)?;
    let st = state.clone();
    let tokens = tokio::task::spawn_blocking(move || {
        let user = st.store.get_user(&req.username)?;
        let stored = user
            .as_ref()
            .map(|u| u.password_hash.as_str())
            .unwrap_or_else(|| password::decoy_hash());
        let matches = password::verify(&req.password, stored);
        match user {
            Some(user) if matches => issue(&st, &user),
            _ => Err(INVALID_CREDENTIALS),
        }
    })
    .await
    .map_err(ApiError::internal)?;
    match &tokens {
        Ok(t) => tracing::info!(user = %t.username, %ip, "login"),
        Err(_) => tracing::warn!(%ip, "failed login"),
    }
    Ok(session_response(&state, https, tokens?, in_cookie))
}

/// Exchanges a refresh token (body, else cookie) for a new pair; the old one stops
/// working. Presenting an already used token ends the whole session (every token
/// descending from the same login).
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", security(()),
    request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = capstan_proto::ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Https(https): Https,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let (presented, in_cookie) = match req.refresh_token {
        Some(t) => (t, false),
        None => (cookie_token(&headers).ok_or(INVALID_REFRESH)?, true),
    };
    check_len("refresh_token", &presented, 256)?;
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        let next = secret::random_token(32);
        let rotation = st.store.rotate_refresh(
            &secret::hash(&presented),
            &secret::hash(&next),
            now_ms(),
            refresh_ttl_ms(&st),
        )?;
        match rotation {
            Rotation::Rotated { username } => {
                let user = st.store.get_user(&username)?.ok_or(INVALID_REFRESH)?;
                token_response(&st, &user, next)
            }
            Rotation::Reused { username } => {
                tracing::warn!(user = %username, %ip, "refresh token reused: session revoked");
                Err(INVALID_REFRESH)
            }
            Rotation::Invalid => Err(INVALID_REFRESH),
        }
    })
    .await
    .map_err(ApiError::internal)?;
    match result {
        Ok(tokens) => Ok(session_response(&state, https, tokens, in_cookie)),
        // A cookie that no longer works is cleared, so the browser stops sending it.
        Err(e) if in_cookie => Ok((
            AppendHeaders([(SET_COOKIE, refresh_cookie(&state, https, None))]),
            e,
        )
            .into_response()),
        Err(e) => Err(e),
    }
}

/// Ends the session of a refresh token (body, else cookie): that token and every token of
/// its family are revoked, and the cookie is cleared. Always 204: revoking an unknown
/// token is not an error.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(()),
    request_body = RefreshRequest, responses((status = 204)))]
pub async fn logout(
    State(state): State<AppState>,
    Https(https): Https,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let presented = req.refresh_token.or_else(|| cookie_token(&headers));
    if let Some(token) = presented {
        check_len("refresh_token", &token, 256)?;
        let hash = secret::hash(&token);
        state
            .blocking(move |s| Ok(s.revoke_refresh_family(&hash)?))
            .await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        AppendHeaders([(SET_COOKIE, refresh_cookie(&state, https, None))]),
    )
        .into_response())
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = capstan_proto::ErrorBody)))]
pub async fn me(user: UserAuth) -> Json<Me> {
    Json(Me {
        username: user.username,
    })
}

/// Changes the signed-in user's password. Every session of that user ends (access and
/// refresh tokens are revoked); sign in again with the new password.
#[utoipa::path(post, path = "/api/auth/password", tag = "auth",
    request_body = ChangePasswordRequest,
    responses((status = 204), (status = 401, body = capstan_proto::ErrorBody),
        (status = 422, body = capstan_proto::ErrorBody)))]
pub async fn change_password(
    user: UserAuth,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    throttle(&state, ip)?;
    check_len("current_password", &req.current_password, password::MAX_LEN)?;
    if req.new_password.len() < password::MIN_LEN || req.new_password.len() > password::MAX_LEN {
        return Err(ApiError::invalid(
            "new_password",
            format!(
                "must be {} to {} bytes long",
                password::MIN_LEN,
                password::MAX_LEN
            ),
        ));
    }
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let current = st
            .store
            .get_user(&user.username)?
            .ok_or(INVALID_CREDENTIALS)?;
        if !password::verify(&req.current_password, &current.password_hash) {
            return Err(ApiError::invalid(
                "current_password",
                "current password is wrong",
            ));
        }
        let hash = password::hash(&req.new_password).map_err(ApiError::internal)?;
        st.store.set_password(&user.username, &hash)?;
        Ok(())
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(StatusCode::NO_CONTENT)
}
