//! The bounded queue between the 1 Hz collector and the beat loop.
//!
//! The collector pushes one sample a second whatever the core's state; the beat takes the
//! oldest unsent samples (at most [`MAX_PER_BEAT`], within a byte budget). Samples carry a
//! sequence number so an acknowledgement stays right even when the collector pushed (and
//! the bound evicted) samples while the beat was in flight.
//!
//! An accepted beat only means the core *received* its samples; the core writes them to
//! disk up to a flush interval later. So when the core answers with a [`MetricsAck`], a
//! sent sample is kept until `committed_beat` reaches the beat that carried it, and when
//! the core's `boot` changes (it restarted, maybe killed before writing) the samples sent
//! to its previous run and not confirmed are sent again. The core ignores samples it
//! already holds, so nothing counts twice. A core that sends no ack gets the plain
//! behaviour: an accepted beat drops what it carried.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use capstan_proto::{MetricsAck, MetricsReport, MetricsSample};

/// Samples kept while the core is unreachable (one a second: five minutes).
pub const BACKLOG: usize = 300;
/// Samples sent in one beat; a longer backlog drains over the next beats.
pub const MAX_PER_BEAT: usize = 60;
/// Serialized samples per beat at most (the core accepts bodies up to 2 MB): a beat the
/// core refuses would also stop presence and task results, so the budget is conservative.
pub const MAX_BEAT_BYTES: usize = 512 * 1024;

struct Entry {
    seq: u64,
    /// The accepted beat that carried it; kept until the core says that beat is on disk.
    sent_in: Option<u64>,
    /// Serialized size, computed once at push rather than at every beat that considers it.
    bytes: usize,
    sample: MetricsSample,
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<Entry>,
    next_seq: u64,
    /// Highest sequence number carried by the beat in flight, and that beat's number.
    in_flight: Option<(u64, u64)>,
    /// The last beat number handed out (Unix microseconds, kept increasing).
    last_beat: u64,
    /// The core run that confirmed the last beat.
    core_boot: Option<u64>,
    /// The core dropped series of this node for its budget (logged on change only).
    over_budget: bool,
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
        inner.entries.push_back(Entry {
            seq,
            sent_in: None,
            bytes,
            sample,
        });
    }

    /// The report for the next beat: the oldest unsent samples, at most
    /// [`MAX_PER_BEAT`] and [`MAX_BEAT_BYTES`] (always at least one when there is one).
    pub fn report(&self) -> MetricsReport {
        let mut inner = self.lock();
        let mut bytes = 0;
        let mut samples = Vec::new();
        let mut last = None;
        for e in inner
            .entries
            .iter()
            .filter(|e| e.sent_in.is_none())
            .take(MAX_PER_BEAT)
        {
            bytes += e.bytes;
            if !samples.is_empty() && bytes > MAX_BEAT_BYTES {
                break;
            }
            samples.push(e.sample.clone());
            last = Some(e.seq);
        }
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let beat = now_us.max(inner.last_beat + 1);
        inner.last_beat = beat;
        inner.in_flight = last.map(|seq| (seq, beat));
        MetricsReport { samples, beat }
    }

    /// The beat carrying the last report was accepted, with the core's ack if it sent one.
    pub fn acknowledge(&self, ack: Option<MetricsAck>) {
        let mut inner = self.lock();
        let in_flight = inner.in_flight.take();
        let Some(ack) = ack else {
            if let Some((last, _)) = in_flight {
                inner.entries.retain(|e| e.seq > last);
            }
            return;
        };
        let over = ack.series_dropped > 0;
        if over != inner.over_budget {
            inner.over_budget = over;
            if over {
                tracing::warn!(
                    "the core stores at most {} metric series per node and has {}; {} new series this node sends are dropped (max_series_per_node in the core's config)",
                    ack.series_budget,
                    ack.series,
                    ack.series_dropped
                );
            } else {
                tracing::info!("the core stores every metric series this node sends again");
            }
        }
        let restarted = inner.core_boot.is_some_and(|b| b != ack.boot);
        inner.core_boot = Some(ack.boot);
        let this_beat = in_flight.map(|(_, beat)| beat);
        for e in &mut inner.entries {
            if let Some((last, beat)) = in_flight
                && e.seq <= last
                && e.sent_in.is_none()
            {
                e.sent_in = Some(beat);
            }
            // Sent to a previous run of the core and not confirmed: it may be lost.
            if restarted && e.sent_in.is_some() && e.sent_in != this_beat {
                e.sent_in = None;
            }
        }
        inner
            .entries
            .retain(|e| e.sent_in.is_none_or(|b| b > ack.committed_beat));
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

    fn ack(boot: u64, committed_beat: u64) -> Option<MetricsAck> {
        Some(MetricsAck {
            boot,
            committed_beat,
            ..MetricsAck::default()
        })
    }

    fn times(r: &MetricsReport) -> Vec<u64> {
        r.samples.iter().map(|s| s.t).collect()
    }

    /// Samples the core received but has not written stay until it has; those sent to a
    /// core that restarted before confirming them are sent again.
    #[test]
    fn sent_samples_stay_until_committed_and_lost_ones_are_resent() {
        let b = Backlog::default();
        for t in 100..103 {
            b.push(sample(t));
        }
        let first = b.report();
        assert_eq!(times(&first), vec![100, 101, 102]);
        // Received, nothing written yet.
        b.acknowledge(ack(7, 0));
        assert_eq!(b.len(), 3);
        b.push(sample(103));
        let second = b.report();
        assert_eq!(times(&second), vec![103], "sent samples are not sent again");
        // The first beat is on disk, the second not yet.
        b.acknowledge(ack(7, first.beat));
        assert_eq!(b.len(), 1);
        // The core restarted (new boot) before writing the second beat: 103 goes again,
        // together with the new sample, once the new run answers.
        b.push(sample(104));
        let third = b.report();
        assert_eq!(times(&third), vec![104]);
        b.acknowledge(ack(8, 0));
        let fourth = b.report();
        assert_eq!(times(&fourth), vec![103]);
        assert!(fourth.beat > third.beat && third.beat > second.beat);
        b.acknowledge(ack(8, fourth.beat));
        assert_eq!(b.len(), 0);
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
        b.acknowledge(None);
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
        b.acknowledge(None);
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
        b.acknowledge(None);
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
