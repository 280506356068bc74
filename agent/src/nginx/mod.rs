//! Converges the node's NGINX to the desired state from the core.
//!
//! A new desired section is checked value by value with `capstan_proto::validate` (the
//! grammars the core applies to its input) before anything is rendered or written: one
//! invalid value refuses the whole section, the running config stays and the error goes
//! back in the next beat, like an `nginx -t` failure.
//!
//! `render.rs` turns the desired state plus resolved container addresses into config
//! text (pure), `apply.rs` stages it, validates it with `nginx -t`, swaps it in atomically
//! and reloads (rolling back on failure). This module holds what was asked and what is
//! running, and decides when to act: on a new desired state, on every beat when
//! container addresses changed, and at once when Docker says a targeted container is
//! stopping or started (`watch.rs`). Identical text never causes a reload, so changes
//! arriving together coalesce into at most one reload per beat.

pub mod apply;
pub mod render;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use capstan_proto::{ApplyError, NginxDesired, NginxReport, Versioned, Warning};

use crate::docker::{ContainerSource, DockerSource};
pub use apply::{Engine, NginxControl};
pub use render::Settings;
pub use watch::ContainerWatch;

pub struct NginxManager {
    settings: Settings,
    control: NginxControl,
    desired: Option<Versioned<NginxDesired>>,
    /// The last desired state that applied; after a rejected change the agent keeps
    /// following it (container moves) instead of retrying the rejected one every beat.
    good: Option<Versioned<NginxDesired>>,
    /// Version whose config is running.
    applied_version: u64,
    last_error: Option<ApplyError>,
    warnings: Vec<Warning>,
    reloads: u64,
    /// Files of the running generation, to skip identical renders.
    running: Option<BTreeMap<String, String>>,
    /// Docker's container events: stopping containers leave the targets at once.
    watch: Arc<ContainerWatch>,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for NginxManager {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
    }
}

impl NginxManager {
    pub fn new(settings: Settings, control: NginxControl) -> NginxManager {
        NginxManager {
            settings,
            control,
            desired: None,
            good: None,
            applied_version: 0,
            last_error: None,
            warnings: Vec::new(),
            reloads: 0,
            running: None,
            watch: Arc::default(),
            watcher: None,
        }
    }

    /// Starts following Docker's container events (for the manager's life).
    pub fn watch_containers(&mut self, docker: Arc<DockerSource>) {
        if self.watcher.is_none() {
            self.watcher = Some(tokio::spawn(watch::follow(docker, self.watch.clone())));
        }
    }

    /// Wakes the beat loop when a container event may change a target; the loop then
    /// calls [`NginxManager::on_container_events`].
    pub fn container_watch(&self) -> Arc<ContainerWatch> {
        self.watch.clone()
    }

    /// Reacts to container events: re-resolves and applies now when a container some
    /// service targets stopped or started (or events may have been missed).
    pub async fn on_container_events(&mut self, docker: &impl ContainerSource) {
        let (changed, resync) = self.watch.take();
        let Some(desired) = self.desired.as_ref() else {
            return;
        };
        let relevant = resync
            || changed
                .iter()
                .any(|(name, labels)| render::targets_container(&desired.state, name, labels));
        if !relevant {
            return;
        }
        if let Err(e) = self.reconcile(docker).await {
            tracing::debug!(error = %e, "reconcile after a container event failed");
        }
    }

    /// Brings up NGINX with the last good config after an agent or host restart, before
    /// the core is reachable, so traffic flows even while the core is down.
    pub async fn resume(&mut self) {
        match self.control.resume().await {
            Ok(Some(files)) => {
                tracing::info!("NGINX running with the last applied config");
                self.running = Some(files);
            }
            Ok(None) => {}
            Err(e) => tracing::error!("cannot start NGINX with the last applied config: {e}"),
        }
    }

    /// Where NGINX writes access.log and error.log (followed on demand).
    pub fn log_dir(&self) -> std::path::PathBuf {
        self.control.log_dir().to_path_buf()
    }

    pub fn applied_version(&self) -> u64 {
        self.applied_version
    }

    pub fn report(&self) -> NginxReport {
        NginxReport {
            address: self.settings.advertise_address.clone(),
            http_port: self.settings.http_port,
            https_port: self.settings.https_port,
            error: self.last_error.clone(),
            warnings: self.warnings.clone(),
            reloads: self.reloads,
        }
    }

    /// Takes a new desired state and converges to it now. `Err` carries why it was
    /// refused (an invalid value) or NGINX's message.
    pub async fn set_desired(
        &mut self,
        desired: Versioned<NginxDesired>,
        docker: &impl ContainerSource,
    ) -> Result<bool, String> {
        if let Err(invalid) = capstan_proto::validate::nginx_desired(&desired.state) {
            let message: String =
                format!("refused the desired state: {invalid}; the running config stays")
                    .chars()
                    .take(4000)
                    .collect();
            tracing::error!(version = format!("{:016x}", desired.version), "{message}");
            self.last_error = Some(ApplyError {
                version: desired.version,
                message: message.clone(),
            });
            return Err(message);
        }
        self.desired = Some(desired);
        self.reconcile(docker).await
    }

    /// Re-resolves container targets and applies when the rendered text changed.
    /// Returns whether NGINX was reloaded.
    pub async fn reconcile(&mut self, docker: &impl ContainerSource) -> Result<bool, String> {
        let Some(desired) = self.desired.clone() else {
            return Ok(false);
        };
        let containers = match docker.running().await {
            Ok(mut c) => {
                // Stopping containers are no target even while Docker still lists them.
                let now = Instant::now();
                c.retain(|c| !self.watch.is_going(&c.names, now));
                Some(c)
            }
            Err(e) => {
                // Without Docker, container targets cannot be resolved: keep the running
                // config rather than render every container target as missing.
                if self.running.is_some() && render::has_container_targets(&desired.state) {
                    self.warnings = vec![Warning::node(format!("{e}; keeping the running config"))];
                    return Ok(false);
                }
                self.warnings = vec![Warning::node(e.to_string())];
                None
            }
        };
        let rendered = render::render(
            &desired.state,
            desired.version,
            containers.as_deref().unwrap_or(&[]),
            &self.settings,
        )
        .map_err(|e| e.to_string())?;
        let mut warnings = rendered.warnings;
        if containers.is_none() {
            warnings.insert(0, Warning::node("Docker is unavailable"));
        }
        self.warnings = warnings;
        if self.running.as_ref() == Some(&rendered.files) {
            self.applied_version = desired.version;
            self.good = Some(desired.clone());
            if self
                .last_error
                .as_ref()
                .is_some_and(|e| e.version == desired.version)
            {
                self.last_error = None;
            }
            return Ok(false);
        }
        match self.control.apply(&rendered.files).await {
            Ok(()) => {
                self.reloads += 1;
                self.running = Some(rendered.files);
                self.applied_version = desired.version;
                self.last_error = None;
                self.good = Some(desired.clone());
                tracing::info!(
                    version = format!("{:016x}", desired.version),
                    services = desired.state.services.len(),
                    "NGINX config applied"
                );
                Ok(true)
            }
            Err(e) => {
                let message = e.to_string();
                tracing::error!(
                    version = format!("{:016x}", desired.version),
                    "NGINX config rejected, the previous one keeps serving: {message}"
                );
                self.last_error = Some(ApplyError {
                    version: desired.version,
                    message: message.clone(),
                });
                // Do not retry the rejected state every beat: a new desired state from
                // the core tries again; meanwhile keep following the one that works.
                self.desired = self.good.clone();
                Err(message)
            }
        }
    }
}
