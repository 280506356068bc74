//! Heartbeat bodies: one template per simulated node, serialized once from
//! `capstan-proto` types (so the JSON is exactly what the real agent sends), with every
//! number in a fixed-width slot that a beat overwrites in place.
//!
//! Numbers are serialized as sentinels, found again in the text, and replaced by spaces;
//! rendering writes each new value right-aligned into its slot. Leading spaces before a
//! JSON number are insignificant whitespace, so every rendered body stays valid JSON.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Result, bail};
use capstan_proto::{
    ContainerSample, HeartbeatRequest, MetricsReport, MetricsSample, PROTOCOL_VERSION,
};

/// Serializes (ryu, shortest form) as 15 characters: the width of a value slot.
const VALUE_SENTINEL: f64 = 123_456_789_012.25;
/// Largest value written, so every value fits the slot with one decimal.
const VALUE_MAX: f64 = 9.9e12;
const T_SENTINEL: u64 = 9_999_999_901;
const UPTIME_SENTINEL: u64 = 9_999_999_902;

/// How big one beat is.
#[derive(Debug, Clone)]
pub struct Shape {
    pub host_series: usize,
    pub containers: usize,
    pub container_series: usize,
}

/// What a value slot holds: a base and a spread (value = base + spread × noise).
#[derive(Debug, Clone, Copy)]
struct Range {
    base: f64,
    spread: f64,
}

const fn r(base: f64, spread: f64) -> Range {
    Range { base, spread }
}

#[derive(Debug, Clone, Copy)]
enum SlotKind {
    Value(Range),
    Time,
    Uptime,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    offset: usize,
    width: usize,
    kind: SlotKind,
}

/// One node's body, ready to render.
pub struct Template {
    pub id: String,
    pub key: String,
    node: u64,
    body: Vec<u8>,
    slots: Vec<Slot>,
}

/// Host series like a real 8-core Docker host's, cut or extended to `n`.
fn host_series(n: usize) -> Vec<(String, Range)> {
    let mut out: Vec<(String, Range)> = Vec::new();
    for f in ["user", "system", "iowait", "steal", "busy"] {
        out.push((format!("cpu.{f}"), r(5.0, 30.0)));
    }
    for c in 0..8 {
        out.push((format!("cpu.{c}.busy"), r(0.0, 100.0)));
    }
    for f in ["1", "5", "15"] {
        out.push((format!("load.{f}"), r(0.2, 4.0)));
    }
    out.push(("mem.total".into(), r(34_359_738_368.0, 0.0)));
    out.push(("mem.used".into(), r(8e9, 4e9)));
    out.push(("mem.available".into(), r(2e10, 4e9)));
    out.push(("mem.cached".into(), r(6e9, 1e9)));
    out.push(("mem.buffers".into(), r(3e8, 1e8)));
    out.push(("swap.total".into(), r(2_147_483_648.0, 0.0)));
    out.push(("swap.used".into(), r(0.0, 1e7)));
    out.push(("host.uptime".into(), r(864_000.0, 0.0)));
    out.push(("host.procs".into(), r(400.0, 50.0)));
    for fs in ["/", "/var/lib/docker", "/boot"] {
        out.push((format!("fs.{fs}.size"), r(5e11, 0.0)));
        out.push((format!("fs.{fs}.used"), r(2e11, 1e8)));
        out.push((format!("fs.{fs}.used_pct"), r(40.0, 0.1)));
    }
    for d in ["vda", "vdb"] {
        out.push((format!("disk.{d}.read_bps"), r(0.0, 5e6)));
        out.push((format!("disk.{d}.write_bps"), r(1e5, 2e7)));
        out.push((format!("disk.{d}.read_iops"), r(0.0, 200.0)));
        out.push((format!("disk.{d}.write_iops"), r(5.0, 500.0)));
    }
    for i in ["eth0", "docker0", "br-3f2a9c1d"] {
        out.push((format!("net.{i}.rx_bps"), r(1e3, 1e7)));
        out.push((format!("net.{i}.tx_bps"), r(1e3, 1e7)));
        out.push((format!("net.{i}.rx_pps"), r(10.0, 5e3)));
        out.push((format!("net.{i}.tx_pps"), r(10.0, 5e3)));
        out.push((format!("net.{i}.rx_errs"), r(0.0, 0.0)));
        out.push((format!("net.{i}.tx_errs"), r(0.0, 0.0)));
    }
    let mut extra = 0;
    while out.len() < n {
        out.push((format!("net.veth{extra}.rx_bps"), r(0.0, 1e6)));
        extra += 1;
    }
    out.truncate(n);
    out
}

/// A container's series: Docker's figures first, then custom ones.
fn container_series(n: usize) -> Vec<(String, Range)> {
    let mut out: Vec<(String, Range)> = vec![
        ("cpu.pct".into(), r(0.5, 50.0)),
        ("mem.used".into(), r(5e7, 2e8)),
        ("mem.limit".into(), r(1_073_741_824.0, 0.0)),
        ("net.rx_bps".into(), r(0.0, 1e6)),
        ("net.tx_bps".into(), r(0.0, 1e6)),
        ("blk.read_bps".into(), r(0.0, 1e5)),
        ("blk.write_bps".into(), r(0.0, 1e6)),
    ];
    let mut k = 0;
    while out.len() < n {
        out.push((format!("custom.requests_{k}"), r(0.0, 1e4)));
        k += 1;
    }
    out.truncate(n);
    out
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if &hay[i..i + needle.len()] == needle {
            out.push(i);
            i += needle.len();
        } else {
            i += 1;
        }
    }
    out
}

impl Template {
    pub fn build(shape: &Shape, node: usize, name: &str, id: String, key: String) -> Result<Self> {
        let host_params: BTreeMap<String, Range> =
            host_series(shape.host_series).into_iter().collect();
        let ct_params: BTreeMap<String, Range> = container_series(shape.container_series)
            .into_iter()
            .collect();
        let containers: Vec<ContainerSample> = (0..shape.containers)
            .map(|c| ContainerSample {
                name: format!("app-{c:02}"),
                id: format!("{:06x}{:06x}", node % 0xff_ffff, c),
                image: format!("registry.example/app-{c:02}:1.4.2"),
                state: "running".into(),
                status: "Up 3 days".into(),
                values: ct_params
                    .keys()
                    .map(|k| (k.clone(), VALUE_SENTINEL))
                    .collect(),
                ..Default::default()
            })
            .collect();
        let beat = HeartbeatRequest {
            protocol: PROTOCOL_VERSION,
            agent_version: "0.1.0-loadgen".into(),
            hostname: name.to_string(),
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            uptime_secs: UPTIME_SENTINEL,
            interval_ms: 1000,
            applied: Default::default(),
            task_results: Vec::new(),
            nginx: None,
            metrics: Some(MetricsReport {
                samples: vec![MetricsSample {
                    t: T_SENTINEL,
                    host: host_params
                        .keys()
                        .map(|k| (k.clone(), VALUE_SENTINEL))
                        .collect(),
                    containers,
                    vms: Vec::new(),
                }],
                // The generator does not resend: it never needs the core's ack.
                beat: 0,
            }),
        };
        let mut body = serde_json::to_vec(&beat)?;

        // Value slots appear in serialization order: host series (sorted map), then
        // each container's series (sorted map).
        let mut kinds: Vec<SlotKind> = host_params.values().map(|r| SlotKind::Value(*r)).collect();
        for _ in 0..shape.containers {
            kinds.extend(ct_params.values().map(|r| SlotKind::Value(*r)));
        }
        let sentinel = serde_json::to_string(&VALUE_SENTINEL)?;
        let offsets = find_all(&body, sentinel.as_bytes());
        if offsets.len() != kinds.len() {
            bail!(
                "template: {} value slots found, {} expected",
                offsets.len(),
                kinds.len()
            );
        }
        let mut slots: Vec<Slot> = offsets
            .into_iter()
            .zip(kinds)
            .map(|(offset, kind)| Slot {
                offset,
                width: sentinel.len(),
                kind,
            })
            .collect();
        for (needle, kind) in [
            (format!("\"t\":{T_SENTINEL}"), SlotKind::Time),
            (
                format!("\"uptime_secs\":{UPTIME_SENTINEL}"),
                SlotKind::Uptime,
            ),
        ] {
            let found = find_all(&body, needle.as_bytes());
            let [at] = found[..] else {
                bail!("template: {needle} found {} times", found.len());
            };
            let width = T_SENTINEL.to_string().len();
            slots.push(Slot {
                offset: at + needle.len() - width,
                width,
                kind,
            });
        }
        for s in &slots {
            body[s.offset..s.offset + s.width].fill(b' ');
        }
        Ok(Template {
            id,
            key,
            node: node as u64,
            body,
            slots,
        })
    }

    /// Writes this node's beat for `unix_secs` into `buf`: the template with fresh numbers.
    pub fn render(&self, buf: &mut Vec<u8>, unix_secs: u64) {
        buf.clear();
        buf.extend_from_slice(&self.body);
        let mut num = [0u8; 32];
        for (i, s) in self.slots.iter().enumerate() {
            let mut cur = std::io::Cursor::new(&mut num[..]);
            let written = match s.kind {
                SlotKind::Time => write!(cur, "{unix_secs}"),
                SlotKind::Uptime => write!(cur, "{}", 864_000 + unix_secs % 1_000_000),
                SlotKind::Value(r) => {
                    let v = (r.base + r.spread * noise(self.node, unix_secs, i as u64))
                        .clamp(0.0, VALUE_MAX);
                    write!(cur, "{v:.1}")
                }
            };
            let mut len = cur.position() as usize;
            if written.is_err() || len > s.width {
                // Cannot happen with clamped values; keep the JSON valid regardless.
                num[0] = b'0';
                len = 1;
            }
            let end = s.offset + s.width;
            buf[end - len..end].copy_from_slice(&num[..len]);
        }
    }
}

/// A cheap, deterministic value in [0, 1) per (node, second, slot): values vary from
/// beat to beat and node to node without a random number generator.
fn noise(node: u64, t: u64, slot: u64) -> f64 {
    let mut x = node
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(t.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_add(slot.wrapping_mul(0x1656_67B1_9E37_79F9));
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Size of one rendered body of this shape, for the report.
pub fn sample_json_len(shape: &Shape) -> Result<usize> {
    let t = Template::build(shape, 0, "loadgen-00000", "x".into(), "x".into())?;
    Ok(t.body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_bodies_are_valid_beats_with_fresh_values() {
        let shape = Shape {
            host_series: 60,
            containers: 10,
            container_series: 8,
        };
        let t = Template::build(&shape, 7, "loadgen-00007", "id".into(), "key".into())
            .expect("template");
        let mut buf = Vec::new();
        t.render(&mut buf, 1_800_000_000);
        let a: HeartbeatRequest = serde_json::from_slice(&buf).expect("valid beat");
        t.render(&mut buf, 1_800_000_001);
        let b: HeartbeatRequest = serde_json::from_slice(&buf).expect("valid beat");
        let (sa, sb) = (
            &a.metrics.as_ref().expect("metrics").samples[0],
            &b.metrics.as_ref().expect("metrics").samples[0],
        );
        assert_eq!(sa.t, 1_800_000_000);
        assert_eq!(sb.t, 1_800_000_001);
        assert_eq!(sa.host.len(), 60);
        assert_eq!(sa.containers.len(), 10);
        assert!(sa.containers.iter().all(|c| c.values.len() == 8));
        assert_eq!(sa.host["mem.total"], 34_359_738_368.0);
        assert_ne!(sa.host["cpu.busy"], sb.host["cpu.busy"]);
        assert!(sa.host.values().all(|v| *v != VALUE_SENTINEL));
        assert_eq!(a.hostname, "loadgen-00007");
    }
}
