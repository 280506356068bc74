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
use crate::error::ApiError;
use crate::extract::UserAuth;
use crate::metrics::{container_key, host_key, now_s};
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
    let view = state
        .blocking(move |s| {
            if s.get_agent(&node)?.is_none() {
                return Err(ApiError::NotFound("node"));
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
            let (t, columns) = s.metrics_read(&keys, TIERS[tier], now, points)?;
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
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(bad_query("name", "must be a Docker container name"));
    }
    let node = id.clone();
    Ok(Json(
        history(state, id, move |n| container_key(&node, &name, n), query).await?,
    ))
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
        return Err(ApiError::NotFound("node"));
    }
    Ok(Json(LatestView {
        sample: state.metrics.latest(&id),
    }))
}
