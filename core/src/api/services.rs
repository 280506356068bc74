//! Reverse-proxy services: CRUD with strict validation, per-node apply status, and the
//! domain → node routing map. Every value that reaches an NGINX config is checked here
//! against a whitelist grammar; a rejected request changes nothing.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use capstan_proto::{Balance, Endpoint, HeaderSpec};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::clock::{now_ms, rfc3339};
use crate::error::{ApiError, Resource};
use crate::extract::{ApiJson, UserAuth};
use crate::fleet::Live;
use crate::routing::{self, ApplyState, NodeView};
use crate::store::{Placement, Route, ServiceRecord, Target};
use crate::validate;

const MAX_DOMAINS: usize = 100;
const MAX_ROUTES: usize = 50;
const MAX_PLACEMENTS: usize = 50;
const MAX_TARGETS: usize = 100;
const MAX_HEADERS: usize = 30;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceInput {
    /// 1-63 of letters, digits, '.', '_', '-'; not starting with `capstan-`.
    name: String,
    #[serde(default = "yes")]
    enabled: bool,
    /// Exact (`shop.example.com`), wildcard (`*.example.com`) or IDN names.
    domains: Vec<String>,
    #[serde(default = "round_robin")]
    #[schema(value_type = String, example = "round_robin")]
    balance: Balance,
    /// Targets for `/`, per node.
    #[serde(default)]
    placements: Vec<PlacementInput>,
    /// Extra longest-prefix routes with their own targets.
    #[serde(default)]
    routes: Vec<RouteInput>,
    #[serde(default = "five")]
    connect_timeout_secs: u32,
    #[serde(default = "sixty")]
    read_timeout_secs: u32,
    #[serde(default = "sixty")]
    send_timeout_secs: u32,
    /// 0 = unlimited.
    #[serde(default = "ten")]
    client_max_body_size_mb: u32,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    request_headers: Vec<HeaderSpec>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    response_headers: Vec<HeaderSpec>,
    #[serde(default = "yes")]
    websocket: bool,
    #[serde(default = "three")]
    max_fails: u32,
    #[serde(default = "ten")]
    fail_timeout_secs: u32,
}

fn yes() -> bool {
    true
}
fn round_robin() -> Balance {
    Balance::RoundRobin
}
fn three() -> u32 {
    3
}
fn five() -> u32 {
    5
}
fn ten() -> u32 {
    10
}
fn sixty() -> u32 {
    60
}
fn one() -> u32 {
    1
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementInput {
    node_id: String,
    targets: Vec<TargetInput>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteInput {
    path: String,
    placements: Vec<PlacementInput>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetInput {
    /// `container` or `address`.
    kind: String,
    container: Option<String>,
    /// `key=value` Docker label.
    label: Option<String>,
    host: Option<String>,
    port: u32,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default)]
    backup: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ServiceNodeStatus {
    node_id: String,
    node_name: String,
    /// `node` (has placements) or `edge`.
    role: &'static str,
    #[schema(value_type = String)]
    state: ApplyState,
    error: Option<String>,
    warnings: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ServiceView {
    id: String,
    name: String,
    enabled: bool,
    domains: Vec<String>,
    #[schema(value_type = String)]
    balance: Balance,
    #[schema(value_type = Vec<Object>)]
    placements: Vec<PlacementOut>,
    #[schema(value_type = Vec<Object>)]
    routes: Vec<RouteOut>,
    connect_timeout_secs: u32,
    read_timeout_secs: u32,
    send_timeout_secs: u32,
    client_max_body_size_mb: u32,
    #[schema(value_type = Vec<Object>)]
    request_headers: Vec<HeaderSpec>,
    #[schema(value_type = Vec<Object>)]
    response_headers: Vec<HeaderSpec>,
    websocket: bool,
    max_fails: u32,
    fail_timeout_secs: u32,
    created_at: String,
    updated_at: String,
    status: Vec<ServiceNodeStatus>,
}

#[derive(Serialize)]
pub struct PlacementOut {
    node_id: String,
    targets: Vec<TargetOut>,
}

#[derive(Serialize)]
pub struct RouteOut {
    path: String,
    placements: Vec<PlacementOut>,
}

#[derive(Serialize)]
pub struct TargetOut {
    #[serde(flatten)]
    endpoint: Endpoint,
    weight: u32,
    backup: bool,
}

fn placements_out(ps: &[Placement]) -> Vec<PlacementOut> {
    ps.iter()
        .map(|p| PlacementOut {
            node_id: p.node_id.clone(),
            targets: p
                .targets
                .iter()
                .map(|t| TargetOut {
                    endpoint: t.endpoint.clone(),
                    weight: t.weight,
                    backup: t.backup,
                })
                .collect(),
        })
        .collect()
}

/// Validates and normalises the input into a record. Every error names its field path.
fn to_record(
    input: ServiceInput,
    id: String,
    created_at_ms: i64,
    known_nodes: &BTreeSet<String>,
) -> Result<ServiceRecord, ApiError> {
    validate::node_name("name", &input.name)?;
    if input.name.starts_with("capstan-") {
        return Err(ApiError::invalid(
            "name",
            "names starting with capstan- are reserved",
        ));
    }
    if input.domains.is_empty() {
        return Err(ApiError::invalid(
            "domains",
            "at least one domain is required",
        ));
    }
    if input.domains.len() > MAX_DOMAINS {
        return Err(ApiError::invalid(
            "domains",
            format!("at most {MAX_DOMAINS} domains"),
        ));
    }
    let mut domains = Vec::new();
    for (i, d) in input.domains.iter().enumerate() {
        let field = format!("domains[{i}]");
        let norm = validate::domain(&field, d)?;
        if domains.contains(&norm) {
            return Err(ApiError::invalid(&field, format!("{norm} is listed twice")));
        }
        domains.push(norm);
    }
    let root = placements(&input.placements, "placements", known_nodes, input.balance)?;
    if input.routes.len() > MAX_ROUTES {
        return Err(ApiError::invalid(
            "routes",
            format!("at most {MAX_ROUTES} routes"),
        ));
    }
    let mut routes = Vec::new();
    let mut paths = BTreeSet::new();
    for (i, r) in input.routes.iter().enumerate() {
        let field = format!("routes[{i}].path");
        validate::path_prefix(&field, &r.path)?;
        if r.path == "/" {
            return Err(ApiError::invalid(
                &field,
                "`/` is the service's own placements; use another prefix",
            ));
        }
        if !paths.insert(r.path.clone()) {
            return Err(ApiError::invalid(&field, "path listed twice"));
        }
        routes.push(Route {
            path: r.path.clone(),
            placements: placements(
                &r.placements,
                &format!("routes[{i}].placements"),
                known_nodes,
                input.balance,
            )?,
        });
    }
    use validate::ranges;
    validate::in_range(
        "connect_timeout_secs",
        input.connect_timeout_secs,
        ranges::TIMEOUT_SECS,
    )?;
    validate::in_range(
        "read_timeout_secs",
        input.read_timeout_secs,
        ranges::TIMEOUT_SECS,
    )?;
    validate::in_range(
        "send_timeout_secs",
        input.send_timeout_secs,
        ranges::TIMEOUT_SECS,
    )?;
    validate::in_range(
        "client_max_body_size_mb",
        input.client_max_body_size_mb,
        ranges::BODY_SIZE_MB,
    )?;
    validate::in_range("max_fails", input.max_fails, ranges::MAX_FAILS)?;
    validate::in_range(
        "fail_timeout_secs",
        input.fail_timeout_secs,
        ranges::FAIL_TIMEOUT_SECS,
    )?;
    headers(&input.request_headers, "request_headers")?;
    headers(&input.response_headers, "response_headers")?;
    let now = now_ms();
    Ok(ServiceRecord {
        id,
        name: input.name,
        enabled: input.enabled,
        domains,
        balance: input.balance,
        placements: root,
        routes,
        connect_timeout_secs: input.connect_timeout_secs,
        read_timeout_secs: input.read_timeout_secs,
        send_timeout_secs: input.send_timeout_secs,
        client_max_body_size_mb: input.client_max_body_size_mb,
        request_headers: input.request_headers,
        response_headers: input.response_headers,
        websocket: input.websocket,
        max_fails: input.max_fails,
        fail_timeout_secs: input.fail_timeout_secs,
        created_at_ms,
        updated_at_ms: now,
    })
}

fn headers(list: &[HeaderSpec], field: &str) -> Result<(), ApiError> {
    if list.len() > MAX_HEADERS {
        return Err(ApiError::invalid(
            field,
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    Ok(validate::headers(field, list)?)
}

fn placements(
    list: &[PlacementInput],
    field: &str,
    known_nodes: &BTreeSet<String>,
    balance: Balance,
) -> Result<Vec<Placement>, ApiError> {
    if list.len() > MAX_PLACEMENTS {
        return Err(ApiError::invalid(
            field,
            format!("at most {MAX_PLACEMENTS} placements"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let pf = format!("{field}[{i}]");
        if !known_nodes.contains(&p.node_id) {
            return Err(ApiError::invalid(
                &format!("{pf}.node_id"),
                "no node with this ID",
            ));
        }
        if !seen.insert(p.node_id.clone()) {
            return Err(ApiError::invalid(
                &format!("{pf}.node_id"),
                "node listed twice; put all its targets in one placement",
            ));
        }
        if p.targets.is_empty() || p.targets.len() > MAX_TARGETS {
            return Err(ApiError::invalid(
                &format!("{pf}.targets"),
                format!("1 to {MAX_TARGETS} targets per node"),
            ));
        }
        let mut targets = Vec::new();
        for (j, t) in p.targets.iter().enumerate() {
            targets.push(target(t, &format!("{pf}.targets[{j}]"), balance)?);
        }
        out.push(Placement {
            node_id: p.node_id.clone(),
            targets,
        });
    }
    Ok(out)
}

fn target(t: &TargetInput, field: &str, balance: Balance) -> Result<Target, ApiError> {
    let port_field = format!("{field}.port");
    validate::in_range(&port_field, t.port, validate::ranges::PORT)?;
    let port = u16::try_from(t.port)
        .map_err(|_| ApiError::invalid(&port_field, "must be between 1 and 65535"))?;
    validate::in_range(
        &format!("{field}.weight"),
        t.weight,
        validate::ranges::WEIGHT,
    )?;
    if t.backup && balance == Balance::IpHash {
        return Err(ApiError::invalid(
            &format!("{field}.backup"),
            "backup targets cannot be used with ip_hash balancing",
        ));
    }
    let endpoint = match t.kind.as_str() {
        "container" => {
            if t.host.is_some() {
                return Err(ApiError::invalid(
                    &format!("{field}.host"),
                    "only for kind address",
                ));
            }
            match (&t.container, &t.label) {
                (Some(c), None) => validate::container_name(&format!("{field}.container"), c)?,
                (None, Some(l)) => validate::label_selector(&format!("{field}.label"), l)?,
                _ => {
                    return Err(ApiError::invalid(
                        &format!("{field}.container"),
                        "give exactly one of container (name) or label (key=value)",
                    ));
                }
            }
            Endpoint::Container {
                container: t.container.clone(),
                label: t.label.clone(),
                port,
            }
        }
        "address" => {
            if t.container.is_some() || t.label.is_some() {
                return Err(ApiError::invalid(
                    &format!("{field}.container"),
                    "container and label are only for kind container",
                ));
            }
            let host = t.host.as_deref().ok_or_else(|| {
                ApiError::invalid(&format!("{field}.host"), "required for kind address")
            })?;
            validate::target_host(&format!("{field}.host"), host)?;
            Endpoint::Address {
                host: host.to_string(),
                port,
            }
        }
        _ => {
            return Err(ApiError::invalid(
                &format!("{field}.kind"),
                "must be container or address",
            ));
        }
    };
    Ok(Target {
        endpoint,
        weight: t.weight,
        backup: t.backup,
    })
}

/// Per-node state of a service: its placement nodes and every edge.
fn status_of(state: &AppState, svc: &ServiceRecord, live: &Live) -> Vec<ServiceNodeStatus> {
    let carriers = routing::carriers(svc);
    live.nodes
        .iter()
        .filter(|n| carriers.contains(n.id.as_str()) || (n.edge && !carriers.is_empty()))
        .map(|n| {
            let desired = live.desired.get(&n.id).copied().unwrap_or(0);
            let applied = applied_version(state, &n.id);
            let st = routing::apply_state(n, applied, desired);
            let report = n.nginx.as_ref();
            ServiceNodeStatus {
                node_id: n.id.clone(),
                node_name: n.name.clone(),
                role: if carriers.contains(n.id.as_str()) {
                    "node"
                } else {
                    "edge"
                },
                state: st,
                error: if st == ApplyState::Error {
                    report
                        .and_then(|r| r.error.as_ref())
                        .map(|e| e.message.clone())
                } else {
                    None
                },
                // This service's warnings and the node-wide ones, not other services'.
                warnings: report
                    .map(|r| {
                        r.warnings
                            .iter()
                            .filter(|w| w.service_id.as_ref().is_none_or(|id| *id == svc.id))
                            .map(|w| w.message.clone())
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn applied_version(state: &AppState, node_id: &str) -> u64 {
    state
        .presence
        .get(node_id)
        .map(|p| p.applied_config_version)
        .or_else(|| {
            state
                .fleet
                .snapshot()
                .agents
                .iter()
                .find(|a| a.id == node_id)
                .map(|a| a.applied_config_version)
        })
        .unwrap_or(0)
}

fn view(state: &AppState, svc: ServiceRecord, live: &Live) -> ServiceView {
    let status = status_of(state, &svc, live);
    ServiceView {
        placements: placements_out(&svc.placements),
        routes: svc
            .routes
            .iter()
            .map(|r| RouteOut {
                path: r.path.clone(),
                placements: placements_out(&r.placements),
            })
            .collect(),
        id: svc.id,
        name: svc.name,
        enabled: svc.enabled,
        domains: svc.domains,
        balance: svc.balance,
        connect_timeout_secs: svc.connect_timeout_secs,
        read_timeout_secs: svc.read_timeout_secs,
        send_timeout_secs: svc.send_timeout_secs,
        client_max_body_size_mb: svc.client_max_body_size_mb,
        request_headers: svc.request_headers,
        response_headers: svc.response_headers,
        websocket: svc.websocket,
        max_fails: svc.max_fails,
        fail_timeout_secs: svc.fail_timeout_secs,
        created_at: rfc3339(svc.created_at_ms),
        updated_at: rfc3339(svc.updated_at_ms),
        status,
    }
}

fn find_service(state: &AppState, id: &str) -> Result<ServiceRecord, ApiError> {
    state
        .fleet
        .snapshot()
        .services
        .iter()
        .find(|s| s.id == id)
        .cloned()
        .ok_or(ApiError::NotFound(Resource::Service))
}

fn live_now(state: &AppState) -> Live {
    crate::fleet::live(state, now_ms())
}

fn known_nodes(state: &AppState) -> BTreeSet<String> {
    state
        .fleet
        .snapshot()
        .agents
        .iter()
        .map(|a| a.id.clone())
        .collect()
}

/// All services with their per-node apply state.
#[utoipa::path(get, path = "/api/services", tag = "services",
    responses((status = 200, body = [ServiceView]), (status = 401, body = capstan_proto::ErrorBody)))]
pub async fn list_services(
    _user: UserAuth,
    State(state): State<AppState>,
) -> Result<Json<Vec<ServiceView>>, ApiError> {
    let live = live_now(&state);
    let services = state.fleet.snapshot().services.clone();
    Ok(Json(
        services
            .into_iter()
            .map(|s| view(&state, s, &live))
            .collect(),
    ))
}

/// Creates a service. Every node that carries it (and every edge) converges within
/// about a heartbeat.
#[utoipa::path(post, path = "/api/services", tag = "services", request_body = ServiceInput,
    responses((status = 201, body = ServiceView),
        (status = 400, body = capstan_proto::ErrorBody),
        (status = 409, body = capstan_proto::ErrorBody),
        (status = 422, body = capstan_proto::ErrorBody)))]
pub async fn create_service(
    user: UserAuth,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<ServiceInput>,
) -> Result<(StatusCode, Json<ServiceView>), ApiError> {
    let record = to_record(
        input,
        uuid::Uuid::new_v4().to_string(),
        now_ms(),
        &known_nodes(&state),
    )?;
    let stored = record.clone();
    state
        .blocking(move |s| Ok(s.put_service(&stored, true)?))
        .await?;
    state.refresh_fleet().await?;
    tracing::info!(service = %record.name, by = %user.username, "service created");
    let live = live_now(&state);
    Ok((StatusCode::CREATED, Json(view(&state, record, &live))))
}

/// One service.
#[utoipa::path(get, path = "/api/services/{id}", tag = "services",
    params(("id" = String, Path, description = "Service ID")),
    responses((status = 200, body = ServiceView), (status = 404, body = capstan_proto::ErrorBody)))]
pub async fn get_service(
    _user: UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ServiceView>, ApiError> {
    let svc = find_service(&state, &id)?;
    let live = live_now(&state);
    Ok(Json(view(&state, svc, &live)))
}

/// Replaces a service (full document, defaults for what is omitted).
#[utoipa::path(put, path = "/api/services/{id}", tag = "services",
    params(("id" = String, Path, description = "Service ID")),
    request_body = ServiceInput,
    responses((status = 200, body = ServiceView),
        (status = 404, body = capstan_proto::ErrorBody),
        (status = 409, body = capstan_proto::ErrorBody),
        (status = 422, body = capstan_proto::ErrorBody)))]
pub async fn replace_service(
    user: UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ServiceInput>,
) -> Result<Json<ServiceView>, ApiError> {
    let existing = find_service(&state, &id)?;
    let record = to_record(input, id, existing.created_at_ms, &known_nodes(&state))?;
    let stored = record.clone();
    state
        .blocking(move |s| Ok(s.put_service(&stored, false)?))
        .await?;
    state.refresh_fleet().await?;
    tracing::info!(service = %record.name, by = %user.username, "service updated");
    let live = live_now(&state);
    Ok(Json(view(&state, record, &live)))
}

/// Deletes a service; its NGINX config disappears from every node.
#[utoipa::path(delete, path = "/api/services/{id}", tag = "services",
    params(("id" = String, Path, description = "Service ID")),
    responses((status = 204), (status = 404, body = capstan_proto::ErrorBody)))]
pub async fn delete_service(
    user: UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let target = id.clone();
    let existed = state
        .blocking(move |s| Ok(s.delete_service(&target)?))
        .await?;
    if !existed {
        return Err(ApiError::NotFound(Resource::Service));
    }
    state.refresh_fleet().await?;
    tracing::info!(service.id = %id, by = %user.username, "service deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct RoutingMap {
    domains: Vec<DomainRoute>,
    nodes: Vec<NodeRouting>,
}

#[derive(Serialize, ToSchema)]
pub struct NodeRef {
    node_id: String,
    node_name: String,
    online: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DomainRoute {
    domain: String,
    service_id: String,
    service_name: String,
    enabled: bool,
    nodes: Vec<NodeRef>,
    edges: Vec<NodeRef>,
}

#[derive(Serialize, ToSchema)]
pub struct NodeRouting {
    node_id: String,
    node_name: String,
    edge: bool,
    online: bool,
    address: Option<String>,
    http_port: Option<u16>,
    https_port: Option<u16>,
    /// Hex.
    desired_version: String,
    applied_version: String,
    #[schema(value_type = String)]
    state: ApplyState,
    error: Option<String>,
    warnings: Vec<String>,
    reloads: u64,
}

/// Which domain goes to which node (and through which edge), and each node's NGINX state.
#[utoipa::path(get, path = "/api/routing", tag = "services",
    responses((status = 200, body = RoutingMap)))]
pub async fn routing(
    _user: UserAuth,
    State(state): State<AppState>,
) -> Result<Json<RoutingMap>, ApiError> {
    let snapshot = state.fleet.snapshot();
    let live = live_now(&state);
    let nodes = &live.nodes;
    let node_ref = |n: &NodeView| NodeRef {
        node_id: n.id.clone(),
        node_name: n.name.clone(),
        online: n.online,
    };
    let edges: Vec<NodeRef> = nodes.iter().filter(|n| n.edge).map(node_ref).collect();
    let mut domains = Vec::new();
    for svc in &snapshot.services {
        let carriers = routing::carriers(svc);
        for d in &svc.domains {
            domains.push(DomainRoute {
                domain: d.clone(),
                service_id: svc.id.clone(),
                service_name: svc.name.clone(),
                enabled: svc.enabled,
                nodes: nodes
                    .iter()
                    .filter(|n| carriers.contains(n.id.as_str()))
                    .map(node_ref)
                    .collect(),
                edges: edges
                    .iter()
                    .map(|e| NodeRef {
                        node_id: e.node_id.clone(),
                        node_name: e.node_name.clone(),
                        online: e.online,
                    })
                    .collect(),
            });
        }
    }
    domains.sort_by(|a, b| a.domain.cmp(&b.domain));
    let node_states = nodes
        .iter()
        .map(|n| {
            let desired = live.desired.get(&n.id).copied().unwrap_or(0);
            let applied = applied_version(&state, &n.id);
            let st = routing::apply_state(n, applied, desired);
            let report = n.nginx.as_ref();
            NodeRouting {
                node_id: n.id.clone(),
                node_name: n.name.clone(),
                edge: n.edge,
                online: n.online,
                address: report.map(|r| r.address.clone()),
                http_port: report.map(|r| r.http_port),
                https_port: report.map(|r| r.https_port),
                desired_version: format!("{desired:016x}"),
                applied_version: format!("{applied:016x}"),
                state: st,
                error: report
                    .and_then(|r| r.error.as_ref())
                    .map(|e| e.message.clone()),
                warnings: report
                    .map(|r| r.warnings.iter().map(|w| w.message.clone()).collect())
                    .unwrap_or_default(),
                reloads: report.map(|r| r.reloads).unwrap_or(0),
            }
        })
        .collect();
    Ok(Json(RoutingMap {
        domains,
        nodes: node_states,
    }))
}
