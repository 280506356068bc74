//! The only module that talks to Docker (bollard), behind a small trait so the rest of the
//! agent (target resolution, rendering) is testable without a daemon. The real
//! implementation is the one wired in `main` and exercised by the end-to-end tests.

mod control;
mod logs;
pub mod stats;

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;

/// A running container as target resolution needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    /// Names without Docker's leading `/`.
    pub names: Vec<String>,
    pub labels: HashMap<String, String>,
    /// Addresses on the container's networks, sorted (stable rendering).
    pub ips: Vec<IpAddr>,
}

#[derive(Debug, thiserror::Error)]
#[error("docker: {0}")]
pub struct DockerError(pub String);

pub trait ContainerSource: Send + Sync {
    fn running(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<ContainerInfo>, DockerError>> + Send;
}

/// Docker through its Unix socket. Connecting is lazy and retried on every call, so an
/// agent started before dockerd (or on a host without Docker) keeps working.
pub struct DockerSource {
    socket: String,
    client: tokio::sync::Mutex<Option<Docker>>,
}

impl DockerSource {
    pub fn new(socket: &str) -> DockerSource {
        DockerSource {
            socket: socket.to_string(),
            client: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) async fn client(&self) -> Result<Docker, DockerError> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let docker = Docker::connect_with_unix(&self.socket, 10, bollard::API_DEFAULT_VERSION)
            .map_err(|e| DockerError(e.to_string()))?
            // Debian's engine speaks an older API than bollard's default.
            .negotiate_version()
            .await
            .map_err(|e| DockerError(e.to_string()))?;
        *guard = Some(docker.clone());
        Ok(docker)
    }
}

impl ContainerSource for DockerSource {
    async fn running(&self) -> Result<Vec<ContainerInfo>, DockerError> {
        Ok(self
            .list_running()
            .await?
            .into_iter()
            .map(|c| {
                let ips = container_ips(c.network_settings);
                ContainerInfo {
                    names: c
                        .names
                        .unwrap_or_default()
                        .into_iter()
                        .map(|n| n.trim_start_matches('/').to_string())
                        .collect(),
                    labels: c.labels.unwrap_or_default(),
                    ips,
                }
            })
            .collect())
    }
}

impl DockerSource {
    /// Running containers, one list call (a few milliseconds).
    pub(crate) async fn list_running(
        &self,
    ) -> Result<Vec<bollard::models::ContainerSummary>, DockerError> {
        let docker = self.client().await?;
        let options = ListContainersOptionsBuilder::default().all(false).build();
        match docker.list_containers(Some(options)).await {
            Ok(l) => Ok(l),
            Err(e) => {
                // Drop the client so the next call reconnects (dockerd restarted).
                *self.client.lock().await = None;
                Err(DockerError(e.to_string()))
            }
        }
    }
}

/// A listed container's addresses on its networks, sorted (IPv4 first).
pub(crate) fn container_ips(
    settings: Option<bollard::models::ContainerSummaryNetworkSettings>,
) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = settings
        .and_then(|n| n.networks)
        .map(|nets| {
            nets.values()
                .filter_map(|e| e.ip_address.as_deref())
                .filter_map(|ip| ip.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    ips.sort();
    ips
}
