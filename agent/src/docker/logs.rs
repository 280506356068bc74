//! Following a container's log stream (stdout and stderr, with Docker's timestamps).

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::{Stream, StreamExt};

use super::{DockerError, DockerSource};

/// One chunk of log output: `stdout` or `stderr`, and the raw bytes (one or more lines,
/// each prefixed with Docker's RFC 3339 timestamp).
pub type LogChunk = Result<(&'static str, Vec<u8>), DockerError>;

impl DockerSource {
    /// Follows `container`'s logs: the last `tail` lines, or those after `since` (Unix
    /// seconds; the caller drops the overlap within that second), then new ones as they
    /// are written. Ends when the container stops.
    pub async fn follow_logs(
        &self,
        container: &str,
        tail: u32,
        since: Option<i32>,
    ) -> Result<impl Stream<Item = LogChunk> + Send + 'static, DockerError> {
        let docker = self.client().await?;
        let mut options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(true);
        options = match since {
            Some(s) => options.since(s),
            None => options.tail(&tail.to_string()),
        };
        let stream = docker.logs(container, Some(options.build()));
        Ok(stream.map(|item| match item {
            Ok(LogOutput::StdErr { message }) => Ok(("stderr", message.to_vec())),
            Ok(LogOutput::StdOut { message })
            | Ok(LogOutput::Console { message })
            | Ok(LogOutput::StdIn { message }) => Ok(("stdout", message.to_vec())),
            Err(e) => Err(DockerError(e.to_string())),
        }))
    }
}
