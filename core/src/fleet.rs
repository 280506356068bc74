//! An in-memory snapshot of the fleet's definitions (nodes and services), rebuilt from
//! the store after every write. Beats read it instead of the store: computing a node's
//! desired state once a second per node must not decode every record each time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::presence::Presence;
use crate::routing::{self, NodeView, UiRoute};
use crate::store::{AgentRecord, ServiceRecord, Store, StoreError};

#[derive(Default)]
pub struct Snapshot {
    pub agents: Vec<AgentRecord>,
    pub services: Vec<ServiceRecord>,
    /// Agent ID → index in `agents` (every beat authenticates against it).
    index: HashMap<String, usize>,
}

impl Snapshot {
    pub fn agent(&self, id: &str) -> Option<&AgentRecord> {
        self.index.get(id).and_then(|i| self.agents.get(*i))
    }
}

#[derive(Default)]
pub struct Fleet {
    current: RwLock<Arc<Snapshot>>,
    /// Serializes reloads: two writers refreshing at once must not let the one that read
    /// the store first replace the newer snapshot (a node created concurrently would
    /// then be unknown to authentication until the next write).
    reloading: Mutex<()>,
}

impl Fleet {
    pub fn load(store: &Store) -> Result<Fleet, StoreError> {
        let fleet = Fleet::default();
        fleet.reload(store)?;
        Ok(fleet)
    }

    /// Re-reads the definitions; call (on the blocking pool) after each committed write.
    pub fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let agents = store.list_agents()?;
        let index = agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.clone(), i))
            .collect();
        let snapshot = Arc::new(Snapshot {
            agents,
            services: store.list_services()?,
            index,
        });
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        *guard = snapshot;
        Ok(())
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Routing's view of every node: definitions overlaid with live presence.
pub fn node_views(
    snapshot: &Snapshot,
    presence: &Presence,
    now_ms: i64,
    missed_beats: u32,
) -> Vec<NodeView> {
    snapshot
        .agents
        .iter()
        .map(|a| {
            let live = presence.get(&a.id);
            let (last_seen, interval, nginx) = match &live {
                Some(p) => (Some(p.last_seen_ms), p.interval_ms, p.nginx.clone()),
                None => (
                    a.last_seen_ms,
                    a.interval_ms.unwrap_or(1000),
                    a.nginx.clone(),
                ),
            };
            let online = crate::liveness::is_online(last_seen, interval, missed_beats, now_ms);
            NodeView {
                id: a.id.clone(),
                name: a.name.clone(),
                edge: a.edge,
                online,
                nginx,
            }
        })
        .collect()
}

/// The core's UI route for edges, from `ui_domain` and the listen address.
pub fn ui_route(config: &crate::config::Config) -> Option<UiRoute> {
    let domain = config.ui_domain.clone()?;
    let ip = config.listen.ip();
    let host = if ip.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        ip.to_string()
    };
    Some(UiRoute {
        domain,
        host,
        port: config.listen.port(),
    })
}

/// Desired state of one node, or None for an unknown node. Served from [`DesiredCache`].
pub fn desired_for(
    state: &crate::AppState,
    node_id: &str,
    now_ms: i64,
) -> Option<Arc<capstan_proto::Versioned<capstan_proto::NginxDesired>>> {
    state.desired.get(state, node_id, now_ms)
}

/// How long a computed online set is trusted: a node going offline (no event, just
/// silence) reaches the routing within this on top of the offline threshold.
const ONLINE_RECHECK_MS: i64 = 1000;

/// Per-node desired states, computed once per change instead of once per beat: a beat
/// costs O(1) here, not O(nodes). Entries are dropped when the definitions change (a new
/// snapshot), when presence reports a routing-relevant change, or when the online set
/// (rechecked at most once a second) differs.
#[derive(Default)]
pub struct DesiredCache {
    inner: Mutex<Option<CacheEpoch>>,
}

struct CacheEpoch {
    snapshot: Arc<Snapshot>,
    generation: u64,
    checked_ms: i64,
    nodes: Arc<Vec<NodeView>>,
    desired: HashMap<String, Arc<capstan_proto::Versioned<capstan_proto::NginxDesired>>>,
}

impl DesiredCache {
    fn get(
        &self,
        state: &crate::AppState,
        node_id: &str,
        now_ms: i64,
    ) -> Option<Arc<capstan_proto::Versioned<capstan_proto::NginxDesired>>> {
        let snapshot = state.fleet.snapshot();
        let generation = state.presence.routing_generation();
        let nodes = {
            let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = guard
                .as_ref()
                .is_some_and(|e| Arc::ptr_eq(&e.snapshot, &snapshot) && e.generation == generation);
            let recheck = guard
                .as_ref()
                .is_some_and(|e| now_ms - e.checked_ms >= ONLINE_RECHECK_MS);
            let views = || {
                Arc::new(node_views(
                    &snapshot,
                    &state.presence,
                    now_ms,
                    state.config.offline_after_missed_beats,
                ))
            };
            match guard.as_mut() {
                Some(e) if fresh && !recheck => {
                    if let Some(d) = e.desired.get(node_id) {
                        return Some(d.clone());
                    }
                    e.nodes.clone()
                }
                Some(e) if fresh => {
                    let nodes = views();
                    let same = nodes.len() == e.nodes.len()
                        && nodes
                            .iter()
                            .zip(e.nodes.iter())
                            .all(|(a, b)| a.online == b.online);
                    e.checked_ms = now_ms;
                    if !same {
                        e.desired.clear();
                        e.nodes = nodes;
                    }
                    if let Some(d) = e.desired.get(node_id) {
                        return Some(d.clone());
                    }
                    e.nodes.clone()
                }
                _ => {
                    let nodes = views();
                    *guard = Some(CacheEpoch {
                        snapshot: snapshot.clone(),
                        generation,
                        checked_ms: now_ms,
                        nodes: nodes.clone(),
                        desired: HashMap::new(),
                    });
                    nodes
                }
            }
        };
        // Computed outside the lock: other nodes' beats need not wait for it.
        let node = nodes.iter().find(|n| n.id == node_id)?;
        let ui = ui_route(&state.config);
        let desired = Arc::new(routing::desired_for(
            node,
            &nodes,
            &snapshot.services,
            ui.as_ref(),
        ));
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = guard.as_mut()
            && Arc::ptr_eq(&e.nodes, &nodes)
        {
            e.desired.insert(node_id.to_string(), desired.clone());
        }
        Some(desired)
    }
}

/// Every node's live view and desired-state version, computed once for a whole request
/// (listing N nodes must not compute N × N views).
pub struct Live {
    pub nodes: Vec<NodeView>,
    pub desired: HashMap<String, u64>,
}

pub fn live(state: &crate::AppState, now_ms: i64) -> Live {
    let snapshot = state.fleet.snapshot();
    let nodes = node_views(
        &snapshot,
        &state.presence,
        now_ms,
        state.config.offline_after_missed_beats,
    );
    let ui = ui_route(&state.config);
    let desired = nodes
        .iter()
        .map(|n| {
            let d = routing::desired_for(n, &nodes, &snapshot.services, ui.as_ref());
            (n.id.clone(), d.version)
        })
        .collect();
    Live { nodes, desired }
}
