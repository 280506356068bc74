//! Metric series in fixed-size rings, one ring per series and tier, so the disk a series
//! takes is fixed and known: it never grows with uptime.
//!
//! A row is keyed by `(series, tier << 24 | slot)` with `slot = bucket / resolution mod
//! capacity`, and holds the bucket's start (Unix seconds) with min, max, sum and count. A
//! write into a slot that holds an older bucket replaces it (the ring wraps); into the same
//! bucket it merges (several samples per minute, a backlog after an outage, a core restart
//! mid-bucket: what was committed stays); a point older than what the slot holds, or older
//! than the tier's span, is dropped. Readers check each row's bucket, so a slot left over
//! from a previous lap reads as a gap, never as wrong data.
//!
//! | tier | resolution | slots | span | used for ranges |
//! | --- | --- | --- | --- | --- |
//! | 0 | 1 s | 3600 | 1 h | `1h` |
//! | 1 | 1 min | 2880 | 48 h | `24h` |
//! | 2 | 15 min | 2976 | 31 d | `7d`, `30d` |
//! | 3 | 1 h | 9504 | 396 d | `1y` |
//!
//! Every point is written to all four tiers in the same transaction (downsampling as it
//! arrives, no background roll-up). `METRIC_SERIES` records each series' last point, for
//! listing a node's series and for expiring those of removed containers.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{Result, Store};

/// A ring row: bucket start (Unix s), min, max, sum, count.
type Row = (u64, f64, f64, f64, u32);

/// `(series, tier << 24 | slot)` → [`Row`].
pub(crate) const METRIC_RINGS: TableDefinition<(&str, u32), Row> =
    TableDefinition::new("metric_rings");
/// Series key → Unix seconds of its newest point.
pub(crate) const METRIC_SERIES: TableDefinition<&str, u64> = TableDefinition::new("metric_series");

/// One ring: resolution and number of slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub index: u8,
    pub resolution_s: u64,
    pub slots: u32,
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

    fn key(&self, t: u64) -> u32 {
        (u32::from(self.index) << 24) | self.slot(t)
    }
}

pub const TIERS: [Tier; 4] = [
    Tier {
        index: 0,
        resolution_s: 1,
        slots: 3600,
    },
    Tier {
        index: 1,
        resolution_s: 60,
        slots: 2880,
    },
    Tier {
        index: 2,
        resolution_s: 900,
        slots: 2976,
    },
    Tier {
        index: 3,
        resolution_s: 3600,
        slots: 9504,
    },
];

/// One value of one series at one second.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub series: String,
    pub t: u64,
    pub value: f64,
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

/// Rows a series occupies across all tiers (its fixed footprint).
pub fn rows_per_series() -> u64 {
    TIERS.iter().map(|t| u64::from(t.slots)).sum()
}

impl Store {
    /// Writes a batch of points in one transaction (all tiers). Points older than a tier's
    /// span relative to `now_s` skip that tier.
    pub fn metrics_write(&self, points: &[Point], now_s: u64) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        // Pre-aggregate per (series, tier, bucket) so each row is read and written once.
        let mut buckets: BTreeMap<(&str, u8, u64), Agg> = BTreeMap::new();
        let mut newest: BTreeMap<&str, u64> = BTreeMap::new();
        for p in points {
            if !p.value.is_finite() {
                continue;
            }
            for tier in &TIERS {
                let bucket = tier.bucket(p.t);
                if bucket + tier.span_s() <= now_s {
                    continue;
                }
                buckets
                    .entry((p.series.as_str(), tier.index, bucket))
                    .and_modify(|a| *a = a.merge(&Agg::one(p.value)))
                    .or_insert_with(|| Agg::one(p.value));
            }
            let n = newest.entry(p.series.as_str()).or_insert(0);
            *n = (*n).max(p.t);
        }
        let tx = self.db.begin_write()?;
        {
            let mut rings = tx.open_table(METRIC_RINGS)?;
            for ((series, tier, bucket), agg) in buckets {
                let tier = TIERS[usize::from(tier)];
                let key = (series, tier.key(bucket));
                let existing = rings.get(key)?.map(|v| v.value());
                let merged = match existing {
                    Some((b, _, _, _, _)) if b > bucket => continue,
                    Some((b, min, max, sum, count)) if b == bucket => Agg {
                        min,
                        max,
                        sum,
                        count,
                    }
                    .merge(&agg),
                    _ => agg,
                };
                rings.insert(
                    key,
                    (bucket, merged.min, merged.max, merged.sum, merged.count),
                )?;
            }
            let mut index = tx.open_table(METRIC_SERIES)?;
            for (series, t) in newest {
                let known = index.get(series)?.map(|v| v.value()).unwrap_or(0);
                if t > known {
                    index.insert(series, t)?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Reads `series` on `tier` for the `points` buckets ending with the one holding
    /// `end_s`. Returns the bucket starts and one column per series.
    pub fn metrics_read(
        &self,
        series: &[String],
        tier: Tier,
        end_s: u64,
        points: u64,
    ) -> Result<(Vec<u64>, Vec<Column>)> {
        let points = points.min(u64::from(tier.slots)).max(1);
        let last = tier.bucket(end_s);
        let first = last.saturating_sub((points - 1) * tier.resolution_s);
        let times: Vec<u64> = (0..points)
            .map(|i| first + i * tier.resolution_s)
            .filter(|t| *t <= last)
            .collect();
        let tx = self.db.begin_read()?;
        let rings = tx.open_table(METRIC_RINGS)?;
        let mut columns = Vec::with_capacity(series.len());
        let lo = u32::from(tier.index) << 24;
        let hi = lo | (tier.slots - 1);
        for name in series {
            let mut col: Column = vec![None; times.len()];
            for row in rings.range((name.as_str(), lo)..=(name.as_str(), hi))? {
                let (_, v) = row?;
                let (bucket, min, max, sum, count) = v.value();
                if bucket < first || bucket > last {
                    continue;
                }
                let i = usize::try_from((bucket - first) / tier.resolution_s).unwrap_or(usize::MAX);
                if let Some(cell) = col.get_mut(i) {
                    *cell = Some(Agg {
                        min,
                        max,
                        sum,
                        count,
                    });
                }
            }
            columns.push(col);
        }
        Ok((times, columns))
    }

    /// Series whose key starts with `prefix`, with the time of their newest point.
    pub fn metrics_series(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let tx = self.db.begin_read()?;
        let index = tx.open_table(METRIC_SERIES)?;
        let mut out = Vec::new();
        for row in index.range(prefix..)? {
            let (k, v) = row?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_string(), v.value()));
        }
        Ok(out)
    }

    /// Deletes every series whose key starts with `prefix` and whose newest point is older
    /// than `before_s` (all tiers), in one transaction. Returns how many went.
    pub fn metrics_expire(&self, prefix: &str, before_s: u64) -> Result<usize> {
        let stale: Vec<String> = self
            .metrics_series(prefix)?
            .into_iter()
            .filter(|(_, t)| *t < before_s)
            .map(|(k, _)| k)
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let tx = self.db.begin_write()?;
        {
            let mut rings = tx.open_table(METRIC_RINGS)?;
            let mut index = tx.open_table(METRIC_SERIES)?;
            for key in &stale {
                rings.retain_in((key.as_str(), 0)..=(key.as_str(), u32::MAX), |_, _| false)?;
                index.remove(key.as_str())?;
            }
        }
        tx.commit()?;
        Ok(stale.len())
    }

    /// Rows held in the ring table (tests and benchmarks: the footprint is fixed).
    pub fn metrics_row_count(&self) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(METRIC_RINGS)?.len()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::temp;

    fn p(series: &str, t: u64, value: f64) -> Point {
        Point {
            series: series.into(),
            t,
            value,
        }
    }

    const T0: u64 = 1_800_000_000;

    fn read(s: &Store, tier: usize, end: u64, points: u64) -> (Vec<u64>, Column) {
        let (t, mut cols) = s
            .metrics_read(&["a".to_string()], TIERS[tier], end, points)
            .expect("read");
        (t, cols.remove(0))
    }

    #[test]
    fn one_second_tier_reads_back_with_gaps() {
        let (_d, s) = temp();
        s.metrics_write(&[p("a", T0, 1.0), p("a", T0 + 2, 3.0)], T0 + 2)
            .expect("write");
        let (t, col) = read(&s, 0, T0 + 2, 3);
        assert_eq!(t, vec![T0, T0 + 1, T0 + 2]);
        assert_eq!(col[0].map(|a| a.avg()), Some(1.0));
        assert_eq!(col[1], None);
        assert_eq!(col[2].map(|a| a.avg()), Some(3.0));
    }

    #[test]
    fn downsampling_keeps_min_avg_max_across_batches() {
        let (_d, s) = temp();
        // T0 is a multiple of 60 and 3600; one minute of values 0..60 in three batches.
        assert_eq!(T0 % 3600, 0);
        for chunk in (0..60u64).collect::<Vec<_>>().chunks(20) {
            let pts: Vec<Point> = chunk.iter().map(|i| p("a", T0 + i, *i as f64)).collect();
            s.metrics_write(&pts, T0 + 59).expect("write");
        }
        let (_, col) = read(&s, 1, T0 + 59, 1);
        let agg = col[0].expect("bucket");
        assert_eq!((agg.min, agg.max, agg.count), (0.0, 59.0, 60));
        assert_eq!(agg.avg(), 29.5);
        let (_, hour) = read(&s, 3, T0 + 59, 1);
        assert_eq!(hour[0].expect("hour").count, 60);
    }

    #[test]
    fn ring_wraps_and_old_laps_read_as_gaps() {
        let (_d, s) = temp();
        s.metrics_write(&[p("a", T0, 1.0)], T0).expect("write");
        // One lap later the same slot is reused; the old value is gone.
        let later = T0 + 3600;
        s.metrics_write(&[p("a", later, 2.0)], later)
            .expect("write");
        let (_, col) = read(&s, 0, later, 3600);
        assert_eq!(col[3599].map(|a| a.avg()), Some(2.0));
        assert!(col[..3599].iter().all(Option::is_none));
        // A late point for the previous lap does not clobber the newer bucket.
        s.metrics_write(&[p("a", T0 + 1800, 9.0), p("a", T0, 5.0)], later)
            .expect("write");
        let (_, col) = read(&s, 0, later, 3600);
        assert_eq!(col[3599].map(|a| a.avg()), Some(2.0));
        assert_eq!(col[1799].map(|a| a.avg()), Some(9.0));
    }

    #[test]
    fn footprint_is_fixed_per_series() {
        let (_d, s) = temp();
        // Two days and a bit of one point per 10 s: every tier written, tier 0 wrapped.
        let pts: Vec<Point> = (0..(50 * 360u64))
            .map(|i| p("a", T0 + i * 10, 1.0))
            .collect();
        for chunk in pts.chunks(500) {
            let now = chunk.last().map_or(T0, |x| x.t);
            s.metrics_write(chunk, now).expect("write");
        }
        let rows = s.metrics_row_count().expect("count");
        assert!(rows <= rows_per_series(), "{rows} rows");
        // Tier 0 holds at most 360 distinct slots at 10 s spacing; tier 1 all 2880.
        assert_eq!(rows, 360 + 2880 + 200 + 50);
    }

    #[test]
    fn restart_mid_bucket_keeps_what_was_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.redb");
        {
            let s = Store::open(&path).expect("open");
            s.metrics_write(&[p("a", T0, 10.0)], T0).expect("write");
        }
        let s = Store::open(&path).expect("reopen");
        s.metrics_write(&[p("a", T0 + 30, 20.0)], T0 + 30)
            .expect("write");
        let (_, col) = read(&s, 1, T0 + 30, 1);
        let agg = col[0].expect("minute");
        assert_eq!(
            (agg.min, agg.max, agg.count, agg.avg()),
            (10.0, 20.0, 2, 15.0)
        );
    }

    #[test]
    fn expiry_removes_only_stale_series_under_the_prefix() {
        let (_d, s) = temp();
        s.metrics_write(
            &[
                p("n/c/old/cpu.pct", T0, 1.0),
                p("n/c/new/cpu.pct", T0 + 100, 1.0),
                p("n/h/cpu.busy", T0, 1.0),
            ],
            T0 + 100,
        )
        .expect("write");
        assert_eq!(s.metrics_expire("n/c/", T0 + 50).expect("expire"), 1);
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
        assert_eq!(s.metrics_row_count().expect("rows"), 8);
    }
}
