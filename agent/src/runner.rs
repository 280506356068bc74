//! The beat loop: make sure we have credentials, beat, run what the reply asks, repeat.
//! It never returns: an unreachable core means backoff, a refused key means a long wait,
//! and each state change is logged once rather than every second. Metrics are not
//! collected here but by their own 1 Hz task (`metrics::Collector`), so backing off never
//! leaves a gap: beats only carry what the backlog holds.

use std::time::{Duration, Instant};

use capstan_proto::{
    AppliedVersions, HeartbeatRequest, NginxDesired, PROTOCOL_VERSION, RegisterRequest, Versioned,
};

use crate::backoff::Backoff;
use crate::client::{ClientError, CoreClient};
use crate::config::AgentConfig;
use crate::credentials::{self, Credentials};
use crate::docker::DockerSource;
use crate::host;
use crate::logs::LogFollowers;
use crate::metrics::{Backlog, Collector};
use crate::nginx::NginxManager;
use crate::tasks::Executor;

/// After the watch signals a change, wait this long before beating, so changes made
/// together are carried together.
const WAKE_SETTLE: Duration = Duration::from_millis(30);
/// Least time between the start of a beat and a beat woken by the watch.
const WOKEN_GAP: Duration = Duration::from_millis(100);

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
    client: std::sync::Arc<CoreClient>,
    logs: LogFollowers,
    executor: Executor,
    link: Link,
    backoff: Backoff,
    docker: DockerSource,
    nginx: Option<NginxManager>,
    /// Filled once a second by the collector task, drained by acknowledged beats.
    backlog: Backlog,
    /// Taken when `run` starts the collector.
    collector: Option<Collector>,
    facts: host::FactsCache,
}

impl Runner {
    pub fn new(config: AgentConfig, nginx: Option<NginxManager>) -> Result<Runner, ClientError> {
        let client = std::sync::Arc::new(CoreClient::new(&config)?);
        let logs = LogFollowers::new(
            &config.docker_socket,
            nginx.as_ref().map(NginxManager::log_dir),
        );
        let docker = DockerSource::new(&config.docker_socket);
        let collector = Collector::new(
            &config.host_root,
            std::sync::Arc::new(DockerSource::new(&config.docker_socket)),
        )
        .map_err(|e| ClientError::Setup(e.to_string()))?;
        let facts = host::FactsCache::new(&config.host_root);
        let backoff = Backoff::new(
            config.interval(),
            Duration::from_millis(config.backoff_max_ms),
        );
        Ok(Runner {
            config,
            client,
            logs,
            executor: Executor::default(),
            link: Link::Starting,
            backoff,
            docker,
            nginx,
            backlog: Backlog::default(),
            collector: Some(collector),
            facts,
        })
    }

    pub async fn run(mut self) {
        if let Some(n) = self.nginx.as_mut() {
            n.resume().await;
            n.watch_containers(std::sync::Arc::new(DockerSource::new(
                &self.config.docker_socket,
            )));
        }
        // Metrics are collected from the start, registered or not, reachable or not.
        let _collector = self.collector.take().map(|c| {
            let backlog = self.backlog.clone();
            AbortOnDrop(tokio::spawn(c.run(backlog)))
        });
        let creds = self.credentials().await;
        self.logs.start_uploader(self.client.clone(), creds.clone());
        tracing::info!(agent.id = %creds.id, core = %self.config.core_url, "beating");
        // The long-poll beside the beat: a change wakes the loop below at once.
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        let _watch = (self.config.watch_timeout_secs > 0).then(|| {
            AbortOnDrop(tokio::spawn(crate::watch::run(
                self.client.clone(),
                creds.clone(),
                Duration::from_secs(self.config.watch_timeout_secs),
                wake.clone(),
            )))
        });
        let mut next = Instant::now();
        let mut last: Option<Instant> = None;
        loop {
            // Container events are handled while waiting, whichever way the wait ends.
            let woken = self
                .with_container_events(async {
                    tokio::select! {
                        _ = tokio::time::sleep_until(next.into()) => false,
                        _ = wake.notified() => true,
                    }
                })
                .await;
            if woken {
                // A burst of changes (several PUTs in a row) lands in one beat, and woken
                // beats stay apart: each may reload NGINX.
                let mut at = Instant::now() + WAKE_SETTLE;
                if let Some(l) = last {
                    at = at.max(l + WOKEN_GAP);
                }
                self.with_container_events(tokio::time::sleep_until(at.into()))
                    .await;
            }
            let started = Instant::now();
            last = Some(started);
            let wait = self.beat(&creds).await;
            // Beats are paced from their start so the period stays at the interval.
            next = started + wait;
        }
    }

    /// One beat; returns how long to wait before the next.
    async fn beat(&mut self, creds: &Credentials) -> Duration {
        let facts = self.facts.read();
        let results = self.executor.pending_results();
        let metrics = self.backlog.report();
        let request = HeartbeatRequest {
            protocol: PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            hostname: facts.hostname,
            os: facts.os,
            uptime_secs: facts.uptime_secs,
            interval_ms: self.config.heartbeat_interval_ms,
            applied: AppliedVersions {
                nginx: self.nginx.as_ref().map_or(0, |n| n.applied_version()),
            },
            task_results: results.clone(),
            nginx: self.nginx.as_ref().map(NginxManager::report),
            metrics: (!metrics.samples.is_empty()).then_some(metrics),
        };
        let client = self.client.clone();
        let outcome = self
            .with_container_events(client.heartbeat(creds, &request))
            .await;
        match outcome {
            Ok(reply) => {
                self.set_link(Link::Connected, "connected to the core");
                self.backoff.reset();
                self.executor.acknowledge(&results);
                self.backlog.acknowledge(reply.metrics);
                for req in &reply.desired.logs {
                    // Same grammar as the core's: a source never reaches a path or the
                    // Docker API unchecked.
                    match capstan_proto::validate::log_source("source", &req.source) {
                        Ok(()) => self.logs.request(req),
                        Err(e) => tracing::warn!("ignoring a log request: {e}"),
                    }
                }
                self.logs.sweep();
                self.executor.run(&reply.tasks);
                let updated = self.update_nginx(reply.desired.nginx).await;
                if !updated && let Some(n) = self.nginx.as_mut() {
                    // Containers restart, move and change IP: follow them every beat.
                    if let Err(e) = n.reconcile(&self.docker).await {
                        tracing::debug!(error = %e, "reconcile failed");
                    }
                }
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
                        "{e}; retrying every {} ms or less for the first {} s, then backing off up to {} ms",
                        crate::backoff::SHORT_CEILING.as_millis(),
                        crate::backoff::SHORT_OUTAGE.as_secs(),
                        self.config.backoff_max_ms
                    ),
                );
                tracing::debug!(error = %e, wait_ms = wait.as_millis() as u64, "beat failed");
                wait
            }
        }
    }

    /// Runs `work` (the pause between beats, a beat's request) while reacting to
    /// container events, so NGINX drops a stopping container's address at once instead
    /// of at the next beat.
    async fn with_container_events<T>(&mut self, work: impl std::future::Future<Output = T>) -> T {
        let Some(watch) = self.nginx.as_ref().map(NginxManager::container_watch) else {
            return work.await;
        };
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                () = watch.changed() => {
                    if let Some(n) = self.nginx.as_mut() {
                        n.on_container_events(&self.docker).await;
                    }
                }
            }
        }
    }

    /// Converges NGINX to a new desired section, when the reply carries one. Not
    /// deduplicated by version: going back to an earlier state (A → B → A) must apply A
    /// again, and applying the state already running renders the same text and does
    /// nothing. The outcome (applied, refused, rejected by `nginx -t`) travels in the
    /// next beat's NGINX report.
    async fn update_nginx(&mut self, section: Option<Versioned<NginxDesired>>) -> bool {
        let Some(section) = section else {
            return false;
        };
        let Some(nginx) = self.nginx.as_mut() else {
            tracing::debug!("the core sent an NGINX section, but this agent does not manage NGINX");
            return true;
        };
        // Errors are logged and reported by the manager.
        let _ = nginx.set_desired(section, &self.docker).await;
        true
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

/// Stops a background task when its owner goes (the runner's future is dropped on
/// shutdown).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
