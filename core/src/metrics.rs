//! Metrics ingest: beats hand their samples here; a flusher writes everything buffered in
//! one redb transaction per tick for all nodes (never one per beat; see
//! `store/metrics_writer.rs`), and keeps the newest sample per node in memory for live
//! views (containers table).
//!
//! Series keys are `<node>/h/<name>` for the host, `<node>/c/<container>/<name>` for
//! containers (by name, so a re-created container keeps its history) and
//! `<node>/v/<vm>/<name>` for VMs. Container and VM series that have seen no point for
//! [`CONTAINER_TTL_S`] are deleted.
//!
//! Timestamps are the agent's. When its clock is off by more than [`SKEW_TOLERANCE_S`]
//! (the newest sample of a beat was taken just now by definition) the whole report is
//! shifted onto the core's clock, so a skewed node neither writes into the future nor
//! lands in the wrong slots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_proto::{MetricsReport, MetricsSample};

use crate::AppState;
use crate::error::ApiError;
use crate::store::metrics_ring::{OpenBucket, OpenBuckets};
use crate::store::metrics_writer::{RingWriter, Sample};
use crate::store::{Store, StoreError};

/// Container series expire this long after their last point (removed containers).
pub const CONTAINER_TTL_S: u64 = 24 * 3600;
/// Agent clock offsets up to this are taken as they are.
pub const SKEW_TOLERANCE_S: u64 = 5;
/// Samples buffered at most; beyond it (a store that cannot keep up) the oldest go.
pub const MAX_PENDING: usize = 100_000;
/// Values buffered at most (24 bytes each: an interned key and the value), whatever the
/// samples carry: ≈ 100 MB at worst, ~28 s of 1,000 nodes × 140 series.
pub const MAX_PENDING_VALUES: usize = 4_000_000;
pub use capstan_proto::metric_limits::*;

/// Freed memory goes back to the kernel this often (seconds).
const TRIM_EVERY_S: u64 = 10;

/// The newest sample of a node, as received (after clock correction).
pub type Latest = MetricsSample;

pub struct MetricsHub {
    pending: Mutex<Pending>,
    /// Each node's series keys, interned: a beat looks its keys up instead of formatting
    /// 140 strings. Bounded per node ([`NodeKeys::MAX`]).
    keys: Mutex<HashMap<String, NodeKeys>>,
    latest: Mutex<HashMap<String, Latest>>,
    /// Only the flusher (and expiry, on the same task) locks it.
    writer: Arc<Mutex<RingWriter>>,
    /// The writer's open buckets, folded into reads of tiers 1–3.
    open: Mutex<Arc<Mutex<OpenBuckets>>>,
    /// Per node: the newest agent beat whose samples are all written.
    committed: Mutex<HashMap<String, u64>>,
    /// Changes on every start, so agents know to resend what they sent before; and when
    /// buffered samples had to be dropped, for the same reason.
    boot: std::sync::atomic::AtomicU64,
    /// The writer must be reloaded from the file before its next write.
    stale: std::sync::atomic::AtomicBool,
    /// Series per node at most (`max_series_per_node`).
    budget: usize,
    /// Each node's live series and what its budget dropped, published by the writer.
    usage: crate::store::metrics_writer::Usage,
}

/// Samples waiting for the next flush and how many values they hold.
#[derive(Default)]
struct Pending {
    samples: std::collections::VecDeque<Sample>,
    values: usize,
}

/// One node's interned series keys, looked up by the parts a beat carries (no key is
/// formatted to find it). Cleared when it passes [`NodeKeys::MAX`] names (a node whose
/// containers keep changing names): keys are then interned again as they come.
/// Series name → interned key.
type Names = HashMap<Box<str>, Arc<str>>;

#[derive(Default)]
struct NodeKeys {
    node: Option<Arc<str>>,
    host: Names,
    /// Container (index 0) or VM (index 1) name → its series' keys.
    groups: [HashMap<Box<str>, Names>; 2],
    len: usize,
}

impl NodeKeys {
    /// Names kept per node at most: well above what one beat can carry.
    const MAX: usize = 20_000;

    fn node(&mut self, node: &str) -> Arc<str> {
        self.node.get_or_insert_with(|| Arc::from(node)).clone()
    }

    fn host(&mut self, node: &str, name: &str) -> Arc<str> {
        if let Some(k) = self.host.get(name) {
            return k.clone();
        }
        self.len += 1;
        let k: Arc<str> = Arc::from(host_key(node, name));
        self.host.insert(name.into(), k.clone());
        k
    }

    fn group(&mut self, kind: usize, node: &str, group: &str, name: &str) -> Arc<str> {
        if let Some(k) = self.groups[kind]
            .get(group)
            .and_then(|names| names.get(name))
        {
            return k.clone();
        }
        self.len += 1;
        let k: Arc<str> = Arc::from(match kind {
            0 => container_key(node, group, name),
            _ => vm_key(node, group, name),
        });
        let names = match self.groups[kind].get_mut(group) {
            Some(names) => names,
            None => self.groups[kind].entry(group.into()).or_default(),
        };
        names.insert(name.into(), k.clone());
        k
    }
}

/// A run identifier for agents (53 bits: exact as a JSON number).
fn new_boot() -> u64 {
    rand::random::<u64>() >> 11
}

/// The core's clock in Unix seconds.
pub fn now_s() -> u64 {
    u64::try_from(crate::clock::now_ms() / 1000).unwrap_or(0)
}

pub fn host_key(node: &str, name: &str) -> String {
    format!("{node}/h/{name}")
}

pub fn container_key(node: &str, container: &str, name: &str) -> String {
    format!("{node}/c/{container}/{name}")
}

pub fn vm_key(node: &str, vm: &str, name: &str) -> String {
    format!("{node}/v/{vm}/{name}")
}

fn series_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 160
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
}

fn container_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Checks a beat's report; the error names the first field at fault.
pub fn validate(report: &MetricsReport) -> Result<(), ApiError> {
    if report.samples.len() > MAX_SAMPLES {
        return Err(ApiError::invalid(
            "metrics.samples",
            format!("at most {MAX_SAMPLES} samples per beat"),
        ));
    }
    for (i, s) in report.samples.iter().enumerate() {
        if s.host.len() > MAX_HOST_SERIES {
            return Err(ApiError::invalid(
                &format!("metrics.samples[{i}].host"),
                format!("at most {MAX_HOST_SERIES} series"),
            ));
        }
        if let Some(bad) = s.host.keys().find(|k| !series_name_ok(k)) {
            return Err(ApiError::invalid(
                &format!("metrics.samples[{i}].host"),
                format!("bad series name {bad:?}"),
            ));
        }
        if s.containers.len() > MAX_CONTAINERS {
            return Err(ApiError::invalid(
                &format!("metrics.samples[{i}].containers"),
                format!("at most {MAX_CONTAINERS} containers"),
            ));
        }
        for (j, c) in s.containers.iter().enumerate() {
            let field = format!("metrics.samples[{i}].containers[{j}]");
            if !container_name_ok(&c.name) {
                return Err(ApiError::invalid(
                    &format!("{field}.name"),
                    "must be a Docker container name",
                ));
            }
            if c.values.len() > MAX_CONTAINER_SERIES || c.values.keys().any(|k| !series_name_ok(k))
            {
                return Err(ApiError::invalid(
                    &format!("{field}.values"),
                    format!(
                        "at most {MAX_CONTAINER_SERIES} series with names of [A-Za-z0-9._-/:@]"
                    ),
                ));
            }
            for (name, text, max) in [
                ("id", &c.id, 64),
                ("image", &c.image, 256),
                ("state", &c.state, 32),
                ("status", &c.status, 128),
                ("health", &c.health, 32),
            ] {
                crate::validate::display_text(&format!("{field}.{name}"), text, max)?;
            }
            if let Some(custom) = &c.custom {
                crate::validate::display_text(&format!("{field}.custom.url"), &custom.url, 512)?;
                crate::validate::display_text(
                    &format!("{field}.custom.error"),
                    &custom.error,
                    512,
                )?;
            }
        }
        if s.vms.len() > MAX_VMS {
            return Err(ApiError::invalid(
                &format!("metrics.samples[{i}].vms"),
                format!("at most {MAX_VMS} VMs"),
            ));
        }
        for (j, vm) in s.vms.iter().enumerate() {
            let field = format!("metrics.samples[{i}].vms[{j}]");
            if !container_name_ok(&vm.name) {
                return Err(ApiError::invalid(
                    &format!("{field}.name"),
                    "must be 1-128 characters of [A-Za-z0-9._-]",
                ));
            }
            if vm.values.len() > MAX_VM_SERIES || vm.values.keys().any(|k| !series_name_ok(k)) {
                return Err(ApiError::invalid(
                    &format!("{field}.values"),
                    format!("at most {MAX_VM_SERIES} series with names of [A-Za-z0-9._-/:@]"),
                ));
            }
            for (name, text, max) in [("source", &vm.source, 32), ("state", &vm.state, 32)] {
                crate::validate::display_text(&format!("{field}.{name}"), text, max)?;
            }
        }
    }
    Ok(())
}

/// Shifts a report's timestamps onto the core's clock when the agent's is off.
pub fn correct_skew(report: &mut MetricsReport, now_s: u64) {
    let Some(newest) = report.samples.iter().map(|s| s.t).max() else {
        return;
    };
    if newest.abs_diff(now_s) <= SKEW_TOLERANCE_S {
        return;
    }
    for s in &mut report.samples {
        s.t = if newest > now_s {
            s.t.saturating_sub(newest - now_s)
        } else {
            s.t + (now_s - newest)
        };
    }
}

impl MetricsHub {
    /// Loads the write path (replaying what the last run committed but did not fold),
    /// holding each node to `budget` series.
    pub fn load(store: &Store, budget: usize) -> Result<MetricsHub, StoreError> {
        let usage = crate::store::metrics_writer::Usage::default();
        let writer = RingWriter::load(store, now_s())?.with_budget(budget, usage.clone());
        Ok(MetricsHub {
            budget,
            usage,
            committed: Mutex::new(HashMap::new()),
            boot: std::sync::atomic::AtomicU64::new(new_boot()),
            stale: std::sync::atomic::AtomicBool::new(false),
            pending: Mutex::new(Pending::default()),
            keys: Mutex::new(HashMap::new()),
            latest: Mutex::new(HashMap::new()),
            open: Mutex::new(writer.open()),
            writer: Arc::new(Mutex::new(writer)),
        })
    }

    /// Buffers a validated report of `node` for the next flush.
    pub fn ingest(&self, node: &str, mut report: MetricsReport, now_s: u64) {
        correct_skew(&mut report, now_s);
        let mut samples = Vec::with_capacity(report.samples.len());
        let mut n_values = 0;
        {
            let mut all = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            let keys = match all.get_mut(node) {
                Some(k) => k,
                None => all.entry(node.to_string()).or_default(),
            };
            if keys.len > NodeKeys::MAX {
                *keys = NodeKeys::default();
            }
            let node_arc = keys.node(node);
            for s in &report.samples {
                let mut values = Vec::with_capacity(
                    s.host.len()
                        + s.containers.iter().map(|c| c.values.len()).sum::<usize>()
                        + s.vms.iter().map(|v| v.values.len()).sum::<usize>(),
                );
                for (name, v) in &s.host {
                    values.push((keys.host(node, name), *v));
                }
                for c in &s.containers {
                    for (name, v) in &c.values {
                        values.push((keys.group(0, node, &c.name, name), *v));
                    }
                }
                for vm in &s.vms {
                    for (name, v) in &vm.values {
                        values.push((keys.group(1, node, &vm.name, name), *v));
                    }
                }
                n_values += values.len();
                samples.push(Sample {
                    node: node_arc.clone(),
                    t: s.t,
                    values,
                    beat: report.beat,
                });
            }
        }
        if let Some(newest) = report.samples.into_iter().max_by_key(|s| s.t) {
            let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
            match latest.get_mut(node) {
                Some(l) if l.t <= newest.t => *l = newest,
                Some(_) => {}
                None => {
                    latest.insert(node.to_string(), newest);
                }
            }
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.samples.extend(samples);
        pending.values += n_values;
        let mut excess = 0;
        while pending.samples.len() > MAX_PENDING || pending.values > MAX_PENDING_VALUES {
            let Some(old) = pending.samples.pop_front() else {
                break;
            };
            pending.values -= old.values.len();
            excess += 1;
        }
        if excess > 0 {
            // Beats already answered lost samples: a new boot makes every agent send
            // again what is not confirmed written.
            self.boot
                .store(new_boot(), std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(dropped = excess, "metrics buffer full; agents will resend");
        }
    }

    /// The open (not yet folded) buckets of one series, for readers of tiers 1–3.
    pub fn open_buckets(&self, id: u32) -> Vec<OpenBucket> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner()).clone();
        crate::store::metrics_writer::open_of(&open, id)
    }

    /// What the node's agent needs to know to keep or resend its samples, and how its
    /// series stand against the budget.
    pub fn ack(&self, node: &str) -> capstan_proto::MetricsAck {
        let committed = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        let usage = self.usage(node);
        capstan_proto::MetricsAck {
            boot: self.boot.load(std::sync::atomic::Ordering::Relaxed),
            committed_beat: committed.get(node).copied().unwrap_or(0),
            series: usage.series,
            series_budget: self.budget as u64,
            series_dropped: usage.dropped,
        }
    }

    /// The node's live series and what its budget dropped in its latest flush.
    pub fn usage(&self, node: &str) -> crate::store::metrics_writer::SeriesUsage {
        self.usage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .copied()
            .unwrap_or_default()
    }

    /// Series per node at most.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// A batch is on disk: every beat that carried part of it is complete, since beats
    /// are buffered whole and in order.
    fn committed(&self, batch: &[Sample]) {
        let mut committed = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        for s in batch {
            match committed.get_mut(&*s.node) {
                Some(c) => *c = (*c).max(s.beat),
                None => {
                    committed.insert(s.node.to_string(), s.beat);
                }
            }
        }
    }

    /// The newest sample of a node, if it sent one since the core started.
    pub fn latest(&self, node: &str) -> Option<Latest> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .cloned()
    }

    pub fn take(&self) -> Vec<Sample> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        taken.samples.into()
    }

    /// Puts back a batch whose write failed, ahead of what arrived since (the bounds
    /// apply at the next beat).
    pub fn restore(&self, batch: Vec<Sample>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.values += batch.iter().map(|s| s.values.len()).sum::<usize>();
        for s in batch.into_iter().rev() {
            pending.samples.push_front(s);
        }
    }

    /// Values buffered for the next flush.
    pub fn pending_values(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values
    }

    /// Forgets a deleted node's live sample and interned keys.
    pub fn forget(&self, node: &str) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node);
        self.committed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node);
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node);
    }
}

/// Writes what the hub buffered, one transaction per tick; on shutdown, once more.
pub async fn flush_loop(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(state.config.metrics_flush_secs));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_expiry = 0u64;
    let mut last_trim = 0u64;
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            _ = stop.changed() => true,
        };
        flush_once(&state).await;
        let now = now_s();
        if now >= last_trim + TRIM_EVERY_S {
            last_trim = now;
            // What the flush freed goes back to the kernel (see `memory.rs`).
            let _ = tokio::task::spawn_blocking(crate::memory::trim).await;
        }
        if now >= last_expiry + 600 {
            last_expiry = now;
            expire(&state, now).await;
        }
        if stopping {
            break;
        }
    }
}

/// One flush: everything buffered, one write transaction.
pub async fn flush_once(state: &AppState) {
    let batch = state.metrics.take();
    if batch.is_empty() {
        return;
    }
    let now = now_s();
    let store = state.store.clone();
    let hub = state.metrics.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut writer = hub.writer.lock().unwrap_or_else(|e| e.into_inner());
        // A failed write whose reload failed too (the store could not read: disk full,
        // reopen pending) left the writer ahead of the file: reload before writing again.
        if hub.stale.load(std::sync::atomic::Ordering::Acquire) {
            let fresh =
                RingWriter::load(&store, now).map(|w| w.with_budget(hub.budget, hub.usage.clone()));
            store.note(&fresh);
            match fresh {
                Ok(fresh) => {
                    *hub.open.lock().unwrap_or_else(|p| p.into_inner()) = fresh.open();
                    *writer = fresh;
                    hub.stale.store(false, std::sync::atomic::Ordering::Release);
                }
                Err(e) => return Err((e, batch)),
            }
        }
        let written = writer.write(&store, &batch, now);
        store.note(&written);
        match written {
            Ok(stats) => {
                hub.committed(&batch);
                Ok(stats)
            }
            Err(e) => {
                // The writer's memory may be ahead of the file: start again from the file.
                match RingWriter::load(&store, now) {
                    Ok(fresh) => {
                        let fresh = fresh.with_budget(hub.budget, hub.usage.clone());
                        *hub.open.lock().unwrap_or_else(|p| p.into_inner()) = fresh.open();
                        *writer = fresh;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "reloading the metrics writer failed; retried before the next write");
                        hub.stale.store(true, std::sync::atomic::Ordering::Release);
                    }
                }
                Err((e, batch))
            }
        }
    })
    .await;
    match result {
        Ok(Ok(stats)) => tracing::trace!(?stats, "metrics flushed"),
        Ok(Err((e, batch))) => {
            if e.is_unavailable() {
                // Logged once by the store when it became unwritable; not every second.
                tracing::debug!(error = %e, samples = batch.len(), "writing metrics failed; will retry");
            } else {
                tracing::error!(error = %e, samples = batch.len(), "writing metrics failed; will retry");
            }
            state.metrics.restore(batch);
        }
        Err(e) => tracing::error!(error = %e, "metrics flush task failed; samples dropped"),
    }
}

async fn expire(state: &AppState, now: u64) {
    let store = state.store.clone();
    let hub = state.metrics.clone();
    let result = tokio::task::spawn_blocking(move || -> crate::store::Result<usize> {
        let mut removed = 0;
        let agents = store.list_agents()?;
        let mut writer = hub.writer.lock().unwrap_or_else(|e| e.into_inner());
        // Deleted nodes: all their series go at once.
        let known: std::collections::HashSet<&str> = agents.iter().map(|a| a.id.as_str()).collect();
        for node in writer.nodes() {
            if !known.contains(node.as_str()) {
                removed += writer.remove_node(&store, &node)?;
            }
        }
        for agent in &agents {
            for kind in ["c", "v"] {
                removed += writer.expire(
                    &store,
                    &format!("{}/{kind}/", agent.id),
                    now.saturating_sub(CONTAINER_TTL_S),
                )?;
            }
        }
        Ok(removed)
    })
    .await;
    match result {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(
            series = n,
            "expired metric series of removed containers and nodes"
        ),
        Ok(Err(e)) => tracing::error!(error = %e, "expiring metric series failed"),
        Err(e) => tracing::error!(error = %e, "metric expiry task failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ts: &[u64]) -> MetricsReport {
        MetricsReport {
            samples: ts
                .iter()
                .map(|t| MetricsSample {
                    t: *t,
                    ..MetricsSample::default()
                })
                .collect(),
            beat: 0,
        }
    }

    #[test]
    fn skew_is_corrected_from_the_newest_sample() {
        let mut r = report(&[100, 110]);
        correct_skew(&mut r, 1000);
        assert_eq!(
            r.samples.iter().map(|s| s.t).collect::<Vec<_>>(),
            vec![990, 1000]
        );
        let mut r = report(&[5000, 5001]);
        correct_skew(&mut r, 1000);
        assert_eq!(
            r.samples.iter().map(|s| s.t).collect::<Vec<_>>(),
            vec![999, 1000]
        );
        let mut r = report(&[997, 998]);
        correct_skew(&mut r, 1000);
        assert_eq!(r.samples[1].t, 998);
    }

    /// Dropping buffered samples (a store that cannot keep up) must not let agents
    /// believe them written: the boot changes, so they resend.
    #[test]
    fn an_overflowing_buffer_makes_agents_resend() {
        let (_d, store) = crate::store::temp();
        let hub = MetricsHub::load(&store, 5000).expect("hub");
        let before = hub.ack("n").boot;
        for t in 0..MAX_PENDING as u64 {
            hub.ingest("n", report(&[t]), t);
        }
        assert_eq!(hub.ack("n").boot, before, "nothing dropped yet");
        hub.ingest("n", report(&[MAX_PENDING as u64]), MAX_PENDING as u64);
        assert_ne!(hub.ack("n").boot, before);
        assert_eq!(hub.take().len(), MAX_PENDING);
    }

    /// Issue 19 (1): a beat allocated its 140 series keys anew; they are interned per
    /// node now, so the second beat's keys are the first beat's.
    #[test]
    fn series_keys_are_interned_per_node() {
        let (_d, store) = crate::store::temp();
        let hub = MetricsHub::load(&store, 5000).expect("hub");
        let beat = |t: u64| {
            let mut r = report(&[t]);
            r.samples[0].host.insert("cpu.busy".into(), 1.0);
            r.samples[0]
                .containers
                .push(capstan_proto::ContainerSample {
                    name: "web".into(),
                    values: [("cpu.pct".to_string(), 2.0)].into_iter().collect(),
                    ..Default::default()
                });
            r
        };
        hub.ingest("n", beat(1), 1);
        hub.ingest("n", beat(2), 2);
        hub.ingest("m", beat(2), 2);
        let batch = hub.take();
        let keys = |i: usize| -> Vec<&str> { batch[i].values.iter().map(|(k, _)| &**k).collect() };
        assert_eq!(keys(0), vec!["n/h/cpu.busy", "n/c/web/cpu.pct"]);
        assert_eq!(keys(2), vec!["m/h/cpu.busy", "m/c/web/cpu.pct"]);
        for (a, b) in batch[0].values.iter().zip(&batch[1].values) {
            assert!(Arc::ptr_eq(&a.0, &b.0), "{} allocated again", a.0);
        }
        assert!(Arc::ptr_eq(&batch[0].node, &batch[1].node));
    }

    /// Issue 19 (1): the buffer was bounded in samples only, and a sample may carry
    /// thousands of values; it is bounded in values too, the oldest going first.
    #[test]
    fn the_buffer_is_bounded_in_values() {
        let (_d, store) = crate::store::temp();
        let hub = MetricsHub::load(&store, 5000).expect("hub");
        let before = hub.ack("n").boot;
        let wide = |t: u64| {
            let mut r = report(&[t]);
            for i in 0..1000 {
                r.samples[0].host.insert(format!("s{i}"), 1.0);
            }
            r
        };
        let fits = (MAX_PENDING_VALUES / 1000) as u64;
        for t in 0..fits {
            hub.ingest("n", wide(t), t);
        }
        assert_eq!(hub.ack("n").boot, before, "nothing dropped yet");
        assert_eq!(hub.pending_values(), MAX_PENDING_VALUES);
        hub.ingest("n", wide(fits), fits);
        assert_ne!(hub.ack("n").boot, before, "agents resend what was dropped");
        assert_eq!(hub.pending_values(), MAX_PENDING_VALUES);
        let batch = hub.take();
        assert_eq!(batch.len(), fits as usize);
        assert_eq!(batch[0].t, 1, "the oldest went");
        assert_eq!(hub.pending_values(), 0);
    }

    #[test]
    fn bad_series_names_are_rejected_naming_the_field() {
        let mut r = report(&[1]);
        r.samples[0].host.insert("cpu busy".into(), 1.0);
        match validate(&r) {
            Err(ApiError::Invalid { field, .. }) => assert_eq!(field, "metrics.samples[0].host"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
