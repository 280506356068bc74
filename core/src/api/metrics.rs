//! Metrics of a node and of its containers: history from the rings (the tier is picked
//! from the range) as columnar arrays ready for a chart, and the newest sample for live
//! tables.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, Query, State};
use capstan_proto::MetricsSample;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, Resource};
use crate::extract::UserAuth;
use crate::metrics::{container_key, host_key, now_s, vm_key};
use crate::store::metrics_ring::TIERS;

/// Explicit series per query at most; without `series` every series of the node (or
/// container) is returned, at most [`MAX_ALL_SERIES`].
const MAX_SERIES: usize = 64;
const MAX_ALL_SERIES: usize = 500;

/// One series over the range: one entry per bucket of `t`, `null` where no data.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesView {
    pub avg: Vec<Option<f64>>,
    pub min: Vec<Option<f64>>,
    pub max: Vec<Option<f64>>,
}

/// Columnar chart data.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsView {
    pub range: String,
    /// Seconds per bucket (1, 60, 900 or 3600).
    pub resolution_s: u64,
    /// Bucket starts, Unix seconds, ascending.
    pub t: Vec<u64>,
    pub series: BTreeMap<String, SeriesView>,
}

/// The node's newest sample (host values and running containers), null before its first.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestView {
    pub sample: Option<MetricsSample>,
}

/// A bad query parameter: 400 naming it (the body-field grammar errors are 422).
fn bad_query(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        field: Some(field.to_string()),
        message: message.into(),
    }
}

/// `range` → (tier, buckets).
fn range_tier(range: &str) -> Option<(usize, u64)> {
    Some(match range {
        "1h" => (0, 3600),
        "24h" => (1, 1440),
        "7d" => (2, 672),
        "30d" => (2, 2880),
        "1y" => (3, 8760),
        _ => return None,
    })
}

fn parse_series(raw: Option<&String>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let names: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return Err(bad_query("series", "name at least one series"));
    }
    if names.len() > MAX_SERIES {
        return Err(bad_query(
            "series",
            format!("at most {MAX_SERIES} series per query"),
        ));
    }
    if let Some(bad) = names.iter().find(|n| {
        n.len() > 160
            || !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
    }) {
        return Err(bad_query("series", format!("bad series name {bad:?}")));
    }
    Ok(Some(names))
}

async fn history(
    state: AppState,
    node: String,
    prefix_of: impl Fn(&str) -> String + Send + 'static,
    query: HashMap<String, String>,
) -> Result<MetricsView, ApiError> {
    let range = query.get("range").cloned().unwrap_or_else(|| "1h".into());
    let (tier, points) = range_tier(&range)
        .ok_or_else(|| bad_query("range", "must be one of 1h, 24h, 7d, 30d, 1y"))?;
    let wanted = parse_series(query.get("series"))?;
    let now = now_s();
    let hub = state.metrics.clone();
    let view = state
        .blocking(move |s| {
            if s.get_agent(&node)?.is_none() {
                return Err(ApiError::NotFound(Resource::Node));
            }
            let prefix = prefix_of("");
            let names = match wanted {
                Some(n) => n,
                None => s
                    .metrics_series(&prefix)?
                    .into_iter()
                    .filter_map(|(k, _)| k.strip_prefix(&prefix).map(str::to_string))
                    .take(MAX_ALL_SERIES)
                    .collect(),
            };
            let keys: Vec<String> = names.iter().map(|n| prefix_of(n)).collect();
            let open = |id| hub.open_buckets(id);
            let (t, columns) = s.metrics_read(&keys, TIERS[tier], now, points, Some(&open))?;
            let series = names
                .into_iter()
                .zip(columns)
                .map(|(name, col)| {
                    let view = SeriesView {
                        avg: col.iter().map(|c| c.map(|a| a.avg())).collect(),
                        min: col.iter().map(|c| c.map(|a| a.min)).collect(),
                        max: col.iter().map(|c| c.map(|a| a.max)).collect(),
                    };
                    (name, view)
                })
                .collect();
            Ok(MetricsView {
                range,
                resolution_s: TIERS[tier].resolution_s,
                t,
                series,
            })
        })
        .await?;
    Ok(view)
}

/// A node's host metrics over a range.
#[utoipa::path(get, path = "/api/agents/{id}/metrics", tag = "metrics",
    params(("id" = String, Path, description = "Node ID"),
        ("range" = Option<String>, Query, description = "1h (1 s buckets, default), 24h (1 min), 7d or 30d (15 min), 1y (1 h)"),
        ("series" = Option<String>, Query, description = "Comma-separated series names, e.g. cpu.busy,mem.used; default: all of the node")),
    responses((status = 200, body = MetricsView),
        (status = 400, body = capstan_proto::ErrorBody),
        (status = 404, body = capstan_proto::ErrorBody)))]
pub async fn node_metrics(
    _user: UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<MetricsView>, ApiError> {
    let node = id.clone();
    Ok(Json(
        history(state, id, move |n| host_key(&node, n), query).await?,
    ))
}

/// One container's metrics over a range (by container name).
#[utoipa::path(get, path = "/api/agents/{id}/containers/{name}/metrics", tag = "metrics",
    params(("id" = String, Path, description = "Node ID"),
        ("name" = String, Path, description = "Container name"),
        ("range" = Option<String>, Query, description = "1h, 24h, 7d, 30d or 1y"),
        ("series" = Option<String>, Query, description = "Comma-separated series names, e.g. cpu.pct,mem.used; default: all of the container")),
    responses((status = 200, body = MetricsView),
        (status = 400, body = capstan_proto::ErrorBody),
        (status = 404, body = capstan_proto::ErrorBody)))]
pub async fn container_metrics(
    _user: UserAuth,
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<MetricsView>, ApiError> {
    check_name(&name, "must be a Docker container name")?;
    let node = id.clone();
    Ok(Json(
        history(state, id, move |n| container_key(&node, &name, n), query).await?,
    ))
}

/// One VM's metrics over a range (by guest name).
#[utoipa::path(get, path = "/api/agents/{id}/vms/{name}/metrics", tag = "metrics",
    params(("id" = String, Path, description = "Node ID"),
        ("name" = String, Path, description = "VM name as reported in the latest sample"),
        ("range" = Option<String>, Query, description = "1h, 24h, 7d, 30d or 1y"),
        ("series" = Option<String>, Query, description = "Comma-separated series names, e.g. cpu.pct,mem.used; default: all of the VM")),
    responses((status = 200, body = MetricsView),
        (status = 400, body = capstan_proto::ErrorBody),
        (status = 404, body = capstan_proto::ErrorBody)))]
pub async fn vm_metrics(
    _user: UserAuth,
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<MetricsView>, ApiError> {
    check_name(&name, "must be 1-128 characters of [A-Za-z0-9._-]")?;
    let node = id.clone();
    Ok(Json(
        history(state, id, move |n| vm_key(&node, &name, n), query).await?,
    ))
}

fn check_name(name: &str, message: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(bad_query("name", message));
    }
    Ok(())
}

/// The node's newest sample: live host values and its running containers.
#[utoipa::path(get, path = "/api/agents/{id}/metrics/latest", tag = "metrics",
    params(("id" = String, Path, description = "Node ID")),
    responses((status = 200, body = LatestView),
        (status = 404, body = capstan_proto::ErrorBody)))]
pub async fn latest(
    _user: UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<LatestView>, ApiError> {
    let node = id.clone();
    let exists = state
        .blocking(move |s| Ok(s.get_agent(&node)?.is_some()))
        .await?;
    if !exists {
        return Err(ApiError::NotFound(Resource::Node));
    }
    Ok(Json(LatestView {
        sample: state.metrics.latest(&id),
    }))
}

/// Buckets of the overview sparklines (1 min each: the last half hour).
const SPARK_POINTS: u64 = 30;

/// One node at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverviewNode {
    pub id: String,
    pub name: String,
    pub online: bool,
    pub edge: bool,
    /// RFC 3339 UTC of the node's last beat; null until its first. An offline node's figures
    /// below are the last it sent, as of about then.
    pub last_seen_at: Option<String>,
    /// Unix seconds of the newest sample (null before the first since the core started).
    pub t: Option<u64>,
    /// Newest values: CPU busy %, memory used %, fullest filesystem's used %, load 1.
    pub cpu_pct: Option<f64>,
    pub mem_pct: Option<f64>,
    pub disk_pct: Option<f64>,
    pub load1: Option<f64>,
    /// Network rx+tx over all interfaces but loopback, bytes/s.
    pub net_bps: Option<f64>,
    pub containers: usize,
    /// Containers whose health check fails.
    pub unhealthy: usize,
    pub vms: usize,
    /// Sparklines over the last half hour, 1 min buckets (averages; null: no data).
    pub spark_t: Vec<u64>,
    pub spark_cpu: Vec<Option<f64>>,
    pub spark_mem: Vec<Option<f64>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OverviewView {
    pub nodes: Vec<OverviewNode>,
}

/// Every node at a glance: live figures and half-hour sparklines.
#[utoipa::path(get, path = "/api/metrics/overview", tag = "metrics",
    responses((status = 200, body = OverviewView)))]
pub async fn overview(
    _user: UserAuth,
    State(state): State<AppState>,
) -> Result<Json<OverviewView>, ApiError> {
    let snapshot = state.fleet.snapshot();
    let views = crate::fleet::node_views(
        &snapshot,
        &state.presence,
        crate::clock::now_ms(),
        state.config.offline_after_missed_beats,
    );
    let latest: Vec<Option<MetricsSample>> =
        views.iter().map(|n| state.metrics.latest(&n.id)).collect();
    // Live presence first, else what was persisted (a node silent since before a restart).
    let stored: HashMap<&str, i64> = snapshot
        .agents
        .iter()
        .filter_map(|a| Some((a.id.as_str(), a.last_seen_ms?)))
        .collect();
    let last_seen: Vec<Option<String>> = views
        .iter()
        .map(|n| {
            state
                .presence
                .get(&n.id)
                .map(|p| p.last_seen_ms)
                .or_else(|| stored.get(n.id.as_str()).copied())
                .map(crate::clock::rfc3339)
        })
        .collect();
    let ids: Vec<String> = views.iter().map(|n| n.id.clone()).collect();
    let now = now_s();
    let hub = state.metrics.clone();
    let sparks = state
        .blocking(move |s| {
            let open = |id| hub.open_buckets(id);
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                let keys = [
                    host_key(id, capstan_proto::metric_names::CPU_BUSY),
                    host_key(id, capstan_proto::metric_names::MEM_USED),
                    host_key(id, capstan_proto::metric_names::MEM_TOTAL),
                ];
                out.push(s.metrics_read(&keys, TIERS[1], now, SPARK_POINTS, Some(&open))?);
            }
            Ok(out)
        })
        .await?;
    let nodes = views
        .into_iter()
        .zip(latest)
        .zip(last_seen)
        .zip(sparks)
        .map(|(((view, latest), last_seen_at), (t, cols))| {
            let avg = |i: usize| -> Vec<Option<f64>> {
                cols.get(i)
                    .map(|c| c.iter().map(|a| a.map(|a| a.avg())).collect())
                    .unwrap_or_default()
            };
            let cpu = avg(0);
            let used = avg(1);
            let total = avg(2);
            let mem = used
                .iter()
                .zip(&total)
                .map(|(u, t)| match (u, t) {
                    (Some(u), Some(t)) if *t > 0.0 => Some(u / t * 100.0),
                    _ => None,
                })
                .collect();
            let mut node = OverviewNode {
                id: view.id,
                name: view.name,
                online: view.online,
                edge: view.edge,
                last_seen_at,
                t: None,
                cpu_pct: None,
                mem_pct: None,
                disk_pct: None,
                load1: None,
                net_bps: None,
                containers: 0,
                unhealthy: 0,
                vms: 0,
                spark_t: t,
                spark_cpu: cpu,
                spark_mem: mem,
            };
            if let Some(s) = latest {
                summarize(&mut node, &s);
            }
            node
        })
        .collect();
    Ok(Json(OverviewView { nodes }))
}

/// Fills the live figures of an overview row from the node's newest sample.
fn summarize(node: &mut OverviewNode, s: &MetricsSample) {
    use capstan_proto::metric_names as m;
    let h = &s.host;
    node.t = Some(s.t);
    node.cpu_pct = h.get(m::CPU_BUSY).copied();
    node.load1 = h.get(m::LOAD_1).copied();
    node.mem_pct = match (h.get(m::MEM_USED), h.get(m::MEM_TOTAL)) {
        (Some(u), Some(t)) if *t > 0.0 => Some(u / t * 100.0),
        _ => None,
    };
    let pct_suffix = format!(".{}", m::FS_USED_PCT);
    node.disk_pct = h
        .iter()
        .filter(|(k, _)| k.starts_with("fs.") && k.ends_with(&pct_suffix))
        .map(|(_, v)| *v)
        .reduce(f64::max);
    let (rx, tx) = (format!(".{}", m::NET_RX_BPS), format!(".{}", m::NET_TX_BPS));
    let net: Vec<f64> = h
        .iter()
        .filter(|(k, _)| {
            k.starts_with("net.")
                && !k.starts_with("net.lo.")
                && (k.ends_with(&rx) || k.ends_with(&tx))
        })
        .map(|(_, v)| *v)
        .collect();
    node.net_bps = (!net.is_empty()).then(|| net.iter().sum());
    node.containers = s.containers.len();
    // Agents that do not send `health` still carry it in Docker's status text.
    node.unhealthy = s
        .containers
        .iter()
        .filter(|c| c.health == "unhealthy" || c.status.ends_with("(unhealthy)"))
        .count();
    node.vms = s.vms.len();
}
