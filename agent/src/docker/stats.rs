//! What the metrics collector asks Docker: the running containers (full IDs, since cgroup
//! paths are keyed by them; image, state, status text, labels, addresses), one container's
//! health and restart count, and the event stream that says when either changed.
//! Per-second figures come from cgroup files (`metrics::containers`), not from Docker's
//! stats API, which takes one to two seconds per container per call.

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::{Stream, StreamExt};

use super::{DockerError, DockerSource};

/// A running container as the metrics collector needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerMeta {
    /// Full 64-hex ID.
    pub id: String,
    /// First name without Docker's leading `/`.
    pub name: String,
    pub image: String,
    pub state: String,
    pub status: String,
    pub labels: HashMap<String, String>,
    /// Addresses on the container's networks, sorted.
    pub ips: Vec<IpAddr>,
    /// Shares the host's network namespace (`--network host`): reachable on loopback.
    pub host_network: bool,
}

/// What only an inspect tells: health check state, restart count, init process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inspected {
    /// `starting`, `healthy`, `unhealthy`; empty without a health check.
    pub health: String,
    pub restarts: u64,
    /// The container's init process (host PID namespace), 0 when not running. A
    /// restart changes it, and with it the network namespace to read.
    pub pid: u32,
}

/// One container event from Docker's stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerEvent {
    /// Full 64-hex ID.
    pub id: String,
    /// `create`, `start`, `kill`, `die`, `stop`, `destroy`, `rename`, `exec_start: …`, …
    pub action: String,
    /// The container's name (after a rename, the new one).
    pub name: String,
    /// The actor's attributes besides the name: the container's labels, and per action
    /// `signal` (kill), `exitCode` (die), `oldName` (rename), `image`.
    pub attributes: HashMap<String, String>,
}

pub type ContainerEventItem = Result<ContainerEvent, DockerError>;

impl DockerSource {
    /// Running containers, one list call (a few milliseconds).
    pub async fn list_for_metrics(&self) -> Result<Vec<ContainerMeta>, DockerError> {
        Ok(self
            .list_running()
            .await?
            .into_iter()
            .filter_map(|c| {
                let ips = super::container_ips(c.network_settings);
                let host_network = c
                    .host_config
                    .and_then(|h| h.network_mode)
                    .is_some_and(|m| m == "host");
                Some(ContainerMeta {
                    id: c.id?,
                    name: c
                        .names
                        .unwrap_or_default()
                        .first()
                        .map(|n| n.trim_start_matches('/').to_string())?,
                    image: c.image.unwrap_or_default(),
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    status: c.status.unwrap_or_default(),
                    labels: c.labels.unwrap_or_default(),
                    ips,
                    host_network,
                })
            })
            .collect())
    }

    /// Health, restart count and init PID of one container (one inspect call).
    pub async fn inspect_for_metrics(&self, id: &str) -> Result<Inspected, DockerError> {
        let docker = self.client().await?;
        let info = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| DockerError(format!("inspect {id}: {e}")))?;
        let pid = info
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        let health = info
            .state
            .and_then(|s| s.health)
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| s != "none")
            .unwrap_or_default();
        Ok(Inspected {
            pid,
            health,
            restarts: info
                .restart_count
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
        })
    }

    /// Container events from now on (create, start, die, health_status, rename, …).
    /// Exec events are filtered out by the caller, not here: the API's `event` filter
    /// cannot express "everything but".
    pub async fn container_events(
        &self,
    ) -> Result<impl Stream<Item = ContainerEventItem> + Send + 'static, DockerError> {
        let docker = self.client().await?;
        let filters = HashMap::from([("type", vec!["container"])]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        Ok(docker.events(Some(options)).map(|item| match item {
            Ok(ev) => {
                let (id, mut attributes) = ev
                    .actor
                    .map(|a| (a.id.unwrap_or_default(), a.attributes.unwrap_or_default()))
                    .unwrap_or_default();
                Ok(ContainerEvent {
                    id,
                    action: ev.action.unwrap_or_default(),
                    name: attributes.remove("name").unwrap_or_default(),
                    attributes,
                })
            }
            Err(e) => Err(DockerError(e.to_string())),
        }))
    }
}
