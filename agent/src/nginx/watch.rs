//! Docker's container events, so NGINX drops a stopped container's address at once
//! rather than at the next beat. Docker hands a stopped container's IP to the next
//! container that starts on the network; a config still pointing there sends that
//! container another service's requests.
//!
//! A background task follows the event stream and records, per container name, that
//! it is going away (`kill` with a stopping signal, `die`, `stop`, `destroy`) or came
//! back (`start`), then wakes the beat loop, which re-renders at once. A container going
//! away is left out of the targets even while Docker still lists it: from `docker stop`'s
//! signal on, new requests go elsewhere, so the reload has settled long before the
//! address can be reused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::Notify;

use crate::docker::DockerSource;
use crate::docker::stats::ContainerEvent;

/// A container signalled to stop but not dead yet counts as going for this long; a
/// process that survives the signal (not a stop after all) is a target again after it.
const SIGNALLED_FOR: Duration = Duration::from_secs(15);
/// A stopped container's mark is kept this long (its `start` clears it sooner); by then
/// Docker's list has long stopped showing it.
const STOPPED_FOR: Duration = Duration::from_secs(60);
/// Events kept between two reactions; beyond, the next reaction re-renders regardless.
const CHANGED_CAP: usize = 1000;
/// Wait before reconnecting a lost event stream.
const RECONNECT: Duration = Duration::from_secs(2);

/// A container an event was about: its name and labels (as far as the event tells).
pub type Touched = (String, HashMap<String, String>);

/// What the event follower tells the NGINX manager.
#[derive(Default)]
pub struct ContainerWatch {
    notify: Notify,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Container name → until when it counts as going away.
    going: HashMap<String, Instant>,
    /// Containers with an event since the last reaction: (name, labels).
    changed: Vec<Touched>,
    /// The stream (re)connected: events may have been missed.
    resync: bool,
}

impl ContainerWatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves when something changed since the last [`ContainerWatch::take`].
    pub async fn changed(&self) {
        self.notify.notified().await;
    }

    /// Records one event; true when it may change a target.
    pub fn record(&self, ev: &ContainerEvent, now: Instant) -> bool {
        let going_for = match ev.action.as_str() {
            "kill" if ev.attributes.get("signal").is_some_and(|s| stops(s)) => Some(SIGNALLED_FOR),
            "die" | "stop" | "destroy" | "oom" => Some(STOPPED_FOR),
            "start" | "restart" | "rename" | "unpause" => None,
            _ => return false,
        };
        let mut st = self.lock();
        match going_for {
            Some(d) => {
                let until = now + d;
                let entry = st.going.entry(ev.name.clone()).or_insert(until);
                *entry = (*entry).max(until);
            }
            None => {
                st.going.remove(&ev.name);
                if let Some(old) = ev.attributes.get("oldName") {
                    st.going.remove(old.trim_start_matches('/'));
                }
            }
        }
        st.going.retain(|_, until| *until > now);
        if st.changed.len() >= CHANGED_CAP {
            // Nobody has reacted for a while (the agent is still registering): re-render
            // everything next time instead of keeping every event.
            st.changed.clear();
            st.resync = true;
        }
        st.changed.push((ev.name.clone(), ev.attributes.clone()));
        if let Some(old) = ev.attributes.get("oldName") {
            st.changed
                .push((old.trim_start_matches('/').to_string(), HashMap::new()));
        }
        true
    }

    /// Containers with an event since the last call (their names and labels, as far as
    /// the event tells), and whether events may have been missed.
    pub fn take(&self) -> (Vec<Touched>, bool) {
        let mut st = self.lock();
        (
            std::mem::take(&mut st.changed),
            std::mem::take(&mut st.resync),
        )
    }

    /// Whether a container (any of its names) is going away and must not be a target.
    pub fn is_going(&self, names: &[String], now: Instant) -> bool {
        let st = self.lock();
        names
            .iter()
            .any(|n| st.going.get(n).is_some_and(|until| *until > now))
    }

    fn wake(&self) {
        self.notify.notify_one();
    }
}

/// A `kill` signal that stops the container (Docker sends the stop signal, then KILL):
/// by number or name. Others (HUP, USR1: reloads) leave it running.
fn stops(signal: &str) -> bool {
    let s = signal.trim_start_matches("SIG");
    matches!(s, "2" | "3" | "9" | "15" | "INT" | "QUIT" | "KILL" | "TERM")
}

/// Follows Docker's container events for the agent's life, reconnecting when the
/// stream ends (dockerd restarted, not running yet).
pub async fn follow(docker: Arc<DockerSource>, watch: Arc<ContainerWatch>) {
    loop {
        match docker.container_events().await {
            Ok(events) => {
                watch.lock().resync = true;
                watch.wake();
                let mut events = std::pin::pin!(events);
                while let Some(event) = events.next().await {
                    match event {
                        Ok(ev) => {
                            if watch.record(&ev, Instant::now()) {
                                tracing::debug!(container = %ev.name, action = ev.action, "container event: re-resolving NGINX targets");
                                watch.wake();
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "docker event stream failed");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "docker events unavailable"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, name: &str, attrs: &[(&str, &str)]) -> ContainerEvent {
        ContainerEvent {
            id: "f00".into(),
            action: action.into(),
            name: name.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn stopping_marks_a_container_going_until_it_starts() {
        let w = ContainerWatch::default();
        let t0 = Instant::now();
        let a = vec!["a".to_string()];
        // A reload signal changes nothing.
        assert!(!w.record(&event("kill", "a", &[("signal", "1")]), t0));
        assert!(!w.record(&event("exec_start: sh", "a", &[]), t0));
        assert!(!w.is_going(&a, t0));
        // docker stop: the stop signal first, the address goes at once.
        assert!(w.record(&event("kill", "a", &[("signal", "15")]), t0));
        assert!(w.is_going(&a, t0));
        let (changed, _) = w.take();
        assert_eq!(changed[0].0, "a");
        assert!(w.take().0.is_empty());
        // A process that survives the signal is a target again later.
        assert!(!w.is_going(&a, t0 + SIGNALLED_FOR + Duration::from_secs(1)));
        // die keeps it going until it starts again.
        assert!(w.record(&event("die", "a", &[("exitCode", "137")]), t0));
        assert!(w.is_going(&a, t0 + SIGNALLED_FOR + Duration::from_secs(1)));
        assert!(w.record(&event("start", "a", &[]), t0));
        assert!(!w.is_going(&a, t0));
        // Renamed: both names are reported.
        assert!(w.record(&event("rename", "b", &[("oldName", "/a")]), t0));
        let names: Vec<String> = w.take().0.into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"a".to_string()) && names.contains(&"b".to_string()));
    }
}
