//! Host, container and VM metrics, collected once a second by a task of their own and
//! carried to the core by the beats.
//!
//! Collection is decoupled from beating: the beat loop backs off while the core is
//! unreachable, the collector does not. It wakes just after each wall-clock second
//! (one sample per second, consecutive timestamps) and pushes a sample into the
//! [`Backlog`]; each beat takes the oldest unsent samples, and only an acknowledged beat
//! removes them. An outage up to [`backlog::BACKLOG`] seconds therefore leaves no gap in the
//! charts.
//!
//! One file per subsystem, each keeping its previous counters so it can report rates;
//! the agent (not the core) computes deltas, so every sample stands alone on the wire.
//! Host figures are read from procfs/sysfs under `host_root` by parsing the few files we
//! need: in the Docker deployment the host's `/` is mounted at `/host`, and libraries
//! with hard-coded `/proc` paths would report the agent's container instead of the host.
//! Containers come from `inventory` (Docker listed on change, not every second) and
//! cgroup files; custom metrics from per-container pollers (`custom`) that the collector
//! never waits for; VMs from QEMU processes and libvirt's state files (`vms`).
//! A failing subsystem yields a partial sample and a debug log, never a missing sample.

mod backlog;
mod containers;
mod cpu;
mod custom;
mod disk;
mod inventory;
mod memory;
mod network;
mod reread;
mod vms;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use capstan_proto::MetricsSample;
use capstan_proto::metric_limits::{MAX_CONTAINER_SERIES, MAX_CONTAINERS, MAX_HOST_SERIES};

pub use backlog::Backlog;
pub use custom::SetupError;

use crate::docker::DockerSource;

/// Samples are taken this long after each wall-clock second, so a timer firing a hair
/// early never stamps two samples with the same second.
const PHASE: Duration = Duration::from_millis(20);
/// Longest the collector waits for Docker (list, inspects) in one second.
const DOCKER_BUDGET: Duration = Duration::from_millis(800);

pub struct Collector {
    root: PathBuf,
    cpu: cpu::Cpu,
    disk: disk::Disk,
    filesystems: disk::Filesystems,
    network: network::Network,
    containers: containers::Containers,
    inventory: inventory::Inventory,
    custom: custom::CustomMetrics,
    vms: vms::Vms,
}

impl Collector {
    pub fn new(host_root: &Path, docker: Arc<DockerSource>) -> Result<Collector, SetupError> {
        Ok(Collector {
            root: host_root.to_path_buf(),
            cpu: cpu::Cpu::default(),
            disk: disk::Disk::default(),
            filesystems: disk::Filesystems::default(),
            network: network::Network::default(),
            containers: containers::Containers::default(),
            inventory: inventory::Inventory::new(docker),
            custom: custom::CustomMetrics::new()?,
            vms: vms::Vms::default(),
        })
    }

    /// Collects a sample every second into `backlog`, forever (until aborted).
    pub async fn run(mut self, backlog: Backlog) {
        loop {
            let since_epoch = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let into_second = Duration::from_nanos(u64::from(since_epoch.subsec_nanos()));
            let wait = if into_second < PHASE {
                PHASE - into_second
            } else {
                Duration::from_secs(1) - into_second + PHASE
            };
            tokio::time::sleep(wait).await;
            let sample = self.collect().await;
            backlog.push(sample);
        }
    }

    /// One sample of everything.
    pub async fn collect(&mut self) -> MetricsSample {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let host = self.sample_host();
        // A hung dockerd must not hold the host figures back (bollard's own timeout is
        // 10 s): past the budget this second's sample goes without containers.
        let listed = tokio::time::timeout(DOCKER_BUDGET, self.inventory.current()).await;
        let containers = match listed {
            Ok(Ok(list)) => {
                let labelled: Vec<_> = list.iter().map(|(c, _)| c).collect();
                self.custom.sync(&labelled);
                let now = Instant::now();
                let mut c = self
                    .containers
                    .collect(&self.root, &list, &self.custom, now);
                c.truncate(MAX_CONTAINERS);
                for ct in &mut c {
                    ct.values = clean(std::mem::take(&mut ct.values), MAX_CONTAINER_SERIES);
                }
                c
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "container metrics unavailable");
                Vec::new()
            }
            Err(_) => {
                tracing::debug!(
                    budget_ms = DOCKER_BUDGET.as_millis() as u64,
                    "docker too slow: sample without containers"
                );
                Vec::new()
            }
        };
        let vms = self.vms.collect(&self.root, Instant::now());
        MetricsSample {
            t,
            host,
            containers,
            vms,
        }
    }

    /// Collects one sample of the host (synchronous procfs reads, microseconds each).
    pub fn sample_host(&mut self) -> BTreeMap<String, f64> {
        let now = Instant::now();
        let mut out = BTreeMap::new();
        let root = &self.root;
        let parts: [(&str, Result<(), std::io::Error>); 5] = [
            ("cpu", self.cpu.collect(root, now, &mut out)),
            ("memory", memory::collect(root, &mut out)),
            ("disk", self.disk.collect(root, now, &mut out)),
            ("filesystems", self.filesystems.collect(root, now, &mut out)),
            ("network", self.network.collect(root, now, &mut out)),
        ];
        for (name, result) in parts {
            if let Err(e) = result {
                tracing::debug!(subsystem = name, error = %e, "metrics subsystem failed");
            }
        }
        clean(out, MAX_HOST_SERIES)
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

    fn collector() -> Collector {
        let docker = Arc::new(DockerSource::new("/nonexistent/docker.sock"));
        Collector::new(Path::new("/"), docker).expect("collector")
    }

    /// The agent's figures against the kernel's, obtained another way (syscalls, `df`).
    #[test]
    fn host_figures_match_the_machine() {
        let mut m = collector();
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
    fn rate_ignores_first_reading_and_resets() {
        assert_eq!(rate(None, 10, 1.0), None);
        assert_eq!(rate(Some(20), 10, 1.0), None);
        assert_eq!(rate(Some(10), 30, 2.0), Some(10.0));
    }
}
