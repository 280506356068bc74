//! Per-container CPU, memory, network and block I/O from cgroup files under the host
//! root, for the containers Docker lists as running (`inventory` decides when to ask
//! Docker), plus health, restart count and custom metrics. Each container's cgroup
//! directory is located once and remembered while it runs.
//!
//! cgroup v1 (`/sys/fs/cgroup/{cpuacct,memory,blkio}/docker/<id>/`) and v2 (unified:
//! `/sys/fs/cgroup/system.slice/docker-<id>.scope/` or `/sys/fs/cgroup/docker/<id>/`) are
//! both read; the cgroupfs and systemd drivers place containers differently.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use capstan_proto::ContainerSample;
use capstan_proto::metric_names as n;

use super::custom::CustomMetrics;
use crate::docker::stats::{ContainerHealth, ContainerMeta};

/// Cumulative counters of one container.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub cpu_ns: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Memory figures of one container.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Memory {
    pub used: u64,
    /// 0 when unlimited.
    pub limit: u64,
}

/// A container's cgroup directories: (cpu, memory, blkio, unified); all the same on v2.
type Dirs = (PathBuf, PathBuf, PathBuf, bool);

/// Where to read a running container: found once, not probed every second.
struct Location {
    dirs: Dirs,
    /// A process in the container's network namespace (its init), once known.
    pid: Option<u32>,
}

#[derive(Default)]
pub struct Containers {
    prev: HashMap<String, (Instant, Counters)>,
    located: HashMap<String, Location>,
}

impl Containers {
    /// One sample per listed container: cgroup figures and rates, Docker's health and
    /// restart count, and custom metrics from the container's poller.
    pub fn collect(
        &mut self,
        root: &Path,
        list: &[(ContainerMeta, ContainerHealth)],
        custom: &CustomMetrics,
        now: Instant,
    ) -> Vec<ContainerSample> {
        let mut seen = HashMap::with_capacity(list.len());
        let mut out = Vec::with_capacity(list.len());
        for (c, health) in list {
            let mut values = BTreeMap::new();
            let mut location = self
                .located
                .remove(&c.id)
                .or_else(|| cgroup_dirs(root, &c.id).map(|dirs| Location { dirs, pid: None }));
            let reading = location
                .as_mut()
                .and_then(|l| read_dirs(root, &l.dirs, &mut l.pid));
            if let (Some(l), Some(_)) = (location, reading) {
                self.located.insert(c.id.clone(), l);
            }
            if let Some((counters, mem)) = reading {
                values.insert(n::CT_MEM_USED.to_string(), mem.used as f64);
                values.insert(n::CT_MEM_LIMIT.to_string(), mem.limit as f64);
                if let Some((then, p)) = self.prev.get(&c.id) {
                    let secs = now.duration_since(*then).as_secs_f64();
                    let fields = [
                        (n::CT_CPU_PCT, p.cpu_ns, counters.cpu_ns, 1e-7),
                        (n::CT_BLK_READ_BPS, p.read_bytes, counters.read_bytes, 1.0),
                        (
                            n::CT_BLK_WRITE_BPS,
                            p.write_bytes,
                            counters.write_bytes,
                            1.0,
                        ),
                        (n::CT_NET_RX_BPS, p.rx_bytes, counters.rx_bytes, 1.0),
                        (n::CT_NET_TX_BPS, p.tx_bytes, counters.tx_bytes, 1.0),
                    ];
                    for (name, before, after, scale) in fields {
                        if let Some(r) = super::rate(Some(before), after, secs) {
                            values.insert(name.to_string(), r * scale);
                        }
                    }
                }
                seen.insert(c.id.clone(), (now, counters));
            }
            values.retain(|_, v| v.is_finite());
            let status = custom.latest(&c.id).map(|(series, status)| {
                values.extend(series);
                status
            });
            out.push(ContainerSample {
                id: c.id.chars().take(12).collect(),
                name: c.name.clone(),
                image: c.image.clone(),
                state: c.state.clone(),
                status: c.status.clone(),
                health: health.health.clone(),
                restarts: health.restarts,
                values,
                custom: status,
            });
        }
        // Removed containers drop out of the previous readings too.
        self.prev = seen;
        let prev = &self.prev;
        self.located.retain(|id, _| prev.contains_key(id));
        out
    }
}

/// The container's cgroup directories, `None` when it has none (yet).
fn cgroup_dirs(root: &Path, id: &str) -> Option<Dirs> {
    let base = super::under(root, "/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        let candidates = [
            base.join("system.slice").join(format!("docker-{id}.scope")),
            base.join("docker").join(id),
        ];
        let dir = candidates.into_iter().find(|d| d.is_dir())?;
        return Some((dir.clone(), dir.clone(), dir, true));
    }
    let v1 = |controller: &str| {
        [
            base.join(controller).join("docker").join(id),
            base.join(controller)
                .join("system.slice")
                .join(format!("docker-{id}.scope")),
        ]
        .into_iter()
        .find(|d| d.is_dir())
    };
    Some((v1("cpuacct")?, v1("memory")?, v1("blkio")?, false))
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat).
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// v1 `blkio.throttle.io_service_bytes`: `8:0 Read 123` lines, summed over devices.
pub fn parse_blkio_v1(text: &str) -> (u64, u64) {
    let mut r = 0;
    let mut w = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let v: u64 = f[2].parse().unwrap_or(0);
        match f[1] {
            "Read" => r += v,
            "Write" => w += v,
            _ => {}
        }
    }
    (r, w)
}

/// v2 `io.stat`: `8:0 rbytes=1 wbytes=2 …` lines, summed over devices.
pub fn parse_io_stat_v2(text: &str) -> (u64, u64) {
    let mut r = 0;
    let mut w = 0;
    for field in text.split_ascii_whitespace() {
        if let Some(v) = field.strip_prefix("rbytes=") {
            r += v.parse().unwrap_or(0);
        } else if let Some(v) = field.strip_prefix("wbytes=") {
            w += v.parse().unwrap_or(0);
        }
    }
    (r, w)
}

/// Reads one container's counters and memory, `None` when its cgroup is gone.
#[cfg(test)]
pub fn read_cgroup(root: &Path, id: &str) -> Option<(Counters, Memory)> {
    read_dirs(root, &cgroup_dirs(root, id)?, &mut None)
}

fn read_dirs(
    root: &Path,
    (cpu, mem, blk, v2): &Dirs,
    pid: &mut Option<u32>,
) -> Option<(Counters, Memory)> {
    let v2 = *v2;
    let mut c = Counters::default();
    let mut m = Memory::default();
    if v2 {
        let stat = std::fs::read_to_string(cpu.join("cpu.stat")).ok()?;
        c.cpu_ns = stat_value(&stat, "usage_usec")? * 1000;
        let usage = read_u64(&mem.join("memory.current")).unwrap_or(0);
        let mstat = std::fs::read_to_string(mem.join("memory.stat")).unwrap_or_default();
        let inactive = stat_value(&mstat, "inactive_file").unwrap_or(0);
        m.used = usage.saturating_sub(inactive);
        m.limit = read_u64(&mem.join("memory.max")).unwrap_or(0);
        let io = std::fs::read_to_string(blk.join("io.stat")).unwrap_or_default();
        (c.read_bytes, c.write_bytes) = parse_io_stat_v2(&io);
    } else {
        c.cpu_ns = read_u64(&cpu.join("cpuacct.usage"))?;
        let usage = read_u64(&mem.join("memory.usage_in_bytes")).unwrap_or(0);
        let mstat = std::fs::read_to_string(mem.join("memory.stat")).unwrap_or_default();
        let inactive = stat_value(&mstat, "total_inactive_file").unwrap_or(0);
        m.used = usage.saturating_sub(inactive);
        // v1 reports "unlimited" as a page-rounded i64::MAX.
        m.limit = read_u64(&mem.join("memory.limit_in_bytes"))
            .filter(|l| *l < (1 << 60))
            .unwrap_or(0);
        let io = std::fs::read_to_string(blk.join("blkio.throttle.io_service_bytes"))
            .unwrap_or_default();
        (c.read_bytes, c.write_bytes) = parse_blkio_v1(&io);
    }
    // Network lives in the container's namespace: read it through one of its processes.
    // The first one is the container's init, which lives as long as the container, so it
    // is remembered rather than looked up in `cgroup.procs` every second.
    let text = pid
        .and_then(|p| super::read(root, &format!("/proc/{p}/net/dev")).ok())
        .or_else(|| {
            let procs = std::fs::read_to_string(cpu.join("cgroup.procs")).ok()?;
            let first: u32 = procs.lines().next()?.trim().parse().ok()?;
            *pid = Some(first);
            super::read(root, &format!("/proc/{first}/net/dev")).ok()
        });
    if let Some(text) = text {
        let t = super::network::total(&super::network::parse_net_dev(&text));
        c.rx_bytes = t.rx_bytes;
        c.tx_bytes = t.tx_bytes;
    }
    Some((c, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_formats() {
        assert_eq!(
            parse_blkio_v1("8:0 Read 100\n8:0 Write 50\n8:0 Sync 150\n8:16 Read 1\nTotal 151\n"),
            (101, 50)
        );
        assert_eq!(
            parse_io_stat_v2("8:0 rbytes=10 wbytes=20 rios=1 wios=2\n8:16 rbytes=1 wbytes=0\n"),
            (11, 20)
        );
    }

    #[test]
    fn v2_cgroup_is_read_under_a_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().join("sys/fs/cgroup");
        let ct = base.join("system.slice/docker-abc.scope");
        std::fs::create_dir_all(&ct).expect("mkdir");
        std::fs::write(base.join("cgroup.controllers"), "cpu memory io").expect("write");
        std::fs::write(ct.join("cpu.stat"), "usage_usec 2000\nuser_usec 1000\n").expect("w");
        std::fs::write(ct.join("memory.current"), "1000\n").expect("w");
        std::fs::write(ct.join("memory.stat"), "anon 10\ninactive_file 300\n").expect("w");
        std::fs::write(ct.join("memory.max"), "max\n").expect("w");
        std::fs::write(ct.join("io.stat"), "8:0 rbytes=5 wbytes=6\n").expect("w");
        let (c, m) = read_cgroup(dir.path(), "abc").expect("read");
        assert_eq!(c.cpu_ns, 2_000_000);
        assert_eq!((c.read_bytes, c.write_bytes), (5, 6));
        assert_eq!(
            m,
            Memory {
                used: 700,
                limit: 0
            }
        );
    }
}
