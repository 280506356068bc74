//! Nodes: create (key shown once), list with live status, delete, rotate key, tasks, and
//! self-registration with a join token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use capstan_proto::{RegisterRequest, RegisterResponse, TaskKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::secret;
use crate::clock::{now_ms, rfc3339};
use crate::error::{ApiError, Resource};
use crate::extract::{ApiJson, ClientIp, UserAuth};
use crate::routing::ApplyState;
use crate::store::{AgentRecord, RegisterOutcome, TaskRecord, TaskStatus};
use crate::validate;

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Online,
    Offline,
}

/// A node as the API shows it: the stored record overlaid with in-memory presence.
#[derive(Serialize, ToSchema)]
pub struct AgentView {
    id: String,
    name: String,
    hostname: Option<String>,
    version: Option<String>,
    os: Option<String>,
    status: AgentStatus,
    /// RFC 3339; null until the first heartbeat.
    last_seen_at: Option<String>,
    created_at: String,
    uptime_secs: Option<u64>,
    /// Beat interval the agent reported, milliseconds.
    heartbeat_interval_ms: Option<u64>,
    applied_config_version: u64,
    desired_config_version: u64,
    /// Whether this node routes every service's domains (edge).
    edge: bool,
    /// Where the node's NGINX stands with its desired state.
    #[schema(value_type = String)]
    config_state: ApplyState,
    /// The node's NGINX as last reported (address, ports, last error, warnings).
    nginx: Option<capstan_proto::NginxReport>,
    /// Metric series stored for the node.
    metrics_series: u64,
    /// Series stored per node at most (`max_series_per_node`).
    metrics_series_budget: u64,
    /// New series the node sends that the budget dropped (in its latest write).
    metrics_series_dropped: u64,
    /// Set while the node's agent speaks a protocol version this core does not: its
    /// beats are refused (say which versions, and what to upgrade).
    protocol_error: Option<String>,
}

/// A node with its key; returned only by create and rotate-key.
#[derive(Serialize, ToSchema)]
pub struct AgentWithKey {
    #[serde(flatten)]
    agent: AgentView,
    /// The agent's secret key. Shown once: only its hash is stored.
    key: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentRequest {
    name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// `noop` or `ping`: the only run-once commands a user may queue.
    #[serde(rename = "type")]
    #[schema(example = "ping")]
    kind: String,
    #[serde(default)]
    payload: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct TaskView {
    id: String,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    kind: TaskKind,
    payload: serde_json::Value,
    status: TaskStatus,
    created_at: String,
    finished_at: Option<String>,
    output: serde_json::Value,
    error: Option<String>,
}

impl From<TaskRecord> for TaskView {
    fn from(t: TaskRecord) -> Self {
        TaskView {
            id: t.id,
            kind: t.kind,
            payload: t.payload,
            status: t.status,
            created_at: rfc3339(t.created_at_ms),
            finished_at: t.finished_at_ms.map(rfc3339),
            output: t.output,
            error: t.error,
        }
    }
}

/// One node, computing its desired version on its own.
pub(crate) fn view(state: &AppState, a: AgentRecord, now: i64) -> AgentView {
    let desired = crate::fleet::desired_for(state, &a.id, now)
        .map(|d| d.version)
        .unwrap_or(0);
    view_with(state, a, now, desired)
}

fn view_with(state: &AppState, mut a: AgentRecord, now: i64, desired: u64) -> AgentView {
    if let Some(p) = state.presence.get(&a.id) {
        a.nginx = p.nginx;
        a.last_seen_ms = Some(p.last_seen_ms);
        a.hostname = Some(p.hostname);
        a.version = Some(p.version);
        a.os = Some(p.os);
        a.uptime_secs = Some(p.uptime_secs);
        a.interval_ms = Some(p.interval_ms);
        a.applied_config_version = p.applied_config_version;
    }
    let online = crate::liveness::is_online(
        a.last_seen_ms,
        a.interval_ms.unwrap_or(1000),
        state.config.offline_after_missed_beats,
        now,
    );
    let status = if online {
        AgentStatus::Online
    } else {
        AgentStatus::Offline
    };
    let node = crate::routing::NodeView {
        id: a.id.clone(),
        name: a.name.clone(),
        edge: a.edge,
        online: status == AgentStatus::Online,
        nginx: a.nginx.clone(),
    };
    let config_state = crate::routing::apply_state(&node, a.applied_config_version, desired);
    let usage = state.metrics.usage(&a.id);
    let protocol_error = state.presence.protocol_error(&a.id);
    AgentView {
        metrics_series: usage.series,
        metrics_series_budget: state.metrics.budget() as u64,
        metrics_series_dropped: usage.dropped,
        id: a.id,
        name: a.name,
        hostname: a.hostname,
        version: a.version,
        os: a.os,
        status,
        last_seen_at: a.last_seen_ms.map(rfc3339),
        created_at: rfc3339(a.created_at_ms),
        uptime_secs: a.uptime_secs,
        heartbeat_interval_ms: a.interval_ms,
        applied_config_version: a.applied_config_version,
        desired_config_version: desired,
        edge: a.edge,
        config_state,
        nginx: a.nginx,
        protocol_error,
    }
}

fn new_record(name: String, key_hash: String) -> AgentRecord {
    AgentRecord {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        key_hash,
        created_at_ms: now_ms(),
        hostname: None,
        version: None,
        os: None,
        uptime_secs: None,
        last_seen_ms: None,
        interval_ms: None,
        applied_config_version: 0,
        desired_config_version: 0,
        edge: false,
        nginx: None,
    }
}

const INVALID_JOIN: ApiError = ApiError::Unauthorized {
    code: "invalid_join_token",
    message: "join token is unknown, expired or used up",
};

fn name_taken() -> ApiError {
    ApiError::NameTaken {
        field: "name".into(),
        message: "a node with this name already exists".into(),
    }
}

/// All nodes with live status.
#[utoipa::path(get, path = "/api/agents", tag = "nodes",
    responses((status = 200, body = [AgentView]), (status = 401, body = capstan_proto::ErrorBody)))]
pub async fn list_agents(
    _user: UserAuth,
    State(state): State<AppState>,
) -> Result<Json<Vec<AgentView>>, ApiError> {
    // The fleet snapshot already holds every record (rebuilt after each write).
    let records = state.fleet.snapshot().agents.clone();
    let now = now_ms();
    let live = crate::fleet::live(&state, now);
    Ok(Json(
        records
            .into_iter()
            .map(|a| {
                let desired = live.desired.get(&a.id).copied().unwrap_or(0);
                view_with(&state, a, now, desired)
            })
            .collect(),
    ))
}

/// Creates a node and returns its ID and key. The key is shown only in this response.
#[utoipa::path(post, path = "/api/agents", tag = "nodes", request_body = CreateAgentRequest,
    responses((status = 201, body = AgentWithKey),
        (status = 400, body = capstan_proto::ErrorBody),
        (status = 409, body = capstan_proto::ErrorBody),
        (status = 422, body = capstan_proto::ErrorBody)))]
pub async fn create_agent(
    user: UserAuth,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateAgentRequest>,
) -> Result<(StatusCode, Json<AgentWithKey>), ApiError> {
    validate::node_name("name", &req.name)?;
    let key = secret::random_token(32);
    let record = new_record(req.name, secret::hash(&key));
    let stored = record.clone();
    let created = state
        .blocking(move |s| Ok(s.create_agent(&stored)?))
        .await?;
    if !created {
        return Err(name_taken());
    }
    state.refresh_fleet().await?;
    tracing::info!(agent.id = %record.id, agent.name = %record.name, by = %user.username, "node created");
    let agent = view(&state, record, now_ms());
    Ok((StatusCode::CREATED, Json(AgentWithKey { agent, key })))
}

/// One node.
#[utoipa::path(get, path = "/api/agents/{id}", tag = "nodes",
    params(("id" = String, Path, description = "Node ID")),
    responses((status = 200, body = AgentView), (status = 404, body = capstan_proto::ErrorBody)))]
pub async fn get_agent(
    _user: UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    let record = state
        .blocking(move |s| Ok(s.get_agent(&id)?))
        .await?
        .ok_or(ApiError::NotFound(Resource::Node))?;
    Ok(Json(view(&state, record, now_ms())))
}

/// Deletes a node. Its agent's next beat is refused (401).
#[utoipa::path(delete, path = "/api/agents/{id}", tag = "nodes",
    params(("id" = String, Path, description = "Node ID")),
    responses((status = 204), (status = 404, body = capstan_proto::ErrorBody)))]
pub async fn delete_agent(
    user: UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let target = id.clone();
    let existed = state
        .blocking(move |s| Ok(s.delete_agent(&target)?))
        .await?;
    if !existed {
        return Err(ApiError::NotFound(Resource::Node));
    }
    state.presence.remove(&id);
    state.logs.forget_node(&id);
    state.changes.forget(&id);
    // Its metric series go with the next expiry pass (within 10 minutes).
    state.metrics.forget(&id);
    state.refresh_fleet().await?;
    tracing::info!(agent.id = %id, by = %user.username, "node deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgentRequest {
    /// Make this node an edge: it then routes every service's domains to the nodes
    /// carrying them (HTTP by Host, HTTPS by SNI passthrough).
    edge: Option<bool>,
}

/// Changes a node's settings.
#[utoipa::path(patch, path = "/api/agents/{id}", tag = "nodes",
    params(("id" = String, Path, description = "Node ID")),
    request_body = UpdateAgentRequest,
    responses((status = 200, body = AgentView), (status = 404, body = capstan_proto::ErrorBody)))]
pub async fn update_agent(
    user: UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateAgentRequest>,
) -> Result<Json<AgentView>, ApiError> {
    let target = id.clone();
    let record = state
        .blocking(move |s| match req.edge {
            Some(edge) => Ok(s.set_agent_edge(&target, edge)?),
            None => Ok(s.get_agent(&target)?),
        })
        .await?
        .ok_or(ApiError::NotFound(Resource::Node))?;
    state.refresh_fleet().await?;
    tracing::info!(agent.id = %id, edge = record.edge, by = %user.username, "node updated");
    Ok(Json(view(&state, record, now_ms())))
}

/// Replaces a node's key; the old key stops working at once.
#[utoipa::path(post, path = "/api/agents/{id}/rotate-key", tag = "nodes",
    params(("id" = String, Path, description = "Node ID")),
    responses((status = 200, body = AgentWithKey), (status = 404, body = capstan_proto::ErrorBody)))]
pub async fn rotate_key(
    user: UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AgentWithKey>, ApiError> {
    let key = secret::random_token(32);
    let hash = secret::hash(&key);
    let record = state
        .blocking(move |s| Ok(s.set_agent_key(&id, &hash)?))
        .await?
        .ok_or(ApiError::NotFound(Resource::Node))?;
    // Beats authenticate against the snapshot: the old key stops working now.
    state.refresh_fleet().await?;
    tracing::info!(agent.id = %record.id, by = %user.username, "node key rotated");
    Ok(Json(AgentWithKey {
        agent: view(&state, record, now_ms()),
        key,
    }))
}

/// A node's recent tasks, oldest first (the last 100 finished plus all pending).
#[utoipa::path(get, path = "/api/agents/{id}/tasks", tag = "nodes",
    params(("id" = String, Path, description = "Node ID")),
    responses((status = 200, body = [TaskView]), (status = 404, body = capstan_proto::ErrorBody)))]
pub async fn list_tasks(
    _user: UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<TaskView>>, ApiError> {
    let tasks = state
        .blocking(move |s| {
            s.get_agent(&id)?
                .ok_or(ApiError::NotFound(Resource::Node))?;
            Ok(s.list_tasks(&id)?)
        })
        .await?;
    Ok(Json(tasks.into_iter().map(TaskView::from).collect()))
}

/// Queues a run-once command (`noop` or `ping`) for a node; it is delivered in the next
/// heartbeat reply and its result appears here once the agent reports it. Any other type
/// is 400 `unsupported_task_type`: desired state never travels as a task.
#[utoipa::path(post, path = "/api/agents/{id}/tasks", tag = "nodes",
    params(("id" = String, Path, description = "Node ID")),
    request_body = CreateTaskRequest,
    responses((status = 201, body = TaskView), (status = 404, body = capstan_proto::ErrorBody),
        (status = 400, body = capstan_proto::ErrorBody),
        (status = 422, body = capstan_proto::ErrorBody)))]
pub async fn create_task(
    _user: UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateTaskRequest>,
) -> Result<(StatusCode, Json<TaskView>), ApiError> {
    let kind = TaskKind::USER
        .into_iter()
        .find(|k| k.as_str() == req.kind)
        .ok_or_else(|| ApiError::UnsupportedTaskType {
            given: req.kind.chars().take(64).collect(),
        })?;
    if !(req.payload.is_null() || req.payload.is_object()) {
        return Err(ApiError::invalid("payload", "must be an object or null"));
    }
    let now = now_ms();
    let task = TaskRecord {
        id: format!("{now:013}-{}", &secret::random_token(4)),
        agent_id: id,
        kind,
        payload: req.payload,
        status: TaskStatus::Pending,
        created_at_ms: now,
        finished_at_ms: None,
        output: serde_json::Value::Null,
        error: None,
    };
    let stored = task.clone();
    state
        .blocking(move |s| {
            s.get_agent(&stored.agent_id)?
                .ok_or(ApiError::NotFound(Resource::Node))?;
            Ok(s.create_task(&stored)?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(task.into())))
}

/// Self-registration: an agent trades a join token for its own ID and key.
/// Join tokens have the form `<id>.<secret>`. Rate-limited per source IP.
#[utoipa::path(post, path = "/api/agents/register", tag = "agent protocol", security(()),
    request_body = RegisterRequest,
    responses((status = 201, body = RegisterResponse),
        (status = 401, body = capstan_proto::ErrorBody),
        (status = 409, body = capstan_proto::ErrorBody),
        (status = 422, body = capstan_proto::ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    super::auth::throttle(&state, ip)?;
    validate::node_name("name", &req.name)?;
    validate::hostname("hostname", &req.hostname)?;
    let (token_id, token_secret) = req.join_token.split_once('.').ok_or(INVALID_JOIN)?;
    if token_id.len() > 64 || token_secret.len() > 256 {
        return Err(INVALID_JOIN);
    }
    let key = secret::random_token(32);
    let mut record = new_record(req.name, secret::hash(&key));
    record.hostname = Some(req.hostname);
    let (tid, shash, rec) = (
        token_id.to_string(),
        secret::hash(token_secret),
        record.clone(),
    );
    let outcome = state
        .blocking(move |s| Ok(s.register_with_join_token(&tid, &shash, now_ms(), &rec)?))
        .await?;
    match outcome {
        RegisterOutcome::Created => {
            state.refresh_fleet().await?;
            tracing::info!(agent.id = %record.id, agent.name = %record.name, %ip, "node registered with join token");
            Ok((
                StatusCode::CREATED,
                Json(RegisterResponse { id: record.id, key }),
            ))
        }
        RegisterOutcome::NameTaken => Err(name_taken()),
        RegisterOutcome::InvalidToken => Err(INVALID_JOIN),
    }
}
