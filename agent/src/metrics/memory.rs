//! Memory, swap, load, uptime and thread count from `/proc/meminfo`, `/proc/loadavg` and
//! `/proc/uptime` (none of them namespaced, so under `/host` they are the host's).

use std::collections::BTreeMap;
use std::path::Path;

use capstan_proto::metric_names as n;

/// `/proc/meminfo` values in bytes, by key.
pub fn parse_meminfo(text: &str) -> BTreeMap<&str, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let kb: u64 = rest.split_ascii_whitespace().next()?.parse().ok()?;
            Some((key, kb * 1024))
        })
        .collect()
}

pub fn collect(root: &Path, out: &mut BTreeMap<String, f64>) -> std::io::Result<()> {
    let text = super::read(root, "/proc/meminfo")?;
    let m = parse_meminfo(&text);
    let get = |k: &str| m.get(k).copied().unwrap_or(0);
    let total = get("MemTotal");
    let available = get("MemAvailable");
    out.insert(n::MEM_TOTAL.into(), total as f64);
    out.insert(n::MEM_AVAILABLE.into(), available as f64);
    out.insert(n::MEM_USED.into(), total.saturating_sub(available) as f64);
    out.insert(n::MEM_CACHED.into(), get("Cached") as f64);
    out.insert(n::MEM_BUFFERS.into(), get("Buffers") as f64);
    out.insert(n::SWAP_TOTAL.into(), get("SwapTotal") as f64);
    out.insert(
        n::SWAP_USED.into(),
        get("SwapTotal").saturating_sub(get("SwapFree")) as f64,
    );
    let load = super::read(root, "/proc/loadavg")?;
    let fields: Vec<&str> = load.split_ascii_whitespace().collect();
    for (i, name) in [n::LOAD_1, n::LOAD_5, n::LOAD_15].into_iter().enumerate() {
        if let Some(v) = fields.get(i).and_then(|f| f.parse::<f64>().ok()) {
            out.insert(name.into(), v);
        }
    }
    if let Some(total) = fields
        .get(3)
        .and_then(|f| f.split_once('/'))
        .and_then(|(_, t)| t.parse::<f64>().ok())
    {
        out.insert(n::HOST_PROCS.into(), total);
    }
    let uptime = super::read(root, "/proc/uptime")?;
    if let Some(v) = uptime
        .split_ascii_whitespace()
        .next()
        .and_then(|f| f.parse::<f64>().ok())
    {
        out.insert(n::HOST_UPTIME.into(), v.floor());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_in_bytes() {
        let m = parse_meminfo(
            "MemTotal:        2000 kB\nMemAvailable:     500 kB\nHugePages_Total:       0\n",
        );
        assert_eq!(m["MemTotal"], 2_048_000);
        assert_eq!(m["MemAvailable"], 512_000);
        assert_eq!(m["HugePages_Total"], 0);
    }
}
