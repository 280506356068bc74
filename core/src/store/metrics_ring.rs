//! Metric series in fixed-size rings, laid out so that ingest costs one row per node per
//! second and a series' disk footprint is fixed and known.
//!
//! | tier | resolution | slots | span | stored as | used for ranges |
//! | --- | --- | --- | --- | --- | --- |
//! | 0 | 1 s | 3660 | 61 min | node frames | `1h` |
//! | 1 | 1 min | 2940 | 49 h | series blocks of 60 | `24h` |
//! | 2 | 15 min | 3072 | 32 d | series blocks of 96 | `7d`, `30d` |
//! | 3 | 1 h | 9576 | 399 d | series blocks of 72 | `1y` |
//!
//! **Tier 0** is a ring of *frames*, one row per node and second: `(node, t mod 3660)` →
//! the second `t` and every `(series id, value)` of that node's sample. A beat thus costs
//! one row write, whatever the number of series.
//!
//! **Tiers 1–3** are rings of fixed-size *blocks* per series: `(series id, tier << 24 |
//! block)` → the start of the block's first bucket in its current lap, then one cell per
//! bucket (min, max, avg as f32 and a u16 count; count 0 = gap). Writing a bucket into a
//! block from an older lap clears the block first; a write older than the block's lap is
//! dropped. Spans are one block longer than the advertised range (1 h, 48 h, 31 d, 396 d)
//! so that clearing a block never cuts into it. A series' blocks are all created ahead of
//! need (reserved, see `metrics_writer`), so its footprint is fixed from then on:
//! [`bytes_per_series`].
//!
//! Values are f32: seven significant digits, plenty for charts, half the disk of f64.

use std::collections::HashMap;

use redb::{ReadableDatabase, TableDefinition};

use super::{Result, Store};

/// Node name → (node number, Unix seconds of its newest frame).
pub(crate) const METRIC_NODES: TableDefinition<&str, (u32, u64)> =
    TableDefinition::new("metric_nodes");
/// Series key → (series id, Unix seconds of its newest point as of its last checkpoint,
/// blocks reserved).
pub(crate) const METRIC_SERIES: TableDefinition<&str, (u32, u64, bool)> =
    TableDefinition::new("metric_series_v4");
/// `(node number, slot)` → frame.
pub(crate) const METRIC_FRAMES: TableDefinition<(u32, u32), &[u8]> =
    TableDefinition::new("metric_frames");
/// `(series id, tier << 24 | block)` → block.
pub(crate) const METRIC_BLOCKS: TableDefinition<(u32, u32), &[u8]> =
    TableDefinition::new("metric_blocks");
/// Flush sequence → frames written in that flush (`(node, t)` pairs), kept until every
/// checkpoint group has folded them into the blocks; replayed after a restart.
pub(crate) const METRIC_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("metric_log");
/// Counters: `seq`, `next_series`, `next_node`, `ckpt.<group>`.
pub(crate) const METRIC_STATE: TableDefinition<&str, u64> = TableDefinition::new("metric_state");

/// One ring: resolution, number of slots, and slots per block (tiers 1–3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub index: u8,
    pub resolution_s: u64,
    pub slots: u32,
    pub block_slots: u32,
}

impl Tier {
    pub const fn span_s(&self) -> u64 {
        self.resolution_s * self.slots as u64
    }

    pub const fn bucket(&self, t: u64) -> u64 {
        t - t % self.resolution_s
    }

    pub fn slot(&self, t: u64) -> u32 {
        // The modulo keeps it below `slots`, a u32.
        ((t / self.resolution_s) % u64::from(self.slots)) as u32
    }

    pub const fn blocks(&self) -> u32 {
        self.slots / self.block_slots
    }

    /// Block key of the bucket holding `t`, and the start of that block's first bucket
    /// in `t`'s lap.
    pub fn block_of(&self, t: u64) -> (u32, u64) {
        let slot = self.slot(t);
        let within = slot % self.block_slots;
        let key = (u32::from(self.index) << 24) | (slot / self.block_slots);
        (key, self.bucket(t) - u64::from(within) * self.resolution_s)
    }
}

pub const TIERS: [Tier; 4] = [
    Tier {
        index: 0,
        resolution_s: 1,
        slots: 3660,
        block_slots: 1,
    },
    Tier {
        index: 1,
        resolution_s: 60,
        slots: 2940,
        block_slots: 60,
    },
    Tier {
        index: 2,
        resolution_s: 900,
        slots: 3072,
        block_slots: 96,
    },
    Tier {
        index: 3,
        resolution_s: 3600,
        slots: 9576,
        block_slots: 72,
    },
];

/// Bytes of one block cell: min, max, avg (f32) and count (u16).
const CELL: usize = 14;
/// Bytes of a frame entry: series id (u32) and value (f32).
const ENTRY: usize = 8;

/// Payload bytes a series occupies in tiers 1–3 (its fixed footprint, before redb's page
/// overhead), plus 8 bytes per second of the last hour in its node's frames.
pub fn bytes_per_series() -> u64 {
    TIERS[1..]
        .iter()
        .map(|t| u64::from(t.blocks()) * (8 + u64::from(t.block_slots) * CELL as u64))
        .sum::<u64>()
        + u64::from(TIERS[0].slots) * ENTRY as u64
}

/// Aggregate of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agg {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: u32,
}

impl Agg {
    pub fn one(v: f64) -> Agg {
        Agg {
            min: v,
            max: v,
            sum: v,
            count: 1,
        }
    }

    pub fn merge(&self, o: &Agg) -> Agg {
        Agg {
            min: self.min.min(o.min),
            max: self.max.max(o.max),
            sum: self.sum + o.sum,
            count: self.count.saturating_add(o.count),
        }
    }

    pub fn avg(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / f64::from(self.count)
        }
    }
}

/// A series read over a range: one entry per bucket, `None` for gaps.
pub type Column = Vec<Option<Agg>>;

/// A bucket not yet folded into its block: (tier, bucket start, aggregate).
pub type OpenBucket = (u8, u64, Agg);
/// Open buckets indexed by series id, each sorted by (tier, bucket start).
pub type OpenBuckets = Vec<Vec<OpenBucket>>;
/// Where a reader finds the open buckets of a series.
pub type OpenLookup<'a> = &'a dyn Fn(u32) -> Vec<OpenBucket>;

pub(crate) fn encode_frame(t: u64, values: &[(u32, f32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + values.len() * ENTRY);
    out.extend_from_slice(&t.to_le_bytes());
    for (id, v) in values {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

pub(crate) fn frame_time(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// The entries of a frame (a truncated tail is ignored).
pub(crate) fn frame_entries(bytes: &[u8]) -> impl Iterator<Item = (u32, f32)> + '_ {
    bytes.get(8..).unwrap_or(&[]).chunks_exact(ENTRY).map(|c| {
        let mut id = [0u8; 4];
        let mut v = [0u8; 4];
        id.copy_from_slice(&c[..4]);
        v.copy_from_slice(&c[4..]);
        (u32::from_le_bytes(id), f32::from_le_bytes(v))
    })
}

/// A decoded block: the start of its first bucket and its cells.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Block {
    pub base: u64,
    pub cells: Vec<Option<Agg>>,
}

impl Block {
    pub fn empty(tier: &Tier) -> Block {
        Block {
            base: 0,
            cells: vec![None; tier.block_slots as usize],
        }
    }

    pub fn decode(tier: &Tier, bytes: &[u8]) -> Block {
        let mut block = Block::empty(tier);
        let Some(base) = frame_time(bytes) else {
            return block;
        };
        block.base = base;
        for (cell, raw) in block
            .cells
            .iter_mut()
            .zip(bytes.get(8..).unwrap_or(&[]).chunks_exact(CELL))
        {
            let f = |i: usize| {
                let mut b = [0u8; 4];
                b.copy_from_slice(&raw[i..i + 4]);
                f64::from(f32::from_le_bytes(b))
            };
            let count = u32::from(u16::from_le_bytes([raw[12], raw[13]]));
            if count > 0 {
                *cell = Some(Agg {
                    min: f(0),
                    max: f(4),
                    sum: f(8) * f64::from(count),
                    count,
                });
            }
        }
        block
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.cells.len() * CELL);
        out.extend_from_slice(&self.base.to_le_bytes());
        for cell in &self.cells {
            let (min, max, avg, count) = match cell {
                Some(a) => (a.min, a.max, a.avg(), a.count.min(u32::from(u16::MAX))),
                None => (0.0, 0.0, 0.0, 0),
            };
            for v in [min, max, avg] {
                // f32 is the stored precision (see the module docs).
                out.extend_from_slice(&(v as f32).to_le_bytes());
            }
            out.extend_from_slice(&(count as u16).to_le_bytes());
        }
        out
    }

    /// Folds a bucket in, clearing the block first if it holds an older lap. Returns
    /// false when the bucket is older than the block's lap (dropped).
    pub fn merge(&mut self, tier: &Tier, bucket: u64, agg: &Agg) -> bool {
        let (_, base) = tier.block_of(bucket);
        if base < self.base {
            return false;
        }
        if base > self.base {
            self.base = base;
            self.cells.iter_mut().for_each(|c| *c = None);
        }
        let i = ((bucket - base) / tier.resolution_s) as usize;
        if let Some(cell) = self.cells.get_mut(i) {
            *cell = Some(match cell {
                Some(old) => old.merge(agg),
                None => *agg,
            });
        }
        true
    }
}

/// The bucket starts of a read: `points` buckets ending with the one holding `end_s`.
fn bucket_times(tier: &Tier, end_s: u64, points: u64) -> Vec<u64> {
    let points = points
        .min(u64::from(tier.slots) - u64::from(tier.block_slots))
        .max(1);
    let last = tier.bucket(end_s);
    let first = last.saturating_sub((points - 1) * tier.resolution_s);
    (0..points)
        .map(|i| first + i * tier.resolution_s)
        .filter(|t| *t <= last)
        .collect()
}

impl Store {
    /// Reads series (full keys, e.g. `node/h/cpu.busy`) on `tier` for the `points` buckets
    /// ending with the one holding `end_s`, folding in `open` (buckets not yet in the
    /// blocks, per series id). Returns the bucket starts and one column per key; unknown
    /// keys read as gaps.
    pub fn metrics_read(
        &self,
        keys: &[String],
        tier: Tier,
        end_s: u64,
        points: u64,
        open: Option<OpenLookup<'_>>,
    ) -> Result<(Vec<u64>, Vec<Column>)> {
        let times = bucket_times(&tier, end_s, points);
        let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
            return Ok((times, Vec::new()));
        };
        let index_of = |t: u64| -> Option<usize> {
            (first..=last)
                .contains(&t)
                .then(|| usize::try_from((t - first) / tier.resolution_s).ok())
                .flatten()
        };
        let tx = self.db()?.begin_read()?;
        let series = tx.open_table(METRIC_SERIES)?;
        let mut ids = Vec::with_capacity(keys.len());
        for k in keys {
            ids.push(series.get(k.as_str())?.map(|v| v.value().0));
        }
        let mut columns: Vec<Column> = vec![vec![None; times.len()]; keys.len()];
        if tier.index == 0 {
            // Frames are per node: group the wanted ids by node.
            let nodes = tx.open_table(METRIC_NODES)?;
            let frames = tx.open_table(METRIC_FRAMES)?;
            let mut by_node: HashMap<&str, HashMap<u32, usize>> = HashMap::new();
            for (i, (key, id)) in keys.iter().zip(&ids).enumerate() {
                if let (Some(id), Some((node, _))) = (id, key.split_once('/')) {
                    by_node.entry(node).or_default().insert(*id, i);
                }
            }
            for (node, wanted) in by_node {
                let Some(num) = nodes.get(node)?.map(|v| v.value().0) else {
                    continue;
                };
                let lo = tier.slot(first);
                let hi = tier.slot(last);
                let ranges = if lo <= hi {
                    vec![(lo, hi)]
                } else {
                    vec![(lo, tier.slots - 1), (0, hi)]
                };
                for (a, b) in ranges {
                    for row in frames.range((num, a)..=(num, b))? {
                        let (_, v) = row?;
                        let bytes = v.value();
                        let Some(i) = frame_time(bytes).and_then(index_of) else {
                            continue;
                        };
                        for (id, value) in frame_entries(bytes) {
                            if let Some(&col) = wanted.get(&id) {
                                columns[col][i] = Some(Agg::one(f64::from(value)));
                            }
                        }
                    }
                }
            }
            return Ok((times, columns));
        }
        let blocks = tx.open_table(METRIC_BLOCKS)?;
        for (col, id) in columns.iter_mut().zip(&ids) {
            let Some(id) = *id else { continue };
            let mut seen = Vec::new();
            for &t in &times {
                let (key, _) = tier.block_of(t);
                if seen.last() == Some(&key) || seen.contains(&key) {
                    continue;
                }
                seen.push(key);
                let Some(row) = blocks.get((id, key))? else {
                    continue;
                };
                let block = Block::decode(&tier, row.value());
                for (j, cell) in block.cells.iter().enumerate() {
                    let t = block.base + j as u64 * tier.resolution_s;
                    if let (Some(agg), Some(i)) = (cell, index_of(t)) {
                        col[i] = Some(*agg);
                    }
                }
            }
            if let Some(open) = open {
                for (tier_index, bucket, agg) in &open(id) {
                    if *tier_index != tier.index {
                        continue;
                    }
                    if let Some(i) = index_of(*bucket) {
                        col[i] = Some(match col[i] {
                            Some(stored) => stored.merge(agg),
                            None => *agg,
                        });
                    }
                }
            }
        }
        Ok((times, columns))
    }

    /// Series whose key starts with `prefix`, with the time of their newest point as of
    /// their last checkpoint (up to a minute behind).
    pub fn metrics_series(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let tx = self.db()?.begin_read()?;
        let index = tx.open_table(METRIC_SERIES)?;
        let mut out = Vec::new();
        for row in index.range(prefix..)? {
            let (k, v) = row?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_string(), v.value().1));
        }
        Ok(out)
    }

    /// Rows in the frame and block tables (tests and benchmarks: the footprint is fixed).
    pub fn metrics_row_counts(&self) -> Result<(u64, u64)> {
        use redb::ReadableTableMetadata;
        let tx = self.db()?.begin_read()?;
        Ok((
            tx.open_table(METRIC_FRAMES)?.len()?,
            tx.open_table(METRIC_BLOCKS)?.len()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_clear_on_a_new_lap() {
        let tier = TIERS[1];
        let t0 = 1_800_000_000u64;
        let mut b = Block::empty(&tier);
        assert!(b.merge(&tier, t0, &Agg::one(1.0)));
        assert!(b.merge(&tier, t0, &Agg::one(3.0)));
        let d = Block::decode(&tier, &b.encode());
        assert_eq!(d, b);
        let (_, base) = tier.block_of(t0);
        let cell = d.cells[((t0 - base) / 60) as usize].expect("cell");
        assert_eq!(
            (cell.min, cell.max, cell.count, cell.avg()),
            (1.0, 3.0, 2, 2.0)
        );
        // One lap later the same block is reused: the old lap is cleared.
        let later = t0 + tier.span_s();
        assert!(b.merge(&tier, later, &Agg::one(5.0)));
        assert_eq!(b.cells.iter().flatten().count(), 1);
        // A write for the previous lap is dropped.
        assert!(!b.merge(&tier, t0 + 60, &Agg::one(9.0)));
    }

    #[test]
    fn frames_round_trip() {
        let f = encode_frame(42, &[(1, 1.5), (7, -2.0)]);
        assert_eq!(frame_time(&f), Some(42));
        assert_eq!(
            frame_entries(&f).collect::<Vec<_>>(),
            vec![(1, 1.5), (7, -2.0)]
        );
    }

    #[test]
    fn tiers_divide_into_whole_blocks() {
        for t in &TIERS {
            assert_eq!(t.slots % t.block_slots, 0, "tier {}", t.index);
        }
    }
}
