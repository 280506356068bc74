//! The agent's once-a-second call: presence and task results in, desired state (typed
//! sections) and run-once tasks out.

use axum::Json;
use axum::extract::State;
use capstan_proto::{DesiredState, HeartbeatRequest, HeartbeatResponse, PROTOCOL_VERSION, Task};

use crate::AppState;
use crate::clock::{now_ms, rfc3339};
use crate::error::ApiError;
use crate::extract::{AgentAuth, ApiJson};
use crate::store::PresenceUpdate;
use crate::validate;

/// Most task results accepted in one beat.
const MAX_RESULTS: usize = 1000;

/// Records the beat and answers with the desired state and pending tasks. Pending tasks
/// repeat in every reply until their result arrives (at-least-once). A beat in another
/// protocol version is refused (400 `unsupported_protocol`) and remembered on the node.
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
    if beat.protocol != PROTOCOL_VERSION {
        let error = ApiError::UnsupportedProtocol {
            agent: beat.protocol,
            core: PROTOCOL_VERSION,
        };
        state
            .presence
            .set_protocol_error(&agent.id, error.to_string());
        return Err(error);
    }
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
            validate::display_text("nginx.warnings", &w.message, 512)?;
            if let Some(id) = &w.service_id {
                validate::resource_id("nginx.warnings.service_id", id)?;
            }
        }
    }
    if let Some(m) = &beat.metrics {
        crate::metrics::validate(m)?;
    }
    let now = now_ms();
    let generation = state.presence.routing_generation();
    state.presence.record(
        &agent.id,
        PresenceUpdate {
            last_seen_ms: now,
            hostname: beat.hostname,
            version: beat.agent_version,
            os: beat.os,
            uptime_secs: beat.uptime_secs,
            interval_ms: beat.interval_ms,
            applied_config_version: beat.applied.nginx,
            nginx: beat.nginx.clone(),
        },
    );
    if state.presence.routing_generation() != generation {
        // This beat may change other nodes' routing: their held watches check (throttled).
        state.changes.routing_moved();
    }
    if let Some(m) = beat.metrics {
        state
            .metrics
            .ingest(&agent.id, m, u64::try_from(now / 1000).unwrap_or(0));
    }
    // Results are written (one transaction, only when a beat carries some); pending tasks
    // come from the store's in-memory index, so a plain beat costs no blocking-pool task.
    let results = beat.task_results;
    if !results.is_empty() {
        let id = agent.id.clone();
        state
            .blocking(move |s| Ok(s.record_results(&id, &results, now)?))
            .await?;
    }
    let tasks: Vec<Task> = state.store.pending_for(&agent.id);
    let mut desired = DesiredState::default();
    // The NGINX section rides along while the node has not applied it. A version that
    // already failed there is not resent: the agent would fail again; a new version (any
    // change) is sent as soon as it exists.
    if let (Some(report), Some(nginx)) = (
        &beat.nginx,
        crate::fleet::desired_for(&state, &agent.id, now),
    ) && nginx.version != beat.applied.nginx
        && report.error.as_ref().map(|e| e.version) != Some(nginx.version)
    {
        desired.nginx = Some((*nginx).clone());
    }
    // Log sources someone is watching: the agent follows them while these keep coming.
    desired.logs = state.logs.requests_for(&agent.id);
    Ok(Json(HeartbeatResponse {
        desired,
        tasks,
        server_time: rfc3339(now),
        metrics: Some(state.metrics.ack(&agent.id)),
    }))
}
