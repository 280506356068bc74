//! The beat loop: make sure we have credentials, beat, run what the reply asks, repeat.
//! It never returns: an unreachable core means backoff, a refused key means a long wait,
//! and each state change is logged once rather than every second.

use std::time::{Duration, Instant};

use capstan_proto::{HeartbeatRequest, PROTOCOL_VERSION, RegisterRequest};

use crate::backoff::Backoff;
use crate::client::{ClientError, CoreClient};
use crate::config::AgentConfig;
use crate::credentials::{self, Credentials};
use crate::host;
use crate::tasks::Executor;

/// Connection state, tracked only so that each transition is logged once.
#[derive(Debug, Clone, PartialEq)]
enum Link {
    Starting,
    Connected,
    Unreachable,
    Refused,
}

pub struct Runner {
    config: AgentConfig,
    client: CoreClient,
    executor: Executor,
    link: Link,
    backoff: Backoff,
    applied_config_version: u64,
}

impl Runner {
    pub fn new(config: AgentConfig) -> Result<Runner, ClientError> {
        let client = CoreClient::new(&config)?;
        let backoff = Backoff::new(
            config.interval(),
            Duration::from_millis(config.backoff_max_ms),
        );
        Ok(Runner {
            config,
            client,
            executor: Executor::default(),
            link: Link::Starting,
            backoff,
            applied_config_version: 0,
        })
    }

    pub async fn run(mut self) {
        let creds = self.credentials().await;
        tracing::info!(agent.id = %creds.id, core = %self.config.core_url, "beating");
        let mut next = Instant::now();
        loop {
            tokio::time::sleep_until(next.into()).await;
            let started = Instant::now();
            let wait = self.beat(&creds).await;
            // Beats are paced from their start so the period stays at the interval.
            next = started + wait;
        }
    }

    /// One beat; returns how long to wait before the next.
    async fn beat(&mut self, creds: &Credentials) -> Duration {
        let facts = host::read(&self.config.host_root);
        let results = self.executor.pending_results();
        let request = HeartbeatRequest {
            protocol: PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            hostname: facts.hostname,
            os: facts.os,
            uptime_secs: facts.uptime_secs,
            interval_ms: self.config.heartbeat_interval_ms,
            applied_config_version: self.applied_config_version,
            task_results: results.clone(),
        };
        match self.client.heartbeat(creds, &request).await {
            Ok(reply) => {
                self.set_link(Link::Connected, "connected to the core");
                self.backoff.reset();
                self.executor.acknowledge(&results);
                self.executor.run(&reply.tasks);
                // No module ships desired config yet: acknowledging the version is the
                // whole of applying it. Modules that do hook in here.
                self.applied_config_version = reply.desired_config_version;
                self.config.interval()
            }
            Err(ClientError::Unauthorized { code, message }) => {
                self.set_link(
                    Link::Refused,
                    &format!(
                        "the core refused this node's ID/key ({code}: {message}); the node may have been deleted or its key rotated. Set AGENT_ID/AGENT_KEY from the UI. Retrying every {} s",
                        self.config.auth_retry_secs
                    ),
                );
                Duration::from_secs(self.config.auth_retry_secs)
            }
            Err(e) => {
                let wait = self.backoff.next_delay();
                self.set_link(
                    Link::Unreachable,
                    &format!(
                        "{e}; retrying with backoff (up to {} ms)",
                        self.config.backoff_max_ms
                    ),
                );
                tracing::debug!(error = %e, wait_ms = wait.as_millis() as u64, "beat failed");
                wait
            }
        }
    }

    fn set_link(&mut self, link: Link, message: &str) {
        if self.link == link {
            return;
        }
        match link {
            Link::Connected => tracing::info!("{message}"),
            Link::Unreachable => tracing::warn!("{message}"),
            Link::Refused => tracing::error!("{message}"),
            Link::Starting => {}
        }
        self.link = link;
    }

    /// ID/key from config, else saved, else register with the join token (retrying until
    /// it works; a bad token waits `auth_retry_secs` between attempts).
    async fn credentials(&mut self) -> Credentials {
        if !self.config.agent_id.is_empty() {
            return Credentials {
                id: self.config.agent_id.clone(),
                key: self.config.agent_key.clone(),
            };
        }
        loop {
            match credentials::load(&self.config.state_dir) {
                Ok(Some(c)) => return c,
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(path = %credentials::path(&self.config.state_dir).display(), error = %e, "cannot read saved credentials");
                }
            }
            let facts = host::read(&self.config.host_root);
            let name = if self.config.name.is_empty() {
                facts
                    .hostname
                    .split('.')
                    .next()
                    .unwrap_or("node")
                    .to_string()
            } else {
                self.config.name.clone()
            };
            let request = RegisterRequest {
                join_token: self.config.join_token.clone(),
                name: name.clone(),
                hostname: facts.hostname,
            };
            let wait = match self.client.register(&request).await {
                Ok(reply) => {
                    let creds = Credentials {
                        id: reply.id,
                        key: reply.key,
                    };
                    match credentials::save(&self.config.state_dir, &creds) {
                        Ok(()) => {
                            tracing::info!(agent.id = %creds.id, node = %name, "registered with the join token; credentials saved");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "registered, but saving credentials failed; they live in memory only until restart");
                        }
                    }
                    return creds;
                }
                Err(ClientError::Unauthorized { message, .. }) => {
                    tracing::error!(
                        "join token refused: {message}. Create a new one in the UI. Retrying in {} s",
                        self.config.auth_retry_secs
                    );
                    Duration::from_secs(self.config.auth_retry_secs)
                }
                Err(ClientError::Rejected { message, .. }) => {
                    tracing::error!(
                        "registration rejected: {message}. Retrying in {} s",
                        self.config.auth_retry_secs
                    );
                    Duration::from_secs(self.config.auth_retry_secs)
                }
                Err(e) => {
                    let wait = self.backoff.next_delay();
                    self.set_link(
                        Link::Unreachable,
                        &format!("{e}; retrying registration with backoff"),
                    );
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}
