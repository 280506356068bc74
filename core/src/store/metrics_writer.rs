//! The metrics write path: one write transaction per flush for all nodes.
//!
//! Each flush writes every sample as a tier-0 frame (one row per node and second) and
//! adds its values to in-memory *open buckets* of tiers 1–3. Those are folded into the
//! series' blocks by a rotating checkpoint: flush `n` checkpoints the series whose
//! `id % GROUPS == n % GROUPS`, so each series' blocks are rewritten about once a minute
//! (not once a second) and the work is spread evenly over the flushes.
//!
//! Nothing committed is lost on a crash: the flush log (`METRIC_LOG`) names the frames
//! each flush wrote, and a group's checkpoint records the flush it has folded in; at
//! start the writer replays, per group, the logged frames newer than its checkpoint.
//! Log entries every group has passed are deleted in the same transaction.
//!
//! A new series gets its blocks reserved (created empty) a few series per flush, so the
//! file reaches its fixed size soon after a node joins instead of growing for 13 months,
//! without a burst of writes when a large fleet joins at once.
//!
//! A sample whose frame is already stored (same node and second) is ignored: a sample the
//! agent sends again (its answer was lost, or the core restarted before confirming the
//! write) is not counted twice.
//!
//! Each node may hold at most `budget` live series (`max_series_per_node`): a new series
//! beyond it is dropped before it gets an ID, a frame entry or blocks, so neither the
//! file nor the writer's memory grows with what a node (or a node's stolen key) sends.
//! An expired or deleted series frees its place, and redb reuses its pages. What was
//! dropped is published per node ([`SeriesUsage`]) for the beat reply and the API.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use super::metrics_ring::{
    Agg, Block, METRIC_BLOCKS, METRIC_FRAMES, METRIC_LOG, METRIC_NODES, METRIC_SERIES,
    METRIC_STATE, OpenBucket, OpenBuckets, TIERS, Tier, encode_frame, frame_entries, frame_time,
};
use super::{Result, Store};

/// Checkpoint groups: with one flush a second, each series' blocks are rewritten once a
/// minute.
pub const GROUPS: u64 = 60;
/// Series whose blocks are reserved per flush (≈ 220 KB of payload each).
pub const RESERVE_PER_FLUSH: usize = 40;

/// A node's series against its budget, as of its latest flush.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesUsage {
    /// Live series stored for the node.
    pub series: u64,
    /// Distinct new series refused for the budget in the node's latest flush: how many
    /// of the series it currently sends are not stored.
    pub dropped: u64,
}

/// Per node usage, shared with the beat handler and the API.
pub type Usage = Arc<Mutex<HashMap<String, SeriesUsage>>>;

/// The node part of a series key (`node/h/cpu.busy` → `node`).
fn node_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(n, _)| n)
}

/// One node's sample: full series keys (`node/h/cpu.busy`) and values. Keys and node are
/// shared, interned by the ingest path (`metrics.rs`), so a beat allocates no key.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub node: Arc<str>,
    pub t: u64,
    pub values: Vec<(Arc<str>, f64)>,
    /// The agent's beat that carried it (not stored; for the caller's watermarks).
    pub beat: u64,
}

#[derive(Debug, Clone)]
struct SeriesState {
    id: u32,
    newest: u64,
    reserved: bool,
    /// `newest` changed since the series' row was last written.
    dirty: bool,
}

#[derive(Debug, Clone, Copy)]
struct NodeState {
    num: u32,
    newest: u64,
}

/// What a flush did (logs and benchmarks).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct FlushStats {
    pub frames: usize,
    pub duplicates: usize,
    pub new_series: usize,
    pub blocks_written: usize,
    pub reserved: usize,
    /// Values of new series refused for their node's budget.
    pub dropped: usize,
}

pub struct RingWriter {
    series: HashMap<String, SeriesState>,
    /// Series key by id (ids are dense), for the checkpoint of a group.
    keys: Vec<Option<String>>,
    nodes: HashMap<String, NodeState>,
    /// Series still without their reserved blocks.
    unreserved: Vec<String>,
    next_series: u32,
    next_node: u32,
    seq: u64,
    checkpoints: Vec<u64>,
    /// Shared with readers, who fold it into what they read from the blocks.
    open: Arc<Mutex<OpenBuckets>>,
    /// Live series per node, checked against `budget` when a series is new.
    per_node: HashMap<String, usize>,
    budget: usize,
    usage: Usage,
}

fn lock(open: &Mutex<OpenBuckets>) -> std::sync::MutexGuard<'_, OpenBuckets> {
    open.lock().unwrap_or_else(|e| e.into_inner())
}

/// The open buckets of one series, copied out for a reader.
pub fn open_of(open: &Mutex<OpenBuckets>, id: u32) -> Vec<OpenBucket> {
    lock(open).get(id as usize).cloned().unwrap_or_default()
}

fn add_open(open: &mut OpenBuckets, id: u32, t: u64, v: f64, now_s: u64) {
    let i = id as usize;
    if open.len() <= i {
        open.resize_with(i + 1, Vec::new);
    }
    let entry = &mut open[i];
    for tier in &TIERS[1..] {
        let bucket = tier.bucket(t);
        if bucket + tier.span_s() <= now_s {
            continue;
        }
        // Sorted by (tier, bucket): usually a hit on an existing bucket or an append.
        match entry.binary_search_by_key(&(tier.index, bucket), |(ti, b, _)| (*ti, *b)) {
            Ok(k) => entry[k].2 = entry[k].2.merge(&Agg::one(v)),
            Err(k) => entry.insert(k, (tier.index, bucket, Agg::one(v))),
        }
    }
}

/// Takes the open buckets of the series in `group`.
fn take_group(open: &mut OpenBuckets, group: u64) -> Vec<(u32, Vec<OpenBucket>)> {
    let start = usize::try_from(group).unwrap_or(usize::MAX);
    let step = usize::try_from(GROUPS).unwrap_or(1);
    let mut due = Vec::new();
    let mut i = start;
    while i < open.len() {
        if !open[i].is_empty() {
            due.push((i as u32, std::mem::take(&mut open[i])));
        }
        i += step;
    }
    due
}

impl RingWriter {
    /// Loads the indexes and replays what the blocks do not hold yet.
    pub fn load(store: &Store, now_s: u64) -> Result<RingWriter> {
        let tx = store.db()?.begin_read()?;
        let state = tx.open_table(METRIC_STATE)?;
        let get = |k: &str| -> Result<u64> { Ok(state.get(k)?.map_or(0, |v| v.value())) };
        let mut w = RingWriter {
            series: HashMap::new(),
            keys: Vec::new(),
            nodes: HashMap::new(),
            unreserved: Vec::new(),
            next_series: u32::try_from(get("next_series")?).unwrap_or(u32::MAX),
            next_node: u32::try_from(get("next_node")?).unwrap_or(u32::MAX),
            seq: get("seq")?,
            checkpoints: (0..GROUPS)
                .map(|g| get(&format!("ckpt.{g}")))
                .collect::<Result<_>>()?,
            open: Arc::new(Mutex::new(Vec::new())),
            per_node: HashMap::new(),
            budget: usize::MAX,
            usage: Arc::default(),
        };
        for row in tx.open_table(METRIC_SERIES)?.iter()? {
            let (k, v) = row?;
            let (id, newest, reserved) = v.value();
            let key = k.value().to_string();
            if !reserved {
                w.unreserved.push(key.clone());
            }
            w.set_key(id, key.clone());
            *w.per_node.entry(node_of(&key).to_string()).or_insert(0) += 1;
            w.series.insert(
                key,
                SeriesState {
                    id,
                    newest,
                    reserved,
                    dirty: false,
                },
            );
        }
        for row in tx.open_table(METRIC_NODES)?.iter()? {
            let (k, v) = row?;
            let (num, newest) = v.value();
            w.nodes
                .insert(k.value().to_string(), NodeState { num, newest });
        }
        // Replay: frames logged after the checkpoint of their series' group.
        let oldest = w.checkpoints.iter().copied().min().unwrap_or(0);
        let frames = tx.open_table(METRIC_FRAMES)?;
        let mut open = Vec::new();
        let mut replayed = HashSet::new();
        let mut newest_series: HashMap<u32, u64> = HashMap::new();
        let log: Vec<(u64, Vec<u8>)> = tx
            .open_table(METRIC_LOG)?
            .range(oldest + 1..)?
            .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec())))
            .collect::<std::result::Result<_, _>>()?;
        // Newest first: a frame rewritten later is replayed once, as it stands now.
        for (seq, entries) in log.iter().rev() {
            for e in entries.chunks_exact(12) {
                let mut num = [0u8; 4];
                let mut t = [0u8; 8];
                num.copy_from_slice(&e[..4]);
                t.copy_from_slice(&e[4..]);
                let (num, t) = (u32::from_le_bytes(num), u64::from_le_bytes(t));
                if !replayed.insert((num, t)) {
                    continue;
                }
                let Some(row) = frames.get((num, TIERS[0].slot(t)))? else {
                    continue;
                };
                let bytes = row.value();
                if frame_time(bytes) != Some(t) {
                    continue;
                }
                for (id, v) in frame_entries(bytes) {
                    let group = usize::try_from(u64::from(id) % GROUPS).unwrap_or(0);
                    if *seq > w.checkpoints[group] {
                        add_open(&mut open, id, t, f64::from(v), now_s);
                        let n = newest_series.entry(id).or_insert(0);
                        *n = (*n).max(t);
                    }
                }
            }
        }
        for s in w.series.values_mut() {
            if let Some(t) = newest_series.get(&s.id) {
                s.newest = s.newest.max(*t);
                s.dirty = true;
            }
        }
        *lock(&w.open) = open;
        Ok(w)
    }

    fn set_key(&mut self, id: u32, key: String) {
        let i = id as usize;
        if self.keys.len() <= i {
            self.keys.resize(i + 1, None);
        }
        self.keys[i] = Some(key);
    }

    /// The open buckets, for readers.
    pub fn open(&self) -> Arc<Mutex<OpenBuckets>> {
        self.open.clone()
    }

    /// Sets the per-node series budget and where usage is published (keeping the drop
    /// counts already there: a reload does not mean a node stopped sending).
    pub fn with_budget(mut self, budget: usize, usage: Usage) -> RingWriter {
        self.budget = budget;
        self.usage = usage;
        let mut u = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        u.retain(|n, _| self.per_node.contains_key(n));
        for (node, n) in &self.per_node {
            u.entry(node.clone()).or_default().series = *n as u64;
        }
        drop(u);
        self
    }

    /// Live series per node and what the budget dropped.
    pub fn usage(&self) -> Usage {
        self.usage.clone()
    }

    /// Writes a batch in one transaction. On error the in-memory state may be ahead of
    /// the file: load the writer again before retrying.
    pub fn write(&mut self, store: &Store, batch: &[Sample], now_s: u64) -> Result<FlushStats> {
        let mut stats = FlushStats::default();
        if batch.is_empty() {
            return Ok(stats);
        }
        self.seq += 1;
        let seq = self.seq;
        let tx = store.db()?.begin_write()?;
        {
            let mut frames = tx.open_table(METRIC_FRAMES)?;
            let mut series_table = tx.open_table(METRIC_SERIES)?;
            let mut nodes_table = tx.open_table(METRIC_NODES)?;
            let mut log = Vec::new();
            // Applied to the open buckets in one short lock at the end: readers share it.
            let mut points: Vec<(u32, u64, f64)> = Vec::new();
            let mut touched_nodes = HashSet::new();
            // Per node: distinct new series refused for the budget in this flush.
            let mut refused: HashMap<&str, HashSet<&str>> = HashMap::new();
            let mut order: Vec<&Sample> = batch.iter().collect();
            order.sort_by_key(|s| s.t);
            for s in order {
                let node = match self.nodes.get(&*s.node) {
                    Some(n) => *n,
                    None => {
                        let n = NodeState {
                            num: self.next_node,
                            newest: 0,
                        };
                        self.next_node = self.next_node.saturating_add(1);
                        self.nodes.insert(s.node.to_string(), n);
                        n
                    }
                };
                let slot = TIERS[0].slot(s.t);
                if frames
                    .get((node.num, slot))?
                    .is_some_and(|f| frame_time(f.value()) == Some(s.t))
                {
                    stats.duplicates += 1;
                    continue;
                }
                let mut entries = Vec::with_capacity(s.values.len());
                for (key, v) in &s.values {
                    let key: &str = key;
                    if !v.is_finite() {
                        continue;
                    }
                    if !self.series.contains_key(key) {
                        let live = match self.per_node.get_mut(&*s.node) {
                            Some(n) => n,
                            None => self.per_node.entry(s.node.to_string()).or_insert(0),
                        };
                        if *live >= self.budget {
                            refused.entry(&*s.node).or_default().insert(key);
                            stats.dropped += 1;
                            continue;
                        }
                        *live += 1;
                        let id = self.next_series;
                        self.next_series = self.next_series.saturating_add(1);
                        series_table.insert(key, (id, s.t, false))?;
                        self.unreserved.push(key.to_string());
                        stats.new_series += 1;
                        self.set_key(id, key.to_string());
                        self.series.insert(
                            key.to_string(),
                            SeriesState {
                                id,
                                newest: 0,
                                reserved: false,
                                dirty: false,
                            },
                        );
                    }
                    let Some(state) = self.series.get_mut(key) else {
                        continue;
                    };
                    state.newest = state.newest.max(s.t);
                    state.dirty = true;
                    entries.push((state.id, *v as f32));
                    points.push((state.id, s.t, *v));
                }
                if let Some(n) = self.nodes.get_mut(&*s.node) {
                    n.newest = n.newest.max(s.t);
                }
                touched_nodes.insert(&*s.node);
                if s.t + TIERS[0].span_s() > now_s {
                    frames.insert((node.num, slot), encode_frame(s.t, &entries).as_slice())?;
                    log.extend_from_slice(&node.num.to_le_bytes());
                    log.extend_from_slice(&s.t.to_le_bytes());
                    stats.frames += 1;
                }
            }
            for name in &touched_nodes {
                if let Some(n) = self.nodes.get(*name) {
                    nodes_table.insert(*name, (n.num, n.newest))?;
                }
            }
            // Published before the commit: a failed commit makes the caller reload, which
            // recomputes the counts from the file.
            let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
            for name in touched_nodes {
                let u = usage.entry(name.to_string()).or_default();
                u.series = self.per_node.get(name).copied().unwrap_or(0) as u64;
                u.dropped = refused.get(name).map_or(0, |r| r.len() as u64);
            }
            drop(usage);
            if !refused.is_empty() {
                tracing::debug!(
                    nodes = refused.len(),
                    values = stats.dropped,
                    "new series over the per-node budget dropped"
                );
            }
            if !log.is_empty() {
                tx.open_table(METRIC_LOG)?.insert(seq, log.as_slice())?;
            }
            // Checkpoint this flush's group.
            let group = seq % GROUPS;
            let mut open = lock(&self.open);
            for (id, t, v) in points {
                add_open(&mut open, id, t, v, now_s);
            }
            let due = take_group(&mut open, group);
            drop(open);
            stats.blocks_written = fold(&tx, due)?;
            // Persist the group's newest times (expiry reads them after a restart).
            let mut id = usize::try_from(group).unwrap_or(usize::MAX);
            while id < self.keys.len() {
                if let Some(key) = &self.keys[id]
                    && let Some(st) = self.series.get_mut(key)
                    && st.dirty
                {
                    series_table.insert(key.as_str(), (st.id, st.newest, st.reserved))?;
                    st.dirty = false;
                }
                id += usize::try_from(GROUPS).unwrap_or(1);
            }
            let g = usize::try_from(group).unwrap_or(0);
            self.checkpoints[g] = seq;
            // Reserve the blocks of a few new series.
            let take = self.unreserved.len().min(RESERVE_PER_FLUSH);
            for key in self.unreserved.drain(..take) {
                let Some(st) = self.series.get_mut(&key) else {
                    continue;
                };
                reserve(&tx, st.id)?;
                st.reserved = true;
                series_table.insert(key.as_str(), (st.id, st.newest, true))?;
                stats.reserved += 1;
            }
        }
        self.save_state(&tx)?;
        tx.commit()?;
        Ok(stats)
    }

    fn save_state(&self, tx: &WriteTransaction) -> Result<()> {
        let mut state = tx.open_table(METRIC_STATE)?;
        state.insert("seq", self.seq)?;
        state.insert("next_series", u64::from(self.next_series))?;
        state.insert("next_node", u64::from(self.next_node))?;
        for (g, c) in self.checkpoints.iter().enumerate() {
            state.insert(format!("ckpt.{g}").as_str(), *c)?;
        }
        let done = self.checkpoints.iter().copied().min().unwrap_or(0);
        tx.open_table(METRIC_LOG)?
            .retain_in(..=done, |_, _| false)?;
        Ok(())
    }

    /// Deletes the series under `prefix` whose newest point is older than `before_s`
    /// (all their blocks), in one transaction. Returns how many went.
    pub fn expire(&mut self, store: &Store, prefix: &str, before_s: u64) -> Result<usize> {
        let stale: Vec<(String, u32)> = self
            .series
            .iter()
            .filter(|(k, s)| k.starts_with(prefix) && s.newest < before_s)
            .map(|(k, s)| (k.clone(), s.id))
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let tx = store.db()?.begin_write()?;
        {
            let mut blocks = tx.open_table(METRIC_BLOCKS)?;
            let mut series = tx.open_table(METRIC_SERIES)?;
            for (key, id) in &stale {
                blocks.retain_in((*id, 0)..=(*id, u32::MAX), |_, _| false)?;
                series.remove(key.as_str())?;
            }
        }
        tx.commit()?;
        let mut open = lock(&self.open);
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        for (key, id) in &stale {
            let node = node_of(key);
            if let Some(n) = self.per_node.get_mut(node) {
                *n = n.saturating_sub(1);
                if let Some(u) = usage.get_mut(node) {
                    u.series = *n as u64;
                }
            }
            self.series.remove(key);
            if let Some(k) = self.keys.get_mut(*id as usize) {
                *k = None;
            }
            if let Some(o) = open.get_mut(*id as usize) {
                o.clear();
            }
        }
        self.unreserved
            .retain(|k| !k.starts_with(prefix) || self.series.contains_key(k));
        Ok(stale.len())
    }

    /// Forgets a deleted node: its frames, all its series and their blocks.
    pub fn remove_node(&mut self, store: &Store, node: &str) -> Result<usize> {
        let removed = self.expire(store, &format!("{node}/"), u64::MAX)?;
        self.per_node.remove(node);
        self.usage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node);
        if let Some(n) = self.nodes.remove(node) {
            let tx = store.db()?.begin_write()?;
            {
                tx.open_table(METRIC_FRAMES)?
                    .retain_in((n.num, 0)..=(n.num, u32::MAX), |_, _| false)?;
                tx.open_table(METRIC_NODES)?.remove(node)?;
            }
            tx.commit()?;
        }
        Ok(removed)
    }

    /// Nodes with metrics, for finding those deleted since.
    pub fn nodes(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }
}

/// Folds open buckets into their blocks: each block read and written once.
fn fold(tx: &WriteTransaction, due: Vec<(u32, Vec<OpenBucket>)>) -> Result<usize> {
    let mut blocks = tx.open_table(METRIC_BLOCKS)?;
    let mut written = 0;
    for (id, mut buckets) in due {
        buckets.sort_by_key(|(tier, bucket, _)| (*tier, *bucket));
        let mut current: Option<(u32, Tier, Block)> = None;
        for (tier_index, bucket, agg) in buckets {
            let tier = TIERS[usize::from(tier_index)];
            let (key, _) = tier.block_of(bucket);
            if current.as_ref().is_none_or(|(k, _, _)| *k != key) {
                if let Some((k, _, b)) = current.take() {
                    blocks.insert((id, k), b.encode().as_slice())?;
                    written += 1;
                }
                let block = blocks
                    .get((id, key))?
                    .map_or_else(|| Block::empty(&tier), |v| Block::decode(&tier, v.value()));
                current = Some((key, tier, block));
            }
            if let Some((_, tier, block)) = current.as_mut() {
                block.merge(tier, bucket, &agg);
            }
        }
        if let Some((k, _, b)) = current.take() {
            blocks.insert((id, k), b.encode().as_slice())?;
            written += 1;
        }
    }
    Ok(written)
}

/// Creates the missing blocks of a series, empty.
fn reserve(tx: &WriteTransaction, id: u32) -> Result<()> {
    let mut blocks = tx.open_table(METRIC_BLOCKS)?;
    for tier in &TIERS[1..] {
        let empty = Block::empty(tier).encode();
        for b in 0..tier.blocks() {
            let key = (u32::from(tier.index) << 24) | b;
            if blocks.get((id, key))?.is_none() {
                blocks.insert((id, key), empty.as_slice())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metrics_ring::Column;

    const T0: u64 = 1_800_000_000;

    fn sample(node: &str, t: u64, values: &[(&str, f64)]) -> Sample {
        Sample {
            node: node.into(),
            t,
            values: values
                .iter()
                .map(|(k, v)| (format!("{node}/h/{k}").into(), *v))
                .collect(),
            beat: 0,
        }
    }

    fn read(s: &Store, w: &RingWriter, key: &str, tier: usize, end: u64, n: u64) -> Column {
        let open = w.open();
        let f = move |id: u32| open_of(&open, id);
        let (_, mut cols) = s
            .metrics_read(&[key.to_string()], TIERS[tier], end, n, Some(&f))
            .expect("read");
        cols.remove(0)
    }

    fn avg(c: &Option<Agg>) -> Option<f64> {
        c.map(|a| a.avg())
    }

    #[test]
    fn one_second_tier_reads_back_with_gaps() {
        let (_d, s) = crate::store::temp();
        let mut w = RingWriter::load(&s, T0).expect("load");
        w.write(
            &s,
            &[
                sample("n", T0, &[("a", 1.0)]),
                sample("n", T0 + 2, &[("a", 3.0)]),
            ],
            T0 + 2,
        )
        .expect("write");
        let col = read(&s, &w, "n/h/a", 0, T0 + 2, 3);
        assert_eq!(
            col.iter().map(avg).collect::<Vec<_>>(),
            vec![Some(1.0), None, Some(3.0)]
        );
    }

    #[test]
    fn downsampling_keeps_min_avg_max_before_and_after_the_checkpoint() {
        let (_d, s) = crate::store::temp();
        let mut w = RingWriter::load(&s, T0).expect("load");
        assert_eq!(T0 % 3600, 0);
        // One minute of values 0..60, one flush per second: every group is checkpointed
        // once, so the blocks and the open buckets both hold part of the minute.
        for i in 0..60u64 {
            w.write(&s, &[sample("n", T0 + i, &[("a", i as f64)])], T0 + i)
                .expect("write");
        }
        let minute = read(&s, &w, "n/h/a", 1, T0 + 59, 1)[0].expect("bucket");
        assert_eq!(
            (minute.min, minute.max, minute.count, minute.avg()),
            (0.0, 59.0, 60, 29.5)
        );
        let hour = read(&s, &w, "n/h/a", 3, T0 + 59, 1)[0].expect("hour");
        assert_eq!(hour.count, 60);
        // Only the blocks, as after a checkpoint of everything: same figures.
        let (_, cols) = s
            .metrics_read(&["n/h/a".to_string()], TIERS[1], T0 + 59, 1, None)
            .expect("read");
        let stored = cols[0][0].map_or(0, |a| a.count);
        assert!(stored > 0, "the checkpoint folded part of the minute");
    }

    #[test]
    fn a_restart_replays_what_was_committed_but_not_folded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.redb");
        {
            let s = Store::open(&path).expect("open");
            let mut w = RingWriter::load(&s, T0).expect("load");
            for i in 0..30u64 {
                w.write(
                    &s,
                    &[sample("n", T0 + i, &[("a", 10.0), ("b", i as f64)])],
                    T0 + i,
                )
                .expect("write");
            }
            // Dropped without a shutdown flush: like a kill -9 after the last commit.
        }
        let s = Store::open(&path).expect("reopen");
        let mut w = RingWriter::load(&s, T0 + 30).expect("load");
        let minute = read(&s, &w, "n/h/b", 1, T0 + 30, 1)[0].expect("minute");
        assert_eq!((minute.count, minute.min, minute.max), (30, 0.0, 29.0));
        // Mid-bucket: the rest of the minute lands in the same bucket.
        w.write(&s, &[sample("n", T0 + 45, &[("b", 100.0)])], T0 + 45)
            .expect("write");
        let minute = read(&s, &w, "n/h/b", 1, T0 + 45, 1)[0].expect("minute");
        assert_eq!((minute.count, minute.max), (31, 100.0));
        // And a second restart does not count anything twice.
        drop(w);
        let w = RingWriter::load(&s, T0 + 45).expect("load");
        let minute = read(&s, &w, "n/h/b", 1, T0 + 45, 1)[0].expect("minute");
        assert_eq!(minute.count, 31);
    }

    #[test]
    fn a_sample_sent_twice_counts_once() {
        let (_d, s) = crate::store::temp();
        let mut w = RingWriter::load(&s, T0).expect("load");
        let first = w
            .write(&s, &[sample("n", T0, &[("a", 1.0)])], T0)
            .expect("write");
        let again = w
            .write(
                &s,
                &[
                    sample("n", T0, &[("a", 1.0)]),
                    sample("n", T0 + 1, &[("a", 3.0)]),
                ],
                T0 + 1,
            )
            .expect("write");
        assert_eq!((first.frames, again.frames, again.duplicates), (1, 1, 1));
        // A sample resent after newer ones (a restarted core lost it) is still taken.
        let late = w
            .write(
                &s,
                &[
                    sample("n", T0 + 3, &[("a", 5.0)]),
                    sample("n", T0 + 2, &[("a", 2.0)]),
                ],
                T0 + 3,
            )
            .expect("write");
        assert_eq!((late.frames, late.duplicates), (2, 0));
        let minute = read(&s, &w, "n/h/a", 1, T0 + 3, 1)[0].expect("minute");
        assert_eq!((minute.count, minute.avg()), (4, 2.75));
    }

    #[test]
    fn the_one_second_ring_wraps() {
        let (_d, s) = crate::store::temp();
        let mut w = RingWriter::load(&s, T0).expect("load");
        w.write(&s, &[sample("n", T0, &[("a", 1.0)])], T0)
            .expect("write");
        let later = T0 + u64::from(TIERS[0].slots);
        w.write(&s, &[sample("n", later, &[("a", 2.0)])], later)
            .expect("write");
        let col = read(&s, &w, "n/h/a", 0, later, 3600);
        assert_eq!(avg(&col[3599]), Some(2.0));
        assert!(col[..3599].iter().all(Option::is_none));
        assert_eq!(
            s.metrics_row_counts().expect("rows").0,
            1,
            "one frame slot reused"
        );
    }

    /// The footprint is fixed: the file after 30 simulated days is the size it was after
    /// one, once a series' blocks are reserved.
    #[test]
    fn the_file_does_not_grow_with_uptime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.redb");
        let s = Store::open(&path).expect("open");
        let mut w = RingWriter::load(&s, T0).expect("load");
        let names: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
        let mut size_after_day = 0;
        let mut rows_after_day = (0, 0);
        // One sample every 15 minutes for 30 days (a flush each: every group checkpoints).
        let step = 900;
        for i in 0..(30 * 86_400 / step) {
            let t = T0 + i * step;
            let values: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), i as f64)).collect();
            w.write(&s, &[sample("n", t, &values)], t).expect("write");
            if t == T0 + 86_400 {
                size_after_day = std::fs::metadata(&path).expect("size").len();
                rows_after_day = s.metrics_row_counts().expect("rows");
            }
        }
        let size_after_month = std::fs::metadata(&path).expect("size").len();
        assert_eq!(s.metrics_row_counts().expect("rows").1, rows_after_day.1);
        let blocks_per_series: u64 = TIERS[1..].iter().map(|t| u64::from(t.blocks())).sum();
        assert_eq!(rows_after_day.1, 20 * blocks_per_series);
        assert!(
            size_after_month <= size_after_day + size_after_day / 10,
            "{size_after_day} → {size_after_month}"
        );
    }

    /// Issue 19 (1): redb's page cache holds no more than the store was opened with,
    /// however much the write path touches (redb's default would keep up to 1 GiB).
    #[test]
    fn the_page_cache_stays_within_its_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = 2 << 20;
        let s = Store::open_with_cache(&dir.path().join("m.redb"), cache).expect("open");
        let mut w = RingWriter::load(&s, T0).expect("load");
        // 200 series: their reserved blocks alone are ~45 MB, 20 times the cache.
        let names: Vec<String> = (0..200).map(|i| format!("s{i}")).collect();
        let mut peak = 0;
        for i in 0..70u64 {
            let values: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), i as f64)).collect();
            let stats = w
                .write(&s, &[sample("n", T0 + i, &values)], T0 + i)
                .expect("write");
            if i == 0 {
                assert_eq!(stats.reserved, RESERVE_PER_FLUSH);
            }
            peak = peak.max(s.cache_used_bytes().expect("stats"));
        }
        assert_eq!(s.metrics_row_counts().expect("rows").1, {
            let per: u64 = TIERS[1..].iter().map(|t| u64::from(t.blocks())).sum();
            200 * per
        });
        assert!(peak > cache / 2, "the cache is used: {peak}");
        assert!(peak <= cache, "{peak} bytes cached, {cache} allowed");
    }

    /// A node holds at most its budget of series; what is beyond is dropped and counted,
    /// other nodes are not affected, and an expired series frees its place.
    #[test]
    fn the_budget_bounds_a_node_and_expiry_frees_its_places() {
        let (_d, s) = crate::store::temp();
        let usage = Usage::default();
        let mut w = RingWriter::load(&s, T0)
            .expect("load")
            .with_budget(2, usage.clone());
        let c = |node: &str, t: u64, names: &[&str]| Sample {
            node: node.into(),
            t,
            values: names
                .iter()
                .map(|n| (format!("{node}/c/{n}/cpu.pct").into(), 1.0))
                .collect(),
            beat: 0,
        };
        let stats = w
            .write(&s, &[c("a", T0, &["x", "y", "z"]), c("b", T0, &["x"])], T0)
            .expect("write");
        assert_eq!((stats.new_series, stats.dropped), (3, 1));
        let get = |n: &str| {
            usage
                .lock()
                .expect("usage")
                .get(n)
                .copied()
                .unwrap_or_default()
        };
        assert_eq!(
            get("a"),
            SeriesUsage {
                series: 2,
                dropped: 1
            }
        );
        assert_eq!(
            get("b"),
            SeriesUsage {
                series: 1,
                dropped: 0
            }
        );
        // Known series keep being written; only new ones are refused.
        w.write(&s, &[c("a", T0 + 1, &["x", "y", "w"])], T0 + 1)
            .expect("write");
        assert_eq!(
            get("a"),
            SeriesUsage {
                series: 2,
                dropped: 1
            }
        );
        assert_eq!(s.metrics_series("a/").expect("series").len(), 2);
        // `x` and `y` expire; two new ones fit again.
        w.write(&s, &[c("a", T0 + 100, &["y"])], T0 + 100)
            .expect("write");
        assert_eq!(w.expire(&s, "a/c/", T0 + 50).expect("expire"), 1);
        assert_eq!(get("a").series, 1);
        w.write(&s, &[c("a", T0 + 101, &["y", "v", "u"])], T0 + 101)
            .expect("write");
        assert_eq!(
            get("a"),
            SeriesUsage {
                series: 2,
                dropped: 1
            }
        );
        // A reload counts from the file.
        let w = RingWriter::load(&s, T0 + 101)
            .expect("load")
            .with_budget(2, Usage::default());
        assert_eq!(
            w.usage().lock().expect("usage").get("a").map(|u| u.series),
            Some(2)
        );
    }

    #[test]
    fn expiry_removes_only_stale_series_under_the_prefix() {
        let (_d, s) = crate::store::temp();
        let mut w = RingWriter::load(&s, T0).expect("load");
        let old = Sample {
            node: "n".into(),
            t: T0,
            values: vec![
                ("n/c/old/cpu.pct".into(), 1.0),
                ("n/h/cpu.busy".into(), 1.0),
            ],
            beat: 0,
        };
        let new = Sample {
            node: "n".into(),
            t: T0 + 100,
            values: vec![("n/c/new/cpu.pct".into(), 1.0)],
            beat: 0,
        };
        w.write(&s, &[old, new], T0 + 100).expect("write");
        assert_eq!(w.expire(&s, "n/c/", T0 + 50).expect("expire"), 1);
        let left: Vec<String> = s
            .metrics_series("n/")
            .expect("series")
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(
            left,
            vec!["n/c/new/cpu.pct".to_string(), "n/h/cpu.busy".to_string()]
        );
        assert_eq!(w.remove_node(&s, "n").expect("remove"), 2);
        assert_eq!(s.metrics_row_counts().expect("rows"), (0, 0));
    }
}
