//! The agent's once-a-second call: presence and task results in, desired state out.

use axum::Json;
use axum::extract::State;
use capstan_proto::{HeartbeatRequest, HeartbeatResponse, Task};

use crate::AppState;
use crate::clock::{now_ms, rfc3339};
use crate::error::ApiError;
use crate::extract::{AgentAuth, ApiJson};
use crate::store::PresenceUpdate;
use crate::validate;

/// Most task results accepted in one beat.
const MAX_RESULTS: usize = 1000;

/// Records the beat and answers with the desired config version and pending tasks.
/// Pending tasks repeat in every reply until their result arrives (at-least-once).
#[utoipa::path(post, path = "/api/heartbeat", tag = "agent protocol",
    security(("agent_id" = [], "agent_key" = [])),
    request_body = HeartbeatRequest,
    responses((status = 200, body = HeartbeatResponse),
        (status = 400, body = capstan_proto::ErrorBody),
        (status = 401, body = capstan_proto::ErrorBody)))]
pub async fn heartbeat(
    AgentAuth { agent }: AgentAuth,
    State(state): State<AppState>,
    ApiJson(beat): ApiJson<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    validate::hostname("hostname", &beat.hostname)?;
    validate::display_text("agent_version", &beat.agent_version, 64)?;
    validate::display_text("os", &beat.os, 128)?;
    if !(100..=600_000).contains(&beat.interval_ms) {
        return Err(ApiError::invalid(
            "interval_ms",
            "must be between 100 and 600000",
        ));
    }
    if beat.task_results.len() > MAX_RESULTS {
        return Err(ApiError::invalid(
            "task_results",
            format!("at most {MAX_RESULTS} results per beat"),
        ));
    }
    let now = now_ms();
    state.presence.record(
        &agent.id,
        PresenceUpdate {
            last_seen_ms: now,
            hostname: beat.hostname,
            version: beat.agent_version,
            os: beat.os,
            uptime_secs: beat.uptime_secs,
            interval_ms: beat.interval_ms,
            applied_config_version: beat.applied_config_version,
        },
    );
    let id = agent.id.clone();
    let results = beat.task_results;
    let pending = state
        .blocking(move |s| {
            if !results.is_empty() {
                s.record_results(&id, &results, now)?;
            }
            Ok(s.pending_tasks(&id)?)
        })
        .await?;
    Ok(Json(HeartbeatResponse {
        desired_config_version: agent.desired_config_version,
        tasks: pending
            .into_iter()
            .map(|t| Task {
                id: t.id,
                kind: t.kind,
                payload: t.payload,
            })
            .collect(),
        server_time: rfc3339(now),
    }))
}
