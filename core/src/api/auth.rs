//! Login, token refresh (rotating), logout and password change.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::jwt::Claims;
use crate::auth::{password, secret};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::extract::{ApiJson, ClientIp, UserAuth};
use crate::store::{RefreshTokenRecord, UserRecord};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
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
    refresh_token: String,
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

/// Issues an access token and a fresh refresh token for `user`.
fn issue(state: &AppState, user: &UserRecord) -> Result<TokenResponse, ApiError> {
    let now = now_ms();
    let ttl = state.config.access_token_ttl_secs;
    let claims = Claims {
        sub: user.username.clone(),
        iat: now / 1000,
        exp: now / 1000 + i64::try_from(ttl).unwrap_or(i64::MAX / 2),
        tg: user.token_generation,
    };
    let access_token = state.jwt.issue(&claims).map_err(ApiError::internal)?;
    let refresh_token = secret::random_token(32);
    let refresh_ms = i64::try_from(state.config.refresh_token_ttl_secs)
        .unwrap_or(i64::MAX / 2_000)
        .saturating_mul(1000);
    state.store.insert_refresh(
        &secret::hash(&refresh_token),
        &RefreshTokenRecord {
            username: user.username.clone(),
            created_at_ms: now,
            expires_at_ms: now.saturating_add(refresh_ms),
        },
    )?;
    Ok(TokenResponse {
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: ttl,
        username: user.username.clone(),
    })
}

/// Exchanges a username and password for an access and a refresh token.
/// Rate-limited per source IP.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", security(()),
    request_body = LoginRequest,
    responses((status = 200, body = TokenResponse),
        (status = 400, body = capstan_proto::ErrorBody),
        (status = 401, body = capstan_proto::ErrorBody),
        (status = 429, body = capstan_proto::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
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
    tokens.map(Json)
}

/// Exchanges a refresh token for a new pair. The old refresh token stops working.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", security(()),
    request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = capstan_proto::ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    check_len("refresh_token", &req.refresh_token, 256)?;
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let record = st
            .store
            .take_refresh(&secret::hash(&req.refresh_token))?
            .ok_or(INVALID_REFRESH)?;
        if record.expires_at_ms <= now_ms() {
            return Err(INVALID_REFRESH);
        }
        let user = st
            .store
            .get_user(&record.username)?
            .ok_or(INVALID_REFRESH)?;
        issue(&st, &user)
    })
    .await
    .map_err(ApiError::internal)?
    .map(Json)
}

/// Revokes a refresh token. Always 204: revoking an unknown token is not an error.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(()),
    request_body = RefreshRequest, responses((status = 204)))]
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    check_len("refresh_token", &req.refresh_token, 256)?;
    let hash = secret::hash(&req.refresh_token);
    state.blocking(move |s| Ok(s.take_refresh(&hash)?)).await?;
    Ok(StatusCode::NO_CONTENT)
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
