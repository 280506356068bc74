//! Controlling another container: run a command in it, signal it, start it. Used to drive
//! the NGINX router container in the Docker deployment (`nginx_container`).

use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use bollard::query_parameters::{KillContainerOptionsBuilder, StartContainerOptions};
use futures_util::StreamExt;

use super::{DockerError, DockerSource};

/// Output of a command run in a container.
pub struct ExecOutput {
    pub exit_code: i64,
    pub output: String,
}

impl DockerSource {
    /// Runs `cmd` in the container and waits for it (stdout and stderr merged).
    pub async fn exec(&self, container: &str, cmd: &[&str]) -> Result<ExecOutput, DockerError> {
        let docker = self.client().await?;
        let created = docker
            .create_exec(
                container,
                ExecConfig {
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| DockerError(format!("exec in {container}: {e}")))?;
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut stream, ..
        } = docker
            .start_exec(&created.id, None)
            .await
            .map_err(|e| DockerError(format!("exec in {container}: {e}")))?
        {
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => output.push_str(&String::from_utf8_lossy(&c.into_bytes())),
                    Err(e) => return Err(DockerError(format!("exec in {container}: {e}"))),
                }
            }
        }
        let inspect = docker
            .inspect_exec(&created.id)
            .await
            .map_err(|e| DockerError(format!("exec in {container}: {e}")))?;
        Ok(ExecOutput {
            exit_code: inspect.exit_code.unwrap_or(-1),
            output,
        })
    }

    pub async fn signal(&self, container: &str, signal: &str) -> Result<(), DockerError> {
        let docker = self.client().await?;
        docker
            .kill_container(
                container,
                Some(
                    KillContainerOptionsBuilder::default()
                        .signal(signal)
                        .build(),
                ),
            )
            .await
            .map_err(|e| DockerError(format!("signal {signal} to {container}: {e}")))
    }

    pub async fn is_running(&self, container: &str) -> Result<bool, DockerError> {
        let docker = self.client().await?;
        let info = docker
            .inspect_container(container, None)
            .await
            .map_err(|e| DockerError(format!("inspect {container}: {e}")))?;
        Ok(info.state.and_then(|s| s.running).unwrap_or(false))
    }

    pub async fn start(&self, container: &str) -> Result<(), DockerError> {
        let docker = self.client().await?;
        docker
            .start_container(container, None::<StartContainerOptions>)
            .await
            .map_err(|e| DockerError(format!("start {container}: {e}")))
    }
}
