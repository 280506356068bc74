//! CPU time split from `/proc/stat` (machine-wide, not namespaced), as % of the machine and
//! busy % per core, from the difference between two readings.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use capstan_proto::metric_names as n;

/// Jiffies of one `cpu` line: user nice system idle iowait irq softirq steal.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Times {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl Times {
    fn total(&self) -> u64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }
}

#[derive(Default)]
pub struct Cpu {
    prev: Option<(Times, Vec<Times>)>,
}

/// The aggregate line and one per core.
pub fn parse_stat(text: &str) -> (Times, Vec<Times>) {
    let mut all = Times::default();
    let mut cores = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(label) = fields.next() else { continue };
        if !label.starts_with("cpu") {
            continue;
        }
        let v: Vec<u64> = fields.map(|f| f.parse().unwrap_or(0)).collect();
        let get = |i: usize| v.get(i).copied().unwrap_or(0);
        let t = Times {
            user: get(0),
            nice: get(1),
            system: get(2),
            idle: get(3),
            iowait: get(4),
            irq: get(5),
            softirq: get(6),
            steal: get(7),
        };
        if label == "cpu" {
            all = t;
        } else {
            cores.push(t);
        }
    }
    (all, cores)
}

fn pct(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 * 100.0 / total as f64
    }
}

fn busy(t: &Times) -> u64 {
    t.total() - t.idle - t.iowait
}

fn diff(a: &Times, b: &Times) -> Times {
    Times {
        user: b.user.saturating_sub(a.user),
        nice: b.nice.saturating_sub(a.nice),
        system: b.system.saturating_sub(a.system),
        idle: b.idle.saturating_sub(a.idle),
        iowait: b.iowait.saturating_sub(a.iowait),
        irq: b.irq.saturating_sub(a.irq),
        softirq: b.softirq.saturating_sub(a.softirq),
        steal: b.steal.saturating_sub(a.steal),
    }
}

/// Percentages between two readings of `/proc/stat`.
pub fn percentages(
    prev: &(Times, Vec<Times>),
    now: &(Times, Vec<Times>),
    out: &mut BTreeMap<String, f64>,
) {
    let d = diff(&prev.0, &now.0);
    let total = d.total();
    out.insert(n::CPU_USER.into(), pct(d.user + d.nice, total));
    out.insert(
        n::CPU_SYSTEM.into(),
        pct(d.system + d.irq + d.softirq, total),
    );
    out.insert(n::CPU_IOWAIT.into(), pct(d.iowait, total));
    out.insert(n::CPU_STEAL.into(), pct(d.steal, total));
    out.insert(n::CPU_BUSY.into(), pct(busy(&d), total));
    for (i, (a, b)) in prev.1.iter().zip(now.1.iter()).enumerate() {
        let d = diff(a, b);
        out.insert(
            format!("cpu.{i}.{}", n::CPU_CORE_BUSY),
            pct(busy(&d), d.total()),
        );
    }
}

impl Cpu {
    pub fn collect(
        &mut self,
        root: &Path,
        _now: Instant,
        out: &mut BTreeMap<String, f64>,
    ) -> std::io::Result<()> {
        let reading = parse_stat(&super::read(root, "/proc/stat")?);
        if let Some(prev) = &self.prev {
            percentages(prev, &reading, out);
        }
        self.prev = Some(reading);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_from_two_readings() {
        let a = parse_stat(
            "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0\ncpu1 50 0 25 400 25 0 0 0\n",
        );
        let b = parse_stat(
            "cpu  160 0 70 900 70 0 0 0 0 0\ncpu0 110 0 45 420 25 0 0 0\ncpu1 50 0 25 480 45 0 0 0\n",
        );
        let mut out = BTreeMap::new();
        percentages(&a, &b, &mut out);
        // Δ: user 60, system 20, idle 100, iowait 20 → total 200.
        assert_eq!(out["cpu.user"], 30.0);
        assert_eq!(out["cpu.system"], 10.0);
        assert_eq!(out["cpu.iowait"], 10.0);
        assert_eq!(out["cpu.busy"], 40.0);
        assert_eq!(out["cpu.0.busy"], 80.0);
        assert_eq!(out["cpu.1.busy"], 0.0);
    }
}
