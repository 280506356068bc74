//! Per-container CPU, memory, network and block I/O from cgroup files under the host
//! root, for the containers Docker lists as running (`inventory` decides when to ask
//! Docker), plus health, restart count and custom metrics. Each container's cgroup
//! files are located and opened once and re-read while it runs (`reread`).
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
use super::reread::Reread;
use crate::docker::stats::{ContainerMeta, Inspected};

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

#[derive(Default)]
pub struct Containers {
    prev: HashMap<String, (Instant, Counters)>,
    /// Each running container's cgroup files: located and opened once.
    files: HashMap<String, Files>,
}

impl Containers {
    /// One sample per listed container: cgroup figures and rates, Docker's health and
    /// restart count, and custom metrics from the container's poller.
    pub fn collect(
        &mut self,
        root: &Path,
        list: &[(ContainerMeta, Inspected)],
        custom: &CustomMetrics,
        now: Instant,
    ) -> Vec<ContainerSample> {
        let mut seen = HashMap::with_capacity(list.len());
        let mut out = Vec::with_capacity(list.len());
        for (c, inspected) in list {
            let mut values = BTreeMap::new();
            // A restart keeps the ID but brings a new init (and network namespace):
            // the files opened for the old one are let go.
            let mut files = self
                .files
                .remove(&c.id)
                .filter(|f| f.pid == inspected.pid)
                .or_else(|| cgroup_dirs(root, &c.id).map(|d| open_files(root, d, inspected.pid)));
            let reading = files.as_mut().and_then(read_files);
            if let (Some(f), Some(_)) = (files, reading) {
                self.files.insert(c.id.clone(), f);
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
                health: inspected.health.clone(),
                restarts: inspected.restarts,
                values,
                custom: status,
            });
        }
        // Removed containers drop out of the previous readings too.
        self.prev = seen;
        let prev = &self.prev;
        self.files.retain(|id, _| prev.contains_key(id));
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
    read_files(&mut open_files(root, cgroup_dirs(root, id)?, 0))
}

/// A running container's files, opened once and re-read every second.
struct Files {
    v2: bool,
    /// `cpu.stat` (v2) or `cpuacct.usage` (v1).
    cpu: Reread,
    /// `memory.current` or `memory.usage_in_bytes`.
    usage: Reread,
    memory_stat: Reread,
    /// `memory.max` or `memory.limit_in_bytes`.
    limit: Reread,
    /// `io.stat` or `blkio.throttle.io_service_bytes`.
    io: Reread,
    /// The init process Docker reported when these were opened.
    pid: u32,
    /// `/proc/<pid>/net/dev` of the container's init: network lives in its namespace.
    net: Reread,
}

fn open_files(root: &Path, (cpu, mem, blk, v2): Dirs, pid: u32) -> Files {
    let (cpu_file, usage, limit, io) = if v2 {
        ("cpu.stat", "memory.current", "memory.max", "io.stat")
    } else {
        (
            "cpuacct.usage",
            "memory.usage_in_bytes",
            "memory.limit_in_bytes",
            "blkio.throttle.io_service_bytes",
        )
    };
    Files {
        v2,
        cpu: Reread::new(cpu.join(cpu_file)),
        usage: Reread::new(mem.join(usage)),
        memory_stat: Reread::new(mem.join("memory.stat")),
        limit: Reread::new(mem.join(limit)),
        io: Reread::new(blk.join(io)),
        pid,
        net: Reread::new(super::under(root, &format!("/proc/{pid}/net/dev"))),
    }
}

fn number(r: &mut Reread) -> Option<u64> {
    r.read().ok()?.trim().parse().ok()
}

/// One reading of a container's counters and memory, `None` when its cgroup is gone.
fn read_files(f: &mut Files) -> Option<(Counters, Memory)> {
    let mut c = Counters::default();
    let mut m = Memory::default();
    if f.v2 {
        c.cpu_ns = stat_value(&f.cpu.read().ok()?, "usage_usec")? * 1000;
    } else {
        c.cpu_ns = number(&mut f.cpu)?;
    }
    let usage = number(&mut f.usage).unwrap_or(0);
    let mstat = f.memory_stat.read().unwrap_or_default();
    let io = f.io.read().unwrap_or_default();
    if f.v2 {
        let inactive = stat_value(&mstat, "inactive_file").unwrap_or(0);
        m.used = usage.saturating_sub(inactive);
        m.limit = number(&mut f.limit).unwrap_or(0);
        (c.read_bytes, c.write_bytes) = parse_io_stat_v2(&io);
    } else {
        let inactive = stat_value(&mstat, "total_inactive_file").unwrap_or(0);
        m.used = usage.saturating_sub(inactive);
        // v1 reports "unlimited" as a page-rounded i64::MAX.
        m.limit = number(&mut f.limit).filter(|l| *l < (1 << 60)).unwrap_or(0);
        (c.read_bytes, c.write_bytes) = parse_blkio_v1(&io);
    }
    let text = if f.pid > 0 { f.net.read().ok() } else { None };
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
