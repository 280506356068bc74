//! Which containers run, and their health and restart count, without asking Docker every
//! second: Docker's API calls cost the daemon CPU (the list call alone is most of what a
//! 1 Hz collector costs it).
//!
//! A background task follows Docker's container event stream. The list is re-read when
//! an event arrived since the last read, every [`RELIST`] anyway (the status text, "Up 3
//! minutes", ages), and every second while the event stream is down (Docker restarting
//! or absent), which is what the collector did before. A container is inspected (health,
//! restart count) when it first appears, after an event about it, and every
//! [`REINSPECT`]; a restart by policy emits `die`/`start`, a health change
//! `health_status`, so the cache follows both promptly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::docker::stats::{ContainerMeta, Inspected};
use crate::docker::{DockerError, DockerSource};

/// Longest a cached list is used while the event stream is up.
pub const RELIST: Duration = Duration::from_secs(10);
/// Longest a cached inspect result is used.
pub const REINSPECT: Duration = Duration::from_secs(30);
/// Wait before reconnecting a lost event stream.
const RECONNECT: Duration = Duration::from_secs(5);

/// What the event follower tells the collector.
#[derive(Default)]
struct Changes {
    /// The event stream is connected; without it every collection re-lists.
    following: bool,
    /// Something changed since the last list.
    dirty: bool,
    /// Containers with an event since they were last inspected.
    touched: HashSet<String>,
}

pub struct Inventory {
    docker: Arc<DockerSource>,
    changes: Arc<Mutex<Changes>>,
    follower: Option<tokio::task::JoinHandle<()>>,
    list: Vec<ContainerMeta>,
    listed_at: Option<Instant>,
    health: HashMap<String, (Instant, Inspected)>,
}

impl Drop for Inventory {
    fn drop(&mut self) {
        if let Some(f) = self.follower.take() {
            f.abort();
        }
    }
}

impl Inventory {
    pub fn new(docker: Arc<DockerSource>) -> Inventory {
        Inventory {
            docker,
            changes: Arc::default(),
            follower: None,
            list: Vec::new(),
            listed_at: None,
            health: HashMap::new(),
        }
    }

    /// The running containers with their health, re-reading only what may have changed.
    pub async fn current(&mut self) -> Result<Vec<(ContainerMeta, Inspected)>, DockerError> {
        if self.follower.is_none() {
            self.follower = Some(tokio::spawn(follow(
                self.docker.clone(),
                self.changes.clone(),
            )));
        }
        let now = Instant::now();
        let (relist, touched) = {
            let mut c = lock(&self.changes);
            let stale = self
                .listed_at
                .is_none_or(|at| now.duration_since(at) >= RELIST);
            let relist = !c.following || c.dirty || stale;
            c.dirty = false;
            (relist, std::mem::take(&mut c.touched))
        };
        if relist {
            match self.docker.list_for_metrics().await {
                Ok(list) => {
                    self.list = list;
                    self.listed_at = Some(now);
                }
                Err(e) => {
                    // Try again next second, and forget what may no longer run.
                    lock(&self.changes).dirty = true;
                    self.list.clear();
                    return Err(e);
                }
            }
        }
        let ids: HashSet<&str> = self.list.iter().map(|c| c.id.as_str()).collect();
        self.health.retain(|id, _| ids.contains(id.as_str()));
        let mut out = Vec::with_capacity(self.list.len());
        for c in &self.list {
            let fresh = self
                .health
                .get(&c.id)
                .filter(|(at, _)| !touched.contains(&c.id) && now.duration_since(*at) < REINSPECT);
            let health = match fresh {
                Some((_, h)) => h.clone(),
                None => match self.docker.inspect_for_metrics(&c.id).await {
                    Ok(h) => {
                        self.health.insert(c.id.clone(), (now, h.clone()));
                        h
                    }
                    Err(e) => {
                        // Gone between list and inspect, most likely: the next list
                        // drops it. Report it without health meanwhile.
                        tracing::debug!(container = %c.name, error = %e, "inspect failed");
                        lock(&self.changes).dirty = true;
                        Inspected::default()
                    }
                },
            };
            out.push((c.clone(), health));
        }
        Ok(out)
    }
}

fn lock(c: &Mutex<Changes>) -> std::sync::MutexGuard<'_, Changes> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

/// Follows Docker's container events for the life of the collector, reconnecting after
/// [`RECONNECT`] when the stream ends (dockerd restarted, not running yet).
async fn follow(docker: Arc<DockerSource>, changes: Arc<Mutex<Changes>>) {
    loop {
        match docker.container_events().await {
            Ok(mut events) => {
                {
                    // Events may have been missed while disconnected: re-list once.
                    let mut c = lock(&changes);
                    c.following = true;
                    c.dirty = true;
                }
                while let Some(event) = events.next().await {
                    match event {
                        Ok(ev) => {
                            // Health checks run as execs every interval; they change
                            // nothing the collector reports (`health_status` does).
                            if ev.action.starts_with("exec_") {
                                continue;
                            }
                            tracing::trace!(container = %ev.id, action = ev.action, "docker event");
                            let mut c = lock(&changes);
                            c.dirty = true;
                            c.touched.insert(ev.id);
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "docker event stream failed");
                            break;
                        }
                    }
                }
                lock(&changes).following = false;
            }
            Err(e) => tracing::debug!(error = %e, "docker events unavailable"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}
