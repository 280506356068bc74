//! Container and NGINX logs, live by polling. `GET` registers or renews a watch and
//! returns the lines after the caller's cursor; the agent posts lines to `POST
//! /api/agent/logs` as soon as it reads them (not waiting for its next beat).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use capstan_proto::LogUpload;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::error::{ApiError, Resource};
use crate::extract::{AgentAuth, ApiJson, UserAuth};
use crate::logs::{DEFAULT_TAIL, PollError, PollResult};
use crate::validate;

/// Most batches and lines accepted in one upload.
const MAX_BATCHES: usize = 64;
const MAX_UPLOAD_LINES: usize = 20_000;

#[derive(Deserialize, IntoParams)]
pub struct PollQuery {
    /// The `cursor` of the previous response; absent on the first poll.
    cursor: Option<String>,
    /// History to start with (0–5000, default 200); only used when the watch starts.
    tail: Option<String>,
    /// Long-poll: with a cursor, hold the request up to this many seconds (0–25, capped
    /// by the core's `watch_timeout_secs`) until lines after the cursor exist; empty at
    /// the deadline. Absent or 0: answer at once.
    wait: Option<String>,
}

fn parse_u64(field: &str, raw: &str, max: u64) -> Result<u64, ApiError> {
    match raw.parse::<u64>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(ApiError::BadRequest {
            field: Some(field.to_string()),
            message: format!("must be a whole number from 0 to {max}"),
        }),
    }
}

/// A source is a container name, or `nginx:access` / `nginx:error`.
fn check_source(source: &str) -> Result<(), ApiError> {
    Ok(validate::log_source("source", source)?)
}

/// New lines of a container's (or the node's NGINX) logs after `cursor`. Long-poll with
/// the returned cursor and `wait` (answered as soon as lines exist), or poll every 1–2 s;
/// watching stops 30 s after the last request.
#[utoipa::path(get, path = "/api/agents/{id}/logs/{source}", tag = "logs",
    params(("id" = String, Path, description = "Node ID"),
        ("source" = String, Path, description = "Container name, or nginx:access / nginx:error"),
        PollQuery),
    responses((status = 200, body = PollResult),
        (status = 400, body = capstan_proto::ErrorBody),
        (status = 404, body = capstan_proto::ErrorBody)))]
pub async fn poll_logs(
    _user: UserAuth,
    State(state): State<AppState>,
    Path((id, source)): Path<(String, String)>,
    Query(q): Query<PollQuery>,
) -> Result<Json<PollResult>, ApiError> {
    check_source(&source).map_err(|_| ApiError::NotFound(Resource::LogSource))?;
    if !state.fleet.snapshot().agents.iter().any(|a| a.id == id) {
        return Err(ApiError::NotFound(Resource::Node));
    }
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| parse_u64("cursor", c, u64::MAX >> 1))
        .transpose()?;
    let tail = q
        .tail
        .as_deref()
        .map(|t| parse_u64("tail", t, 5000))
        .transpose()?
        .and_then(|t| u32::try_from(t).ok())
        .unwrap_or(DEFAULT_TAIL);
    let wait = match q.wait.as_deref() {
        None => 0,
        Some(w) => parse_u64("wait", w, 25)?.min(state.config.watch_timeout_secs),
    };
    let first = cursor.is_none();
    let (mut result, started) = state
        .logs
        .poll_watch(&id, &source, cursor, tail)
        .map_err(cursor_ahead)?;
    if started {
        // The node's held watch answers, so its agent starts following now, not at its
        // next beat.
        state.changes.bump(&id);
    }
    // The first poll waits briefly for the agent's first answer, so the viewer opens
    // with history instead of an empty page; a later poll with `wait` waits for lines.
    let error_before = result.error.clone();
    let done = |r: &PollResult| {
        if first {
            !r.pending
        } else {
            !r.lines.is_empty() || r.skipped > 0 || r.more || r.error != error_before
        }
    };
    let hold = if first {
        std::time::Duration::from_millis(2500)
    } else {
        std::time::Duration::from_secs(wait)
    };
    let deadline = tokio::time::Instant::now() + hold;
    while !done(&result) && !hold.is_zero() {
        let Some(notify) = state.logs.waiter(&id, &source) else {
            break;
        };
        let posted = notify.notified();
        tokio::pin!(posted);
        posted.as_mut().enable();
        // Looked at again after registering: a post in between is not missed.
        result = poll(&state, &id, &source, cursor, tail)?;
        if done(&result) {
            break;
        }
        tokio::select! {
            _ = &mut posted => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
        result = poll(&state, &id, &source, cursor, tail)?;
    }
    if let Some(e) = &result.error
        && result.lines.is_empty()
        && e.contains("No such container")
    {
        return Err(ApiError::NotFound(Resource::Container));
    }
    Ok(Json(result))
}

fn poll(
    state: &AppState,
    id: &str,
    source: &str,
    cursor: Option<u64>,
    tail: u32,
) -> Result<PollResult, ApiError> {
    state
        .logs
        .poll(id, source, cursor, tail)
        .map_err(cursor_ahead)
}

fn cursor_ahead(PollError::CursorAhead { latest }: PollError) -> ApiError {
    ApiError::BadRequest {
        field: Some("cursor".into()),
        message: format!("cursor is ahead of the log (latest is {latest})"),
    }
}

/// Agents post the lines they read for watched sources.
#[utoipa::path(post, path = "/api/agent/logs", tag = "agent protocol",
    security(("agent_id" = [], "agent_key" = [])),
    request_body = LogUpload,
    responses((status = 204), (status = 400, body = capstan_proto::ErrorBody),
        (status = 401, body = capstan_proto::ErrorBody)))]
pub async fn upload_logs(
    AgentAuth { agent }: AgentAuth,
    State(state): State<AppState>,
    ApiJson(upload): ApiJson<LogUpload>,
) -> Result<StatusCode, ApiError> {
    if upload.batches.len() > MAX_BATCHES {
        return Err(ApiError::invalid(
            "batches",
            format!("at most {MAX_BATCHES} batches"),
        ));
    }
    let lines: usize = upload.batches.iter().map(|b| b.lines.len()).sum();
    if lines > MAX_UPLOAD_LINES {
        return Err(ApiError::invalid(
            "batches",
            format!("at most {MAX_UPLOAD_LINES} lines per upload"),
        ));
    }
    for (i, b) in upload.batches.iter().enumerate() {
        check_source(&b.source).map_err(|_| {
            ApiError::invalid(
                &format!("batches[{i}].source"),
                "not a container name or nginx log",
            )
        })?;
    }
    state.logs.ingest(&agent.id, upload.batches);
    Ok(StatusCode::NO_CONTENT)
}
