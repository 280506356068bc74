//! The agent's long-poll beside its 1 s beat. Held until something for the node changes
//! (its desired state of any section, a log watch started), or until the timeout; the
//! answer is only a counter: the agent then beats at once, and the beat reply carries the
//! state. Cut by a proxy, lost, or answered by a restarted core (new `boot`), it costs at
//! most the wait for the next regular beat.

use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use capstan_proto::WatchResponse;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::extract::AgentAuth;

#[derive(Deserialize, IntoParams)]
pub struct WatchQuery {
    /// The `counter` of the previous answer; absent: answer at once with the current one.
    since: Option<String>,
    /// The `boot` of the previous answer; another value answers at once (`changed`).
    boot: Option<String>,
    /// Seconds to hold at most (capped by the core's `watch_timeout_secs`, default 25).
    timeout: Option<String>,
}

fn bad(field: &str, message: &str) -> ApiError {
    ApiError::BadRequest {
        field: Some(field.to_string()),
        message: message.to_string(),
    }
}

fn parse_secs(field: &str, raw: Option<&str>, max: u64) -> Result<u64, ApiError> {
    match raw {
        None => Ok(max),
        Some(r) => match r.parse::<u64>() {
            Ok(v) if v <= 3600 => Ok(v.min(max)),
            _ => Err(bad(field, "must be a whole number of seconds (0-3600)")),
        },
    }
}

/// Waits for a change for this node. `changed` is true when the counter (or the core's
/// boot) differs from `since`/`boot`: beat now. The answer never carries state.
#[utoipa::path(get, path = "/api/agent/watch", tag = "agent protocol",
    security(("agent_id" = [], "agent_key" = [])),
    params(WatchQuery),
    responses((status = 200, body = WatchResponse),
        (status = 400, body = capstan_proto::ErrorBody),
        (status = 401, body = capstan_proto::ErrorBody)))]
pub async fn watch(
    AgentAuth { agent }: AgentAuth,
    State(state): State<AppState>,
    Query(q): Query<WatchQuery>,
) -> Result<Json<WatchResponse>, ApiError> {
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| bad("since", "must be a whole number"))?,
        ),
    };
    let timeout = parse_secs(
        "timeout",
        q.timeout.as_deref(),
        state.config.watch_timeout_secs,
    )?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let boot = state.changes.boot().to_string();
    let same_boot = q.boot.as_deref().is_none_or(|b| b == boot);
    let signal = state.changes.node(&agent.id);
    let answer = |counter: u64| {
        Json(WatchResponse {
            boot: boot.clone(),
            counter,
            changed: since.is_some() && (!same_boot || since != Some(counter)),
        })
    };
    // At most half the listener's connections are held by watches; over that a watch
    // answers at once and the agent backs off (its changes wait for its beat).
    let held = state
        .changes
        .hold((state.config.http_max_connections / 2).max(1));
    loop {
        // Registered before looking, so a change between the look and the wait wakes us.
        let node_changed = signal.notify().notified();
        let fleet_changed = state.changes.fleet().notified();
        tokio::pin!(node_changed, fleet_changed);
        node_changed.as_mut().enable();
        fleet_changed.as_mut().enable();
        let version = crate::fleet::desired_for(&state, &agent.id, now_ms()).map(|d| d.version);
        signal.observe_nginx(version);
        let counter = signal.counter();
        if since.is_none() || !same_boot || since != Some(counter) || held.is_none() {
            return Ok(answer(counter));
        }
        tokio::select! {
            _ = &mut node_changed => {}
            _ = &mut fleet_changed => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(answer(counter)),
        }
    }
}
