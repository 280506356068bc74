//! Desired NGINX state per node: a pure function of the services, the nodes and which of
//! them are online. The agent renders it; the core only decides *what* each NGINX serves.
//!
//! - A node serves the routes it has placements for, to its local targets.
//! - An edge node serves every service that has a placement anywhere: each route goes to
//!   the edge's own local targets (no second hop when edge and node share a host) plus
//!   the online nodes that carry that route, which route the path again to their targets.
//!   HTTPS is passed through by SNI to those nodes with PROXY protocol.
//! - Nodes behind an edge trust `X-Forwarded-For` from the edges' addresses only.
//!
//! The version is a hash of the state, so recomputing an unchanged state yields the same
//! version and the agent does nothing.

use std::collections::BTreeSet;

use capstan_proto::{
    Endpoint, NginxDesired, NginxReport, RouteSpec, ServiceSpec, TargetSpec, TlsRoute, Versioned,
};
use sha2::{Digest, Sha256};

use crate::store::{Placement, ServiceRecord};

/// What routing needs to know about a node.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: String,
    pub name: String,
    pub edge: bool,
    pub online: bool,
    pub nginx: Option<NginxReport>,
}

/// The core's own UI, routed by the edges when `ui_domain` is configured.
#[derive(Debug, Clone)]
pub struct UiRoute {
    pub domain: String,
    pub host: String,
    pub port: u16,
}

/// Name and ID of the synthetic service carrying the UI route; user services may not use
/// the `capstan-` prefix (and their IDs are UUIDs).
pub const UI_SERVICE: &str = "capstan-ui";

pub fn desired_for(
    node: &NodeView,
    nodes: &[NodeView],
    services: &[ServiceRecord],
    ui: Option<&UiRoute>,
) -> Versioned<NginxDesired> {
    let mut specs = Vec::new();
    let mut tls_routes = Vec::new();
    for svc in services.iter().filter(|s| s.enabled) {
        let routes = all_routes(svc);
        let carriers = carriers(svc);
        if carriers.is_empty() {
            continue;
        }
        let hosts_here = carriers.contains(node.id.as_str());
        if !node.edge && !hosts_here {
            continue;
        }
        let mut route_specs = Vec::new();
        for (path, placements) in &routes {
            let mut targets = local_targets(&node.id, placements);
            if node.edge {
                targets.extend(remote_nodes(&node.id, placements, nodes));
            }
            route_specs.push(RouteSpec {
                path: path.clone(),
                targets,
            });
        }
        if node.edge {
            let backends: Vec<String> = nodes
                .iter()
                .filter(|n| n.id != node.id && n.online && carriers.contains(n.id.as_str()))
                .filter_map(|n| {
                    n.nginx
                        .as_ref()
                        .map(|r| format!("{}:{}", bracket(&r.address), r.https_port))
                })
                .collect();
            if !backends.is_empty() {
                tls_routes.push(TlsRoute {
                    domains: svc.domains.clone(),
                    backends,
                });
            }
        }
        specs.push(spec(svc, route_specs));
    }
    if node.edge
        && let Some(ui) = ui
    {
        specs.push(ui_spec(ui));
    }
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    let trusted_proxies = if node.edge {
        Vec::new()
    } else {
        let set: BTreeSet<String> = nodes
            .iter()
            .filter(|n| n.edge && n.id != node.id)
            .filter_map(|n| n.nginx.as_ref().map(|r| r.address.clone()))
            .collect();
        set.into_iter().collect()
    };
    let state = NginxDesired {
        services: specs,
        trusted_proxies,
        tls_routes,
    };
    Versioned {
        version: version_of(&state),
        state,
    }
}

/// Nodes with a placement anywhere in the service (any route).
pub fn carriers(svc: &ServiceRecord) -> BTreeSet<&str> {
    svc.placements
        .iter()
        .chain(svc.routes.iter().flat_map(|r| r.placements.iter()))
        .map(|p| p.node_id.as_str())
        .collect()
}

/// `/` first, then the extra routes.
fn all_routes(svc: &ServiceRecord) -> Vec<(String, Vec<Placement>)> {
    let mut out = vec![("/".to_string(), svc.placements.clone())];
    out.extend(
        svc.routes
            .iter()
            .map(|r| (r.path.clone(), r.placements.clone())),
    );
    out
}

fn local_targets(node_id: &str, placements: &[Placement]) -> Vec<TargetSpec> {
    placements
        .iter()
        .filter(|p| p.node_id == node_id)
        .flat_map(|p| p.targets.iter())
        .map(|t| TargetSpec {
            endpoint: t.endpoint.clone(),
            weight: t.weight,
            backup: t.backup,
        })
        .collect()
}

fn remote_nodes(self_id: &str, placements: &[Placement], nodes: &[NodeView]) -> Vec<TargetSpec> {
    let ids: BTreeSet<&str> = placements
        .iter()
        .map(|p| p.node_id.as_str())
        .filter(|id| *id != self_id)
        .collect();
    nodes
        .iter()
        .filter(|n| ids.contains(n.id.as_str()) && n.online)
        .filter_map(|n| {
            n.nginx.as_ref().map(|r| TargetSpec {
                endpoint: Endpoint::Address {
                    host: r.address.clone(),
                    port: r.http_port,
                },
                weight: 1,
                backup: false,
            })
        })
        .collect()
}

fn bracket(addr: &str) -> String {
    if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_string()
    }
}

fn spec(svc: &ServiceRecord, routes: Vec<RouteSpec>) -> ServiceSpec {
    ServiceSpec {
        id: svc.id.clone(),
        name: svc.name.clone(),
        domains: svc.domains.clone(),
        balance: svc.balance,
        routes,
        connect_timeout_secs: svc.connect_timeout_secs,
        read_timeout_secs: svc.read_timeout_secs,
        send_timeout_secs: svc.send_timeout_secs,
        client_max_body_size_mb: svc.client_max_body_size_mb,
        request_headers: svc.request_headers.clone(),
        response_headers: svc.response_headers.clone(),
        websocket: svc.websocket,
        max_fails: svc.max_fails,
        fail_timeout_secs: svc.fail_timeout_secs,
    }
}

fn ui_spec(ui: &UiRoute) -> ServiceSpec {
    ServiceSpec {
        id: UI_SERVICE.into(),
        name: UI_SERVICE.into(),
        domains: vec![ui.domain.clone()],
        balance: capstan_proto::Balance::RoundRobin,
        routes: vec![RouteSpec {
            path: "/".into(),
            targets: vec![TargetSpec {
                endpoint: Endpoint::Address {
                    host: ui.host.clone(),
                    port: ui.port,
                },
                weight: 1,
                backup: false,
            }],
        }],
        connect_timeout_secs: 5,
        read_timeout_secs: 60,
        send_timeout_secs: 60,
        client_max_body_size_mb: 10,
        request_headers: vec![],
        response_headers: vec![],
        websocket: false,
        max_fails: 0,
        fail_timeout_secs: 10,
    }
}

/// SHA-256 over the state, cut to 53 bits so it survives JSON numbers in browsers; never
/// 0 (0 means "none").
pub fn version_of(desired: &NginxDesired) -> u64 {
    let bytes = serde_json::to_vec(desired).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) | 1
}

/// Where a node stands with its desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplyState {
    Applied,
    Pending,
    Error,
    Offline,
    /// The agent does not manage an NGINX (no report in its beats).
    Unmanaged,
}

pub fn apply_state(node: &NodeView, applied: u64, desired: u64) -> ApplyState {
    if !node.online {
        return ApplyState::Offline;
    }
    let Some(report) = &node.nginx else {
        return ApplyState::Unmanaged;
    };
    if applied == desired {
        ApplyState::Applied
    } else if report.error.as_ref().is_some_and(|e| e.version == desired) {
        ApplyState::Error
    } else {
        ApplyState::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Route, Target};

    fn report(addr: &str, port: u16) -> Option<NginxReport> {
        Some(NginxReport {
            address: addr.into(),
            http_port: port,
            https_port: port + 1,
            error: None,
            warnings: vec![],
            reloads: 0,
        })
    }

    fn node(id: &str, edge: bool, online: bool, port: u16) -> NodeView {
        NodeView {
            id: id.into(),
            name: id.into(),
            edge,
            online,
            nginx: report("10.0.0.1", port),
        }
    }

    fn container(name: &str) -> Target {
        Target {
            endpoint: Endpoint::Container {
                container: Some(name.into()),
                label: None,
                port: 80,
            },
            weight: 1,
            backup: false,
        }
    }

    fn shop() -> ServiceRecord {
        let mut s = crate::store::services::tests::service("s1", "shop", &["shop.example.com"]);
        s.placements = vec![
            Placement {
                node_id: "a".into(),
                targets: vec![container("web1"), container("web2")],
            },
            Placement {
                node_id: "b".into(),
                targets: vec![container("web3")],
            },
        ];
        s.routes = vec![Route {
            path: "/api/".into(),
            placements: vec![Placement {
                node_id: "b".into(),
                targets: vec![container("api")],
            }],
        }];
        s
    }

    #[test]
    fn node_serves_only_its_local_targets() {
        let nodes = vec![node("a", false, true, 80), node("b", false, true, 81)];
        let d = desired_for(&nodes[0], &nodes, &[shop()], None);
        assert_eq!(d.state.services.len(), 1);
        let routes = &d.state.services[0].routes;
        assert_eq!(routes[0].targets.len(), 2);
        assert!(routes[1].targets.is_empty(), "a has no /api/ placement");
        assert!(d.state.tls_routes.is_empty());
    }

    #[test]
    fn edge_routes_to_online_carriers_and_local_targets_without_second_hop() {
        let mut nodes = vec![
            node("a", true, true, 80),
            node("b", false, true, 81),
            node("c", false, true, 82),
        ];
        let d = desired_for(&nodes[0], &nodes, &[shop()], None);
        let root = &d.state.services[0].routes[0];
        // a's own containers + node b's NGINX; c carries nothing.
        assert_eq!(root.targets.len(), 3);
        assert!(
            root.targets
                .iter()
                .any(|t| matches!(&t.endpoint, Endpoint::Address { port: 81, .. }))
        );
        assert_eq!(
            d.state.tls_routes[0].backends,
            vec!["10.0.0.1:82".to_string()]
        );
        // b trusts the edge.
        let db = desired_for(&nodes[1], &nodes, &[shop()], None);
        assert_eq!(db.state.trusted_proxies, vec!["10.0.0.1".to_string()]);
        // b goes offline: it leaves the edge's upstreams and the version changes.
        let before = d.version;
        nodes[1].online = false;
        let d2 = desired_for(&nodes[0], &nodes, &[shop()], None);
        assert_eq!(d2.state.services[0].routes[0].targets.len(), 2);
        assert!(d2.state.services[0].routes[1].targets.is_empty());
        assert_ne!(before, d2.version);
    }

    #[test]
    fn version_is_stable_and_disabled_services_vanish() {
        let nodes = vec![node("a", true, true, 80), node("b", false, true, 81)];
        let v1 = desired_for(&nodes[0], &nodes, &[shop()], None).version;
        let v2 = desired_for(&nodes[0], &nodes, &[shop()], None).version;
        assert_eq!(v1, v2);
        assert_ne!(v1, 0);
        let mut off = shop();
        off.enabled = false;
        let d = desired_for(&nodes[0], &nodes, &[off], None);
        assert!(d.state.services.is_empty());
        let ui = UiRoute {
            domain: "capstan.example.com".into(),
            host: "127.0.0.1".into(),
            port: 8080,
        };
        let d = desired_for(&nodes[0], &nodes, &[], Some(&ui));
        assert_eq!(d.state.services[0].name, UI_SERVICE);
        let d = desired_for(&nodes[1], &nodes, &[], Some(&ui));
        assert!(d.state.services.is_empty(), "only edges route the UI");
    }

    #[test]
    fn what_the_core_computes_passes_the_agents_checks() {
        let nodes = vec![node("a", true, true, 80), node("b", false, true, 81)];
        let ui = UiRoute {
            domain: "capstan.example.com".into(),
            host: "127.0.0.1".into(),
            port: 8080,
        };
        for n in &nodes {
            let d = desired_for(n, &nodes, &[shop()], Some(&ui));
            assert_eq!(capstan_proto::validate::nginx_desired(&d.state), Ok(()));
        }
    }
}
