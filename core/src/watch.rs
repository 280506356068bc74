//! Change signals for the agent's long-poll (`GET /api/agent/watch`). The watch never
//! carries state: it only says "something for you changed, beat now"; the beat reply
//! carries the state. So a lost or cut watch costs latency, never correctness.
//!
//! Cost per held watch: one parked handler future and one entry in tokio's shared timer
//! wheel (its deadline). No task, no interval per watch. Each node gets a counter and a
//! `Notify` lazily, on its first watch; fleet-wide events (a new definitions snapshot, a
//! routing generation bump) wake every held watch through one `Notify`, and each woken
//! handler recomputes its own node's desired version through the `DesiredCache` (O(1)
//! per node once computed), answering only if it changed.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// One node's change signal.
#[derive(Default)]
pub struct NodeSignal {
    counter: AtomicU64,
    notify: Notify,
    /// The node's desired NGINX version when last looked at (None: not yet looked).
    nginx: Mutex<Option<Option<u64>>>,
}

impl NodeSignal {
    pub fn counter(&self) -> u64 {
        self.counter.load(Ordering::Acquire)
    }

    pub fn notify(&self) -> &Notify {
        &self.notify
    }

    fn bump(&self) {
        self.counter.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    /// Records the node's current desired NGINX version; bumps the counter when it
    /// differs from the one seen before (the first look only records it).
    pub fn observe_nginx(&self, version: Option<u64>) {
        let mut seen = self.nginx.lock().unwrap_or_else(|p| p.into_inner());
        match *seen {
            Some(before) if before == version => {}
            Some(_) => {
                *seen = Some(version);
                drop(seen);
                self.bump();
            }
            None => *seen = Some(version),
        }
    }
}

/// Every node's change signal, plus the one fleet-wide wake-up.
pub struct Changes {
    boot: String,
    nodes: Mutex<HashMap<String, Arc<NodeSignal>>>,
    /// Woken when the definitions or the routing generation change: what that means for
    /// each node is for its own watch to work out.
    fleet: Notify,
    /// Watches held right now.
    held: AtomicUsize,
    /// When the fleet-wide wake-up last fired (ms since `epoch`), and whether a delayed
    /// one is scheduled: presence-driven wake-ups are throttled (see [`Changes::routing_moved`]).
    epoch: Instant,
    last_fleet_wake_ms: AtomicU64,
    fleet_wake_scheduled: AtomicBool,
}

/// Presence-driven fleet wake-ups fire at most this often: each wakes every held watch,
/// and each of those recomputes its node's desired version.
pub const FLEET_WAKE_EVERY: Duration = Duration::from_millis(250);

/// A held watch's place; given back when the handler ends (answered or dropped).
pub struct Held<'a>(&'a AtomicUsize);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            boot: uuid::Uuid::new_v4().simple().to_string(),
            nodes: Mutex::default(),
            fleet: Notify::new(),
            held: AtomicUsize::new(0),
            epoch: Instant::now(),
            last_fleet_wake_ms: AtomicU64::new(0),
            fleet_wake_scheduled: AtomicBool::new(false),
        }
    }
}

impl Changes {
    /// Takes a place for a held watch, unless `limit` are held already: a held watch
    /// keeps a connection busy, and watches must never crowd beats out of the listener.
    pub fn hold(&self, limit: usize) -> Option<Held<'_>> {
        let before = self.held.fetch_add(1, Ordering::AcqRel);
        let place = Held(&self.held);
        (before < limit).then_some(place)
    }

    /// This core process's boot ID.
    pub fn boot(&self) -> &str {
        &self.boot
    }

    /// The node's signal, created on first use.
    pub fn node(&self, node: &str) -> Arc<NodeSignal> {
        let mut map = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(node.to_string()).or_default().clone()
    }

    /// Something for this node changed (a log watch started or stopped, later a ban).
    /// Free when nobody ever watched the node.
    pub fn bump(&self, node: &str) {
        let signal = self
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .cloned();
        if let Some(s) = signal {
            s.bump();
        }
    }

    /// The definitions changed (a user's write): every held watch checks its node now.
    pub fn fleet_changed(&self) {
        self.wake_fleet();
    }

    /// A beat may have changed other nodes' routing (a node back online, a new NGINX
    /// report). Such beats can come by the hundred per second in a large fleet, so the
    /// wake-up fires at most once per [`FLEET_WAKE_EVERY`]: at once when the last one is
    /// older, else once at the end of that period (one shared timer, not one per watch).
    pub fn routing_moved(self: &Arc<Self>) {
        let since_last = self.now_ms() - self.last_fleet_wake_ms.load(Ordering::Acquire);
        let every = FLEET_WAKE_EVERY.as_millis() as u64;
        if since_last >= every {
            self.wake_fleet();
            return;
        }
        if self.fleet_wake_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(every - since_last)).await;
            me.fleet_wake_scheduled.store(false, Ordering::Release);
            me.wake_fleet();
        });
    }

    fn now_ms(&self) -> u64 {
        // Offset by one period so the first wake-up is never throttled.
        self.epoch.elapsed().as_millis() as u64 + FLEET_WAKE_EVERY.as_millis() as u64
    }

    fn wake_fleet(&self) {
        self.last_fleet_wake_ms
            .store(self.now_ms(), Ordering::Release);
        self.fleet.notify_waiters();
    }

    pub fn fleet(&self) -> &Notify {
        &self.fleet
    }

    pub fn forget(&self, node: &str) {
        let removed = self
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node);
        // Held watches of a deleted node answer (their next beat gets a 401).
        if let Some(s) = removed {
            s.bump();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_look_records_then_changes_bump() {
        let c = Changes::default();
        let s = c.node("n");
        s.observe_nginx(Some(1));
        assert_eq!(s.counter(), 0);
        s.observe_nginx(Some(1));
        assert_eq!(s.counter(), 0);
        s.observe_nginx(Some(2));
        assert_eq!(s.counter(), 1);
        c.bump("n");
        assert_eq!(s.counter(), 2);
        c.bump("unknown");
        assert_eq!(c.boot().len(), 32);
    }

    #[tokio::test]
    async fn presence_wake_ups_are_throttled_but_never_lost() {
        let c = Arc::new(Changes::default());
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = {
            let (c, woken) = (c.clone(), woken.clone());
            tokio::spawn(async move {
                loop {
                    c.fleet().notified().await;
                    woken.fetch_add(1, Ordering::AcqRel);
                }
            })
        };
        tokio::task::yield_now().await;
        c.routing_moved();
        tokio::task::yield_now().await;
        assert_eq!(woken.load(Ordering::Acquire), 1, "the first fires at once");
        for _ in 0..100 {
            c.routing_moved();
        }
        tokio::task::yield_now().await;
        assert_eq!(woken.load(Ordering::Acquire), 1, "a burst waits");
        tokio::time::sleep(FLEET_WAKE_EVERY + Duration::from_millis(100)).await;
        assert_eq!(woken.load(Ordering::Acquire), 2, "and fires once");
        counter.abort();
    }

    #[test]
    fn held_watches_are_bounded_and_given_back() {
        let c = Changes::default();
        let a = c.hold(2).expect("first");
        let b = c.hold(2).expect("second");
        assert!(c.hold(2).is_none(), "over the limit");
        drop(a);
        assert!(c.hold(2).is_some(), "a place was given back");
        drop(b);
        assert_eq!(c.held.load(Ordering::Acquire), 0);
    }
}
