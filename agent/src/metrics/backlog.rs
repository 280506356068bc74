//! The bounded queue between the 1 Hz collector and the beat loop.
//!
//! The collector pushes one sample a second whatever the core's state; the beat takes the
//! oldest unsent samples (at most [`MAX_PER_BEAT`], within a byte budget) and, once the
//! core acknowledged the beat, drops exactly those. Samples carry a sequence number so an
//! acknowledgement stays right even when the collector pushed (and the bound evicted)
//! samples while the beat was in flight.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use capstan_proto::{MetricsReport, MetricsSample};

/// Samples kept while the core is unreachable (one a second: five minutes).
pub const BACKLOG: usize = 300;
/// Samples sent in one beat; a longer backlog drains over the next beats.
pub const MAX_PER_BEAT: usize = 60;
/// Serialized samples per beat at most (the core accepts bodies up to 2 MB): a beat the
/// core refuses would also stop presence and task results, so the budget is conservative.
pub const MAX_BEAT_BYTES: usize = 512 * 1024;

struct Entry {
    seq: u64,
    /// Serialized size, computed once at push rather than at every beat that considers it.
    bytes: usize,
    sample: MetricsSample,
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<Entry>,
    next_seq: u64,
    /// Highest sequence number carried by the beat in flight.
    in_flight: Option<u64>,
}

/// Shared by the collector task and the beat loop. The lock is only held for queue
/// operations, never across an `.await`.
#[derive(Clone, Default)]
pub struct Backlog {
    inner: Arc<Mutex<Inner>>,
}

impl Backlog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a queue that is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, sample: MetricsSample) {
        let bytes = serde_json::to_vec(&sample).map_or(0, |v| v.len());
        let mut inner = self.lock();
        if inner.entries.len() == BACKLOG {
            inner.entries.pop_front();
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.entries.push_back(Entry { seq, bytes, sample });
    }

    /// The report for the next beat: the oldest unsent samples, at most
    /// [`MAX_PER_BEAT`] and [`MAX_BEAT_BYTES`] (always at least one when there is one).
    pub fn report(&self) -> MetricsReport {
        let mut inner = self.lock();
        let mut bytes = 0;
        let mut samples = Vec::new();
        let mut last = None;
        for e in inner.entries.iter().take(MAX_PER_BEAT) {
            bytes += e.bytes;
            if !samples.is_empty() && bytes > MAX_BEAT_BYTES {
                break;
            }
            samples.push(e.sample.clone());
            last = Some(e.seq);
        }
        inner.in_flight = last;
        MetricsReport { samples }
    }

    /// The beat carrying the last report was accepted: forget what it carried.
    pub fn acknowledge(&self) {
        let mut inner = self.lock();
        if let Some(last) = inner.in_flight.take() {
            while inner.entries.front().is_some_and(|e| e.seq <= last) {
                inner.entries.pop_front();
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample(t: u64) -> MetricsSample {
        MetricsSample {
            t,
            ..MetricsSample::default()
        }
    }

    #[test]
    fn backlog_is_bounded_and_drains_oldest_first_after_acknowledgement() {
        let b = Backlog::default();
        for t in 0..(BACKLOG as u64 + 10) {
            b.push(sample(t));
            // The core is unreachable: nothing is acknowledged.
            let _ = b.report();
        }
        assert_eq!(b.len(), BACKLOG);
        let first = b.report();
        assert_eq!(first.samples.len(), MAX_PER_BEAT);
        assert_eq!(first.samples[0].t, 10);
        b.acknowledge();
        assert_eq!(b.len(), BACKLOG - MAX_PER_BEAT);
        let second = b.report();
        assert_eq!(second.samples[0].t, 10 + MAX_PER_BEAT as u64);
    }

    /// The collector keeps pushing while a beat is in flight; the acknowledgement must
    /// drop what that beat carried, not the same count from a queue that moved.
    #[test]
    fn acknowledgement_drops_exactly_what_was_sent_while_collection_continues() {
        let b = Backlog::default();
        for t in 0..BACKLOG as u64 {
            b.push(sample(t));
        }
        let sent = b.report();
        assert_eq!(
            sent.samples.last().map(|s| s.t),
            Some(MAX_PER_BEAT as u64 - 1)
        );
        // Five more samples evict the five oldest, some of which were in flight.
        for t in BACKLOG as u64..BACKLOG as u64 + 5 {
            b.push(sample(t));
        }
        b.acknowledge();
        let next = b.report();
        assert_eq!(next.samples[0].t, MAX_PER_BEAT as u64);
        // A failed beat acknowledges nothing.
        let before = b.len();
        let _ = b.report();
        assert_eq!(b.len(), before);
    }

    #[test]
    fn acknowledging_without_a_report_keeps_everything() {
        let b = Backlog::default();
        b.push(sample(1));
        b.acknowledge();
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_beat_stays_under_the_byte_budget() {
        let b = Backlog::default();
        let big: BTreeMap<String, f64> = (0..1000)
            .map(|i| (format!("series.{i:04}.value"), 1.5))
            .collect();
        for t in 0..MAX_PER_BEAT as u64 {
            b.push(MetricsSample {
                t,
                host: big.clone(),
                ..MetricsSample::default()
            });
        }
        let r = b.report();
        let bytes = serde_json::to_vec(&r).expect("json").len();
        assert!(r.samples.len() < MAX_PER_BEAT && !r.samples.is_empty());
        assert!(bytes <= MAX_BEAT_BYTES + 1024, "{bytes}");
    }
}
