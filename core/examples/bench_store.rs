//! Metrics store benchmark (driven by `scripts/bench-store`): ingests simulated days of
//! beats for a fleet through the real write path, then reports the redb file size after
//! one day and after all days, the rows, the ingest rate and chart query latencies.
//!
//! Usage: bench_store <dir> [nodes] [series per node] [days]

use std::time::Instant;

use capstan_core::store::Store;
use capstan_core::store::metrics_ring::TIERS;
use capstan_core::store::metrics_writer::{RingWriter, Sample, open_of};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp/bench-store".into()));
    let nodes: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let per_node: usize = args.next().map_or(Ok(140), |a| a.parse())?;
    let days: u64 = args.next().map_or(Ok(30), |a| a.parse())?;
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.redb");
    let _ = std::fs::remove_file(&path);
    let store = Store::open(&path)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let end = now - now % 3600;
    let start = end - days * 86_400;
    let mut writer = RingWriter::load(&store, start)?;
    let names: Vec<Vec<String>> = (0..nodes)
        .map(|n| {
            (0..per_node)
                .map(|i| format!("node{n:04}/h/series.{i:03}"))
                .collect()
        })
        .collect();
    let value = |n: usize, i: usize, t: u64| ((t / 60 + (n * 7 + i) as u64) % 100) as f64;

    // Days before the last hour: one sample a minute, one flush per simulated hour.
    let mut size_day1 = 0;
    let mut rows_day1 = (0, 0);
    let mut points = 0u64;
    let began = Instant::now();
    let mut t = start;
    while t < end - 3600 {
        let mut batch = Vec::with_capacity(nodes * 60);
        for step in 0..60 {
            let ts = t + step * 60;
            for (n, keys) in names.iter().enumerate() {
                batch.push(Sample {
                    node: format!("node{n:04}").into(),
                    t: ts,
                    values: keys
                        .iter()
                        .enumerate()
                        .map(|(i, k)| (k.as_str().into(), value(n, i, ts)))
                        .collect(),
                    beat: 0,
                });
            }
        }
        points += (batch.len() * per_node) as u64;
        t += 3600;
        writer.write(&store, &batch, t)?;
        if t == start + 86_400 {
            size_day1 = std::fs::metadata(&path)?.len();
            rows_day1 = store.metrics_row_counts()?;
        }
    }
    // The last hour at 1 Hz, one flush per simulated second as in production.
    while t < end {
        let batch: Vec<Sample> = names
            .iter()
            .enumerate()
            .map(|(n, keys)| Sample {
                node: format!("node{n:04}").into(),
                t,
                values: keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (k.as_str().into(), value(n, i, t)))
                    .collect(),
                beat: 0,
            })
            .collect();
        points += (batch.len() * per_node) as u64;
        writer.write(&store, &batch, t)?;
        t += 1;
    }
    let ingest_s = began.elapsed().as_secs_f64();
    let size_end = std::fs::metadata(&path)?.len();
    let rows_end = store.metrics_row_counts()?;

    // Queries of node 0 (median of 21), as the API runs them.
    let open = writer.open();
    let lookup = move |id: u32| open_of(&open, id);
    let keys: Vec<String> = names[0].iter().take(10).cloned().collect();
    let mut report = Vec::new();
    for (label, tier, n) in [
        ("1h", 0usize, 3600u64),
        ("24h", 1, 1440),
        ("30d", 2, 2880),
        ("1y", 3, 8760),
    ] {
        let mut times = Vec::new();
        let mut filled = 0;
        for _ in 0..21 {
            let q = Instant::now();
            let (_, cols) = store.metrics_read(&keys, TIERS[tier], end - 1, n, Some(&lookup))?;
            times.push(q.elapsed().as_secs_f64() * 1000.0);
            filled = cols[0].iter().filter(|c| c.is_some()).count();
        }
        times.sort_by(f64::total_cmp);
        report.push(format!(
            "query_{label}_ms={:.2} query_{label}_points={filled}",
            times[times.len() / 2]
        ));
    }
    let series = (nodes * per_node) as u64;
    println!("nodes={nodes} series={series} days={days} points={points}");
    println!(
        "ingest_s={ingest_s:.1} points_per_s={:.0}",
        points as f64 / ingest_s
    );
    println!("size_day1_bytes={size_day1} size_end_bytes={size_end}");
    println!(
        "rows_day1_frames={} rows_day1_blocks={} rows_end_frames={} rows_end_blocks={}",
        rows_day1.0, rows_day1.1, rows_end.0, rows_end.1
    );
    println!("bytes_per_series={}", size_end / series.max(1));
    // The file is redb's allocation rounded up (it doubles when it needs room): the pages
    // in use per series are what a fleet's disk budget is computed from.
    let (allocated, stored) = store.space()?;
    println!(
        "allocated_bytes_per_series={} stored_bytes_per_series={}",
        allocated / series.max(1),
        stored / series.max(1)
    );
    println!("{}", report.join(" "));
    Ok(())
}
