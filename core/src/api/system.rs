//! Liveness, readiness and facts about this core.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::UserAuth;

#[derive(Serialize, ToSchema)]
pub struct Ping {
    status: &'static str,
    version: &'static str,
}

/// Liveness probe; needs no auth.
#[utoipa::path(get, path = "/api/ping", tag = "system", security(()),
    responses((status = 200, body = Ping)))]
pub async fn ping() -> Json<Ping> {
    Json(Ping {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    status: &'static str,
}

/// Readiness probe; needs no auth. 200 while the store can write; 503 with the error body
/// (`store_unavailable`) after a write failed on I/O (disk full), until the store has been
/// reopened and a probe write committed. `/api/ping` stays the liveness answer.
#[utoipa::path(get, path = "/api/ready", tag = "system", security(()),
    responses((status = 200, body = Ready), (status = 503, body = capstan_proto::ErrorBody)))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    match state.store.unwritable() {
        None => Ok(Json(Ready { status: "ready" })),
        Some(detail) => Err(ApiError::StoreUnavailable(detail)),
    }
}

#[derive(Serialize, ToSchema)]
pub struct Info {
    version: &'static str,
    /// Configured public URL of the core, if any; the UI falls back to its own origin.
    public_url: Option<String>,
    protocol: u32,
}

/// Facts the UI needs (e.g. the URL to put in "add node" commands).
#[utoipa::path(get, path = "/api/info", tag = "system",
    responses((status = 200, body = Info), (status = 401, body = capstan_proto::ErrorBody)))]
pub async fn info(_user: UserAuth, State(state): State<AppState>) -> Result<Json<Info>, ApiError> {
    Ok(Json(Info {
        version: env!("CARGO_PKG_VERSION"),
        public_url: state.config.public_url.clone(),
        protocol: capstan_proto::PROTOCOL_VERSION,
    }))
}
