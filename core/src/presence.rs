//! Node presence: what the last beat of each node said, held in memory.
//!
//! Beats arrive once a second per node; writing each to redb would be one fsync-bound
//! transaction per beat. Instead the flusher persists all changed entries in one
//! transaction every `presence_flush_secs`, and at once when a node's identity (hostname,
//! version, OS, applied config) changes. A kill -9 loses at most one interval of
//! "last seen"; identity changes are durable within one flush round-trip.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::store::{AgentRecord, PresenceUpdate};

#[derive(Default)]
pub struct Presence {
    entries: Mutex<HashMap<String, Entry>>,
    urgent: Notify,
    /// Bumped when a beat may change routing: a node's NGINX report changed, or it beat
    /// after a silence (possibly offline → online). Desired-state caches key on it.
    routing_generation: AtomicU64,
    /// Nodes whose last beat spoke a protocol this core does not (node ID → why). Such a
    /// beat records nothing else; the next accepted beat clears the entry.
    protocol_errors: Mutex<HashMap<String, String>>,
}

/// A beat after this long a silence may bring a node back online.
const SILENCE_MS: i64 = 1500;

struct Entry {
    update: PresenceUpdate,
    dirty: bool,
}

impl Presence {
    /// Seeds from the store so status and "last seen" are right straight after a restart.
    pub fn from_records(agents: &[AgentRecord]) -> Presence {
        let mut map = HashMap::new();
        for a in agents {
            if let (Some(last), Some(hostname)) = (a.last_seen_ms, &a.hostname) {
                map.insert(
                    a.id.clone(),
                    Entry {
                        update: PresenceUpdate {
                            last_seen_ms: last,
                            hostname: hostname.clone(),
                            version: a.version.clone().unwrap_or_default(),
                            os: a.os.clone().unwrap_or_default(),
                            uptime_secs: a.uptime_secs.unwrap_or(0),
                            interval_ms: a.interval_ms.unwrap_or(1000),
                            applied_config_version: a.applied_config_version,
                            nginx: a.nginx.clone(),
                        },
                        dirty: false,
                    },
                );
            }
        }
        Presence {
            entries: Mutex::new(map),
            urgent: Notify::new(),
            routing_generation: AtomicU64::new(0),
            protocol_errors: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (every
        // mutation is a single insert/remove), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers that a node beat in a protocol this core does not speak.
    pub fn set_protocol_error(&self, id: &str, message: String) {
        self.protocol_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), message);
    }

    /// Why the node's last beat was refused for its protocol, if it was.
    pub fn protocol_error(&self, id: &str) -> Option<String> {
        self.protocol_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn clear_protocol_error(&self, id: &str) {
        let mut errors = self
            .protocol_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !errors.is_empty() {
            errors.remove(id);
        }
    }

    /// Records a beat. Wakes the flusher at once when the node's identity changed.
    pub fn record(&self, id: &str, update: PresenceUpdate) {
        self.clear_protocol_error(id);
        let identity_changed = {
            let mut map = self.lock();
            let routing_changed = match map.get(id) {
                Some(e) => {
                    e.update.nginx != update.nginx
                        || e.update.interval_ms != update.interval_ms
                        || update.last_seen_ms - e.update.last_seen_ms > SILENCE_MS
                }
                None => true,
            };
            if routing_changed {
                self.routing_generation.fetch_add(1, Ordering::Relaxed);
            }
            let changed = match map.get(id) {
                Some(e) => {
                    e.update.hostname != update.hostname
                        || e.update.version != update.version
                        || e.update.os != update.os
                        || e.update.applied_config_version != update.applied_config_version
                        || e.update.nginx != update.nginx
                }
                None => true,
            };
            map.insert(
                id.to_string(),
                Entry {
                    update,
                    dirty: true,
                },
            );
            changed
        };
        if identity_changed {
            self.urgent.notify_one();
        }
    }

    pub fn get(&self, id: &str) -> Option<PresenceUpdate> {
        self.lock().get(id).map(|e| e.update.clone())
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
        self.clear_protocol_error(id);
        self.routing_generation.fetch_add(1, Ordering::Relaxed);
    }

    pub fn routing_generation(&self) -> u64 {
        self.routing_generation.load(Ordering::Relaxed)
    }

    /// Takes every changed entry, clearing its dirty mark.
    pub fn take_dirty(&self) -> Vec<(String, PresenceUpdate)> {
        let mut map = self.lock();
        map.iter_mut()
            .filter(|(_, e)| e.dirty)
            .map(|(id, e)| {
                e.dirty = false;
                (id.clone(), e.update.clone())
            })
            .collect()
    }

    /// Puts a batch back after a failed write, unless a newer beat already replaced it.
    pub fn restore_dirty(&self, batch: Vec<(String, PresenceUpdate)>) {
        let mut map = self.lock();
        for (id, update) in batch {
            if let Some(e) = map.get_mut(&id)
                && e.update == update
            {
                e.dirty = true;
            }
        }
    }

    /// Resolves when a beat changed some node's identity.
    pub async fn urgent(&self) {
        self.urgent.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(at: i64, version: &str) -> PresenceUpdate {
        PresenceUpdate {
            last_seen_ms: at,
            hostname: "h".into(),
            version: version.into(),
            os: "linux".into(),
            uptime_secs: 1,
            interval_ms: 1000,
            applied_config_version: 0,
            nginx: None,
        }
    }

    #[test]
    fn dirty_entries_are_taken_once_and_restored_only_if_unchanged() {
        let p = Presence::default();
        p.record("a", beat(1, "1"));
        p.record("b", beat(1, "1"));
        let batch = p.take_dirty();
        assert_eq!(batch.len(), 2);
        assert!(p.take_dirty().is_empty());
        p.record("a", beat(2, "1"));
        p.restore_dirty(batch);
        let again = p.take_dirty();
        assert_eq!(again.len(), 2, "b restored, a dirty from the newer beat");
        assert!(again.iter().any(|(id, u)| id == "a" && u.last_seen_ms == 2));
    }
}
