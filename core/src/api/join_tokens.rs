//! Join tokens: let agents register themselves (`capstan-agent run` with `JOIN_TOKEN`).
//! The token is `<id>.<secret>`; only the secret's hash is stored and the whole token is
//! shown once.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::secret;
use crate::clock::{now_ms, rfc3339};
use crate::error::{ApiError, Resource};
use crate::extract::{ApiJson, UserAuth};
use crate::store::JoinTokenRecord;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJoinTokenRequest {
    /// Lifetime in seconds, 60 to 2,592,000 (30 days). Default 3600.
    ttl_secs: Option<u64>,
    /// How many agents may register with it, 1 to 10,000. Default 1.
    max_uses: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct JoinTokenView {
    id: String,
    created_at: String,
    expires_at: String,
    max_uses: u32,
    uses: u32,
    /// Present only in the create response.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

fn view(t: JoinTokenRecord, token: Option<String>) -> JoinTokenView {
    JoinTokenView {
        id: t.id,
        created_at: rfc3339(t.created_at_ms),
        expires_at: rfc3339(t.expires_at_ms),
        max_uses: t.max_uses,
        uses: t.uses,
        token,
    }
}

/// Creates a join token; the token itself is shown only in this response.
#[utoipa::path(post, path = "/api/join-tokens", tag = "nodes", request_body = CreateJoinTokenRequest,
    responses((status = 201, body = JoinTokenView), (status = 422, body = capstan_proto::ErrorBody)))]
pub async fn create_join_token(
    user: UserAuth,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateJoinTokenRequest>,
) -> Result<(StatusCode, Json<JoinTokenView>), ApiError> {
    let ttl = req.ttl_secs.unwrap_or(3600);
    if !(60..=2_592_000).contains(&ttl) {
        return Err(ApiError::invalid(
            "ttl_secs",
            "must be between 60 and 2592000",
        ));
    }
    let max_uses = req.max_uses.unwrap_or(1);
    if !(1..=10_000).contains(&max_uses) {
        return Err(ApiError::invalid("max_uses", "must be between 1 and 10000"));
    }
    let now = now_ms();
    let id = secret::random_token(8);
    let token_secret = secret::random_token(32);
    let record = JoinTokenRecord {
        id: id.clone(),
        secret_hash: secret::hash(&token_secret),
        created_at_ms: now,
        expires_at_ms: now + i64::try_from(ttl).unwrap_or(3600) * 1000,
        max_uses,
        uses: 0,
    };
    let stored = record.clone();
    state
        .blocking(move |s| Ok(s.create_join_token(&stored)?))
        .await?;
    tracing::info!(token.id = %id, by = %user.username, max_uses, ttl, "join token created");
    Ok((
        StatusCode::CREATED,
        Json(view(record, Some(format!("{id}.{token_secret}")))),
    ))
}

/// Join tokens (without their secrets).
#[utoipa::path(get, path = "/api/join-tokens", tag = "nodes",
    responses((status = 200, body = [JoinTokenView])))]
pub async fn list_join_tokens(
    _user: UserAuth,
    State(state): State<AppState>,
) -> Result<Json<Vec<JoinTokenView>>, ApiError> {
    let all = state.blocking(|s| Ok(s.list_join_tokens()?)).await?;
    Ok(Json(all.into_iter().map(|t| view(t, None)).collect()))
}

/// Revokes a join token. Agents already registered with it keep working.
#[utoipa::path(delete, path = "/api/join-tokens/{id}", tag = "nodes",
    params(("id" = String, Path, description = "Join token ID")),
    responses((status = 204), (status = 404, body = capstan_proto::ErrorBody)))]
pub async fn delete_join_token(
    _user: UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let existed = state
        .blocking(move |s| Ok(s.delete_join_token(&id)?))
        .await?;
    if existed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(Resource::JoinToken))
    }
}
