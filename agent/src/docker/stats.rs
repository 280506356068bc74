//! Container listing for metrics: full IDs (cgroup paths are keyed by them), image, state
//! and status text. Per-second figures come from cgroup files (`metrics::containers`), not
//! from Docker's stats API, which takes one to two seconds per container per call.

use bollard::query_parameters::ListContainersOptionsBuilder;

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
    pub labels: std::collections::HashMap<String, String>,
}

impl DockerSource {
    /// Running containers, one list call (a few milliseconds).
    pub async fn list_for_metrics(&self) -> Result<Vec<ContainerMeta>, DockerError> {
        let docker = self.client().await?;
        let options = ListContainersOptionsBuilder::default().all(false).build();
        let list = match docker.list_containers(Some(options)).await {
            Ok(l) => l,
            Err(e) => {
                *self.client.lock().await = None;
                return Err(DockerError(e.to_string()));
            }
        };
        Ok(list
            .into_iter()
            .filter_map(|c| {
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
                })
            })
            .collect())
    }
}
