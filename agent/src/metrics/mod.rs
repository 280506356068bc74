//! Host and container metrics, collected once a beat and carried in the heartbeat.
//!
//! One file per subsystem, each keeping its previous counters so it can report rates;
//! the agent (not the core) computes deltas, so every sample stands alone on the wire.
//! Everything is read from procfs/sysfs under `host_root` by parsing the few files we
//! need: in the Docker deployment the host's `/` is mounted at `/host`, and libraries
//! with hard-coded `/proc` paths would report the agent's container instead of the host.
//! A failing subsystem yields a partial sample and a debug log, never a failed beat.
//!
//! Samples wait in a bounded backlog until a beat carrying them is acknowledged, so an
//! outage of the core up to [`BACKLOG`] seconds leaves no gap in the charts.

mod containers;
mod cpu;
mod disk;
mod memory;
mod network;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use capstan_proto::{MetricsReport, MetricsSample};

use crate::docker::DockerSource;

/// Samples kept while the core is unreachable (one per beat).
pub const BACKLOG: usize = 300;
/// Samples sent in one beat; a longer backlog drains over the next beats.
pub const MAX_PER_BEAT: usize = 60;
/// Serialized samples per beat at most (the core accepts bodies up to 2 MB): a beat the
/// core refuses would also stop presence and task results, so the budget is conservative.
pub const MAX_BEAT_BYTES: usize = 512 * 1024;
/// The core's limits on one sample (`core/src/metrics.rs`); kept here so a beat is never
/// refused for its metrics.
pub const MAX_HOST_SERIES: usize = 1000;
pub const MAX_CONTAINERS: usize = 500;
pub const MAX_CONTAINER_SERIES: usize = 200;

pub struct Metrics {
    root: PathBuf,
    cpu: cpu::Cpu,
    disk: disk::Disk,
    network: network::Network,
    containers: containers::Containers,
    backlog: VecDeque<MetricsSample>,
    /// Samples sent in the beat in flight, dropped from the backlog when it succeeds.
    in_flight: usize,
}

impl Metrics {
    pub fn new(host_root: &Path) -> Metrics {
        Metrics {
            root: host_root.to_path_buf(),
            cpu: cpu::Cpu::default(),
            disk: disk::Disk::default(),
            network: network::Network::default(),
            containers: containers::Containers::default(),
            backlog: VecDeque::new(),
            in_flight: 0,
        }
    }

    /// Collects one sample of the host (synchronous procfs reads, microseconds each).
    pub fn sample_host(&mut self) -> BTreeMap<String, f64> {
        let now = Instant::now();
        let mut out = BTreeMap::new();
        let root = self.root.clone();
        let parts: [(&str, Result<(), std::io::Error>); 5] = [
            ("cpu", self.cpu.collect(&root, now, &mut out)),
            ("memory", memory::collect(&root, &mut out)),
            ("disk", self.disk.collect(&root, now, &mut out)),
            ("filesystems", disk::filesystems(&root, &mut out)),
            ("network", self.network.collect(&root, now, &mut out)),
        ];
        for (name, result) in parts {
            if let Err(e) = result {
                tracing::debug!(subsystem = name, error = %e, "metrics subsystem failed");
            }
        }
        clean(out, MAX_HOST_SERIES)
    }

    /// Collects a sample (host and containers), appends it to the backlog and returns the
    /// report for this beat: the oldest unsent samples, at most [`MAX_PER_BEAT`].
    pub async fn collect(&mut self, docker: &DockerSource) -> MetricsReport {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let host = self.sample_host();
        let containers = match self.containers.collect(&self.root, docker).await {
            Ok(mut c) => {
                c.truncate(MAX_CONTAINERS);
                for ct in &mut c {
                    ct.values = clean(std::mem::take(&mut ct.values), MAX_CONTAINER_SERIES);
                }
                c
            }
            Err(e) => {
                tracing::debug!(error = %e, "container metrics unavailable");
                Vec::new()
            }
        };
        self.push(MetricsSample {
            t,
            host,
            containers,
            vms: Vec::new(),
        });
        self.report()
    }

    fn push(&mut self, sample: MetricsSample) {
        if self.backlog.len() == BACKLOG {
            self.backlog.pop_front();
        }
        self.backlog.push_back(sample);
    }

    fn report(&mut self) -> MetricsReport {
        let mut bytes = 0;
        let mut n = 0;
        for s in self.backlog.iter().take(MAX_PER_BEAT) {
            bytes += serde_json::to_vec(s).map_or(0, |v| v.len());
            if n > 0 && bytes > MAX_BEAT_BYTES {
                break;
            }
            n += 1;
        }
        self.in_flight = n;
        MetricsReport {
            samples: self.backlog.iter().take(self.in_flight).cloned().collect(),
        }
    }

    /// The beat carrying the last report was accepted: forget what it carried.
    pub fn acknowledge(&mut self) {
        let n = self.in_flight.min(self.backlog.len());
        self.backlog.drain(..n);
        self.in_flight = 0;
    }
}

/// Keeps finite values under names the core accepts (`[A-Za-z0-9._-/:@]`, ≤ 160 bytes;
/// other characters, e.g. in mount points, become `_`), at most `max` of them.
fn clean(values: BTreeMap<String, f64>, max: usize) -> BTreeMap<String, f64> {
    values
        .into_iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| {
            let mut name: String = k
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-/:@".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            name.truncate(160);
            (name, v)
        })
        .take(max)
        .collect()
}

/// Reads a file under the host root (`root` + absolute path).
fn read(root: &Path, path: &str) -> std::io::Result<String> {
    std::fs::read_to_string(under(root, path))
}

fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Per-second rate of a counter, `None` on the first reading or when it went backwards
/// (counter reset, device re-created).
fn rate(prev: Option<u64>, now: u64, secs: f64) -> Option<f64> {
    let prev = prev?;
    if now < prev || secs <= 0.0 {
        return None;
    }
    Some((now - prev) as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: u64) -> MetricsSample {
        MetricsSample {
            t,
            ..MetricsSample::default()
        }
    }

    #[test]
    fn backlog_is_bounded_and_drains_oldest_first_after_acknowledgement() {
        let mut m = Metrics::new(Path::new("/"));
        for t in 0..(BACKLOG as u64 + 10) {
            m.push(sample(t));
            // The core is unreachable: nothing is acknowledged.
            let _ = m.report();
        }
        assert_eq!(m.backlog.len(), BACKLOG);
        let first = m.report();
        assert_eq!(first.samples.len(), MAX_PER_BEAT);
        assert_eq!(first.samples[0].t, 10);
        m.acknowledge();
        assert_eq!(m.backlog.len(), BACKLOG - MAX_PER_BEAT);
        let second = m.report();
        assert_eq!(second.samples[0].t, 10 + MAX_PER_BEAT as u64);
    }

    /// The agent's figures against the kernel's, obtained another way (syscalls, `df`).
    #[test]
    fn host_figures_match_the_machine() {
        let mut m = Metrics::new(Path::new("/"));
        let _ = m.sample_host();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let s = m.sample_host();

        let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a properly sized out-parameter.
        assert_eq!(unsafe { libc::sysinfo(&mut info) }, 0);
        let unit = u64::from(info.mem_unit);
        let total = info.totalram as u64 * unit;
        assert_eq!(s["mem.total"], total as f64);
        let swap = info.totalswap as u64 * unit;
        assert_eq!(s["swap.total"], swap as f64);
        assert!((s["host.uptime"] - info.uptime as f64).abs() <= 2.0);
        let load1 = info.loads[0] as f64 / 65536.0;
        assert!(
            (s["load.1"] - load1).abs() < 0.5,
            "{} vs {load1}",
            s["load.1"]
        );
        assert!(s["mem.used"] > 0.0 && s["mem.used"] < s["mem.total"]);

        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_core = s
            .keys()
            .filter(|k| k.starts_with("cpu.") && k.ends_with(".busy") && k.as_str() != "cpu.busy")
            .count();
        assert_eq!(per_core, cores);
        for k in ["cpu.busy", "cpu.user", "cpu.system"] {
            assert!((0.0..=100.0).contains(&s[k]), "{k} = {}", s[k]);
        }

        // `df -B1 /`: size and used of the root filesystem, as df computes them.
        let out = std::process::Command::new("df")
            .args(["-B1", "--output=size,used", "/"])
            .output()
            .expect("df");
        let text = String::from_utf8_lossy(&out.stdout);
        let nums: Vec<f64> = text
            .lines()
            .nth(1)
            .expect("df row")
            .split_ascii_whitespace()
            .map(|v| v.parse().expect("number"))
            .collect();
        assert_eq!(s["fs./.size"], nums[0]);
        // Used changes as other processes write; 1 % of the filesystem is plenty.
        assert!((s["fs./.used"] - nums[1]).abs() < nums[0] * 0.01);
    }

    #[test]
    fn names_are_made_acceptable_and_values_finite() {
        let mut m = BTreeMap::new();
        m.insert("fs./mnt/my disk+1.used".to_string(), 1.0);
        m.insert("cpu.busy".to_string(), f64::NAN);
        let c = clean(m, 10);
        assert_eq!(c.keys().collect::<Vec<_>>(), ["fs./mnt/my_disk_1.used"]);
    }

    #[test]
    fn a_beat_stays_under_the_byte_budget() {
        let mut m = Metrics::new(Path::new("/"));
        let big: BTreeMap<String, f64> = (0..1000)
            .map(|i| (format!("series.{i:04}.value"), 1.5))
            .collect();
        for t in 0..MAX_PER_BEAT as u64 {
            m.push(MetricsSample {
                t,
                host: big.clone(),
                ..MetricsSample::default()
            });
        }
        let r = m.report();
        let bytes = serde_json::to_vec(&r).expect("json").len();
        assert!(r.samples.len() < MAX_PER_BEAT && !r.samples.is_empty());
        assert!(bytes <= MAX_BEAT_BYTES + 1024, "{bytes}");
    }

    #[test]
    fn rate_ignores_first_reading_and_resets() {
        assert_eq!(rate(None, 10, 1.0), None);
        assert_eq!(rate(Some(20), 10, 1.0), None);
        assert_eq!(rate(Some(10), 30, 2.0), Some(10.0));
    }
}
