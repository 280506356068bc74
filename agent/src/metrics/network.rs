//! Network rates per interface from `/proc/1/net/dev` under the host root: `/proc/net/dev`
//! is namespaced (it resolves through `self`), PID 1's is the host's namespace. Loopback and
//! Docker's per-container `veth` ends are left out; containers report their own traffic.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use capstan_proto::metric_names as n;

/// rx bytes, rx packets, rx errors, tx bytes, tx packets, tx errors.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errs: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errs: u64,
}

pub fn parse_net_dev(text: &str) -> HashMap<String, NetCounters> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let v: Vec<u64> = rest
                .split_ascii_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            if v.len() < 16 {
                return None;
            }
            Some((
                name.trim().to_string(),
                NetCounters {
                    rx_bytes: v[0],
                    rx_packets: v[1],
                    rx_errs: v[2],
                    tx_bytes: v[8],
                    tx_packets: v[9],
                    tx_errs: v[10],
                },
            ))
        })
        .collect()
}

/// Sum over all interfaces (a container's own namespace).
pub fn total(stats: &HashMap<String, NetCounters>) -> NetCounters {
    stats.iter().filter(|(name, _)| name.as_str() != "lo").fold(
        NetCounters::default(),
        |a, (_, c)| NetCounters {
            rx_bytes: a.rx_bytes + c.rx_bytes,
            rx_packets: a.rx_packets + c.rx_packets,
            rx_errs: a.rx_errs + c.rx_errs,
            tx_bytes: a.tx_bytes + c.tx_bytes,
            tx_packets: a.tx_packets + c.tx_packets,
            tx_errs: a.tx_errs + c.tx_errs,
        },
    )
}

#[derive(Default)]
pub struct Network {
    prev: Option<(Instant, HashMap<String, NetCounters>)>,
}

impl Network {
    pub fn collect(
        &mut self,
        root: &Path,
        now: Instant,
        out: &mut BTreeMap<String, f64>,
    ) -> std::io::Result<()> {
        let text =
            super::read(root, "/proc/1/net/dev").or_else(|_| super::read(root, "/proc/net/dev"))?;
        let mut stats = parse_net_dev(&text);
        stats.retain(|name, _| name != "lo" && !name.starts_with("veth"));
        if let Some((then, prev)) = &self.prev {
            let secs = now.duration_since(*then).as_secs_f64();
            for (name, c) in &stats {
                let p = prev.get(name);
                let fields = [
                    (n::NET_RX_BPS, p.map(|p| p.rx_bytes), c.rx_bytes),
                    (n::NET_TX_BPS, p.map(|p| p.tx_bytes), c.tx_bytes),
                    (n::NET_RX_PPS, p.map(|p| p.rx_packets), c.rx_packets),
                    (n::NET_TX_PPS, p.map(|p| p.tx_packets), c.tx_packets),
                    (n::NET_RX_ERRS, p.map(|p| p.rx_errs), c.rx_errs),
                    (n::NET_TX_ERRS, p.map(|p| p.tx_errs), c.tx_errs),
                ];
                for (field, before, after) in fields {
                    if let Some(r) = super::rate(before, after, secs) {
                        out.insert(format!("net.{name}.{field}"), r);
                    }
                }
            }
        }
        self.prev = Some((now, stats));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_columns() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  eth0: 1000 10 1 0 0 0 0 0 2000 20 2 0 0 0 0 0\n    lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n";
        let s = parse_net_dev(text);
        assert_eq!(s["eth0"].rx_bytes, 1000);
        assert_eq!(s["eth0"].tx_packets, 20);
        assert_eq!(s["eth0"].tx_errs, 2);
        assert_eq!(total(&s).rx_bytes, 1000);
    }
}
