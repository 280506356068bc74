//! The agent's once-a-second call: presence and task results in, desired state out.

use axum::Json;
use axum::extract::State;
use capstan_proto::{HeartbeatRequest, HeartbeatResponse, Task, TaskKind};

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
    if let Some(n) = &beat.nginx {
        validate::target_host("nginx.address", &n.address)?;
        if n.http_port == 0 || n.https_port == 0 {
            return Err(ApiError::invalid(
                "nginx.http_port",
                "ports must be 1-65535",
            ));
        }
        if let Some(e) = &n.error {
            validate::display_text_multiline("nginx.error.message", &e.message, 8192)?;
        }
        if n.warnings.len() > 100 {
            return Err(ApiError::invalid("nginx.warnings", "at most 100 warnings"));
        }
        for w in &n.warnings {
            validate::display_text("nginx.warnings", w, 512)?;
        }
    }
    if let Some(m) = &beat.metrics {
        crate::metrics::validate(m)?;
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
            nginx: beat.nginx.clone(),
        },
    );
    if let Some(m) = beat.metrics {
        state
            .metrics
            .ingest(&agent.id, m, u64::try_from(now / 1000).unwrap_or(0));
    }
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
    let mut tasks: Vec<Task> = pending
        .into_iter()
        .map(|t| Task {
            id: t.id,
            kind: t.kind,
            payload: t.payload,
        })
        .collect();
    let desired = crate::fleet::desired_for(&state, &agent.id, now);
    let desired_version = desired.as_ref().map(|d| d.version).unwrap_or(0);
    // The desired state rides along as a task while the node has not applied it. A
    // version that already failed is not resent: the agent would fail again; a new
    // version (any change) is sent as soon as it exists.
    if let (Some(report), Some(desired)) = (&beat.nginx, desired)
        && desired.version != beat.applied_config_version
        && report.error.as_ref().map(|e| e.version) != Some(desired.version)
    {
        tasks.push(Task {
            id: format!("nginx-{:016x}", desired.version),
            kind: TaskKind::UpdateNginx,
            payload: serde_json::to_value(&*desired).map_err(ApiError::internal)?,
        });
    }
    // Log sources someone is watching: the agent follows them while these keep coming.
    for req in state.logs.requests_for(&agent.id) {
        tasks.push(Task {
            id: format!("logs-{}", req.source),
            kind: TaskKind::GetLogs,
            payload: serde_json::to_value(&req).map_err(ApiError::internal)?,
        });
    }
    Ok(Json(HeartbeatResponse {
        desired_config_version: desired_version,
        tasks,
        server_time: rfc3339(now),
        metrics: Some(state.metrics.ack(&agent.id)),
    }))
}
