//! A sustained run: one step held for minutes, so what grows with uptime shows (a 20 s
//! ramp step hides it). Every `--report-secs` it prints the beats answered in that
//! period, p99 from the scheduled instant, errors, the core's CPU and RSS and the store's
//! size; at the end a verdict: the step holds (every period after the first at ≥ 99 % of
//! wanted, p99 < 100 ms, no errors) and RSS is flat (the mean of the last third of the
//! periods at most 5 % above the mean of the middle third; lower is flat too: memory
//! handed back is no growth).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use tokio::sync::mpsc;

use crate::{Args, Job, P99_GOAL_MS, Shared, proc_stat};

/// RSS of the last third at most this fraction above the middle third counts as flat.
const FLAT_WITHIN: f64 = 0.05;

struct Period {
    end_s: u64,
    beats_per_s: f64,
    p99_sched_ms: f64,
    errors: u64,
    core_cpu: Option<f64>,
    core_rss_mb: Option<f64>,
    store_mb: Option<f64>,
}

/// Total size of the files directly in `dir`, MB.
fn dir_mb(dir: &std::path::Path) -> Option<f64> {
    let mut total = 0u64;
    for e in std::fs::read_dir(dir).ok()? {
        let m = e.ok()?.metadata().ok()?;
        if m.is_file() {
            total += m.len();
        }
    }
    Some(total as f64 / 1e6)
}

fn p99(v: &mut [u32]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let idx = ((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1;
    f64::from(v[idx]) / 1000.0
}

/// Reports every period until `end`.
async fn reporter(
    shared: Arc<Shared>,
    start: Instant,
    end: Instant,
    every: Duration,
    core_pid: Option<u32>,
    store_dir: Option<std::path::PathBuf>,
) -> Vec<Period> {
    let mut periods = Vec::new();
    let mut at = start;
    let mut core_before = core_pid.and_then(proc_stat::cpu_secs);
    while at < end {
        let next = (at + every).min(end);
        tokio::time::sleep_until(next.into()).await;
        let secs = (next - at).as_secs_f64();
        let core_now = core_pid.and_then(proc_stat::cpu_secs);
        let mut stats = shared
            .stats
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        let p = Period {
            end_s: (next - start).as_secs(),
            beats_per_s: stats.ok_in_window as f64 / secs,
            p99_sched_ms: p99(&mut stats.sched_us),
            errors: stats.errors,
            core_cpu: match (core_before, core_now) {
                (Some(a), Some(b)) => Some((b - a) * 100.0 / secs),
                _ => None,
            },
            core_rss_mb: core_pid.and_then(proc_stat::rss_mb),
            store_mb: store_dir.as_deref().and_then(dir_mb),
        };
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
        println!(
            "{:>6} {:>9.1} {:>9.1} {:>7} {:>9} {:>8} {:>9}",
            p.end_s,
            p.beats_per_s,
            p.p99_sched_ms,
            p.errors,
            opt(p.core_cpu),
            opt(p.core_rss_mb),
            opt(p.store_mb)
        );
        for e in stats.error_samples.iter().take(1) {
            println!("    error: {e}");
        }
        periods.push(p);
        core_before = core_now;
        at = next;
    }
    periods
}

pub async fn run(
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<Job>,
    args: &Args,
    n: usize,
    secs: u64,
) -> Result<()> {
    println!(
        "sustained: {n} nodes for {secs} s, a line every {} s",
        args.report_secs
    );
    println!(
        "{:>6} {:>9} {:>9} {:>7} {:>9} {:>8} {:>9}",
        "t s", "beats/s", "p99* ms", "errors", "core CPU%", "core MB", "store MB"
    );
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs(secs);
    if let Ok(mut w) = shared.window.lock() {
        *w = (start, end);
    }
    if let Ok(mut s) = shared.stats.lock() {
        *s = Default::default();
    }
    let report = tokio::spawn(reporter(
        shared.clone(),
        start,
        end,
        Duration::from_secs(args.report_secs),
        args.core_pid,
        args.store_dir.clone(),
    ));
    let unix0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut dropped = 0u64;
    for sec in 0..secs {
        dropped += crate::schedule_second(start, sec, n, unix0, tx, shared).await;
    }
    let periods = report.await?;
    verdict(&periods, n, dropped);
    Ok(())
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = v.fold((0.0, 0usize), |(s, c), x| (s + x, c + 1));
    (count > 0).then(|| sum / count as f64)
}

fn verdict(periods: &[Period], n: usize, dropped: u64) {
    // The first period includes connecting and the core's first flushes.
    let steady = periods.get(1..).unwrap_or_default();
    let worst_rate = steady
        .iter()
        .map(|p| p.beats_per_s)
        .fold(f64::INFINITY, f64::min);
    let worst_p99 = steady.iter().map(|p| p.p99_sched_ms).fold(0.0, f64::max);
    let errors: u64 = periods.iter().map(|p| p.errors).sum::<u64>() + dropped;
    let holds = errors == 0 && worst_rate >= n as f64 * 0.99 && worst_p99 < P99_GOAL_MS;
    println!(
        "holds: {} (worst period {worst_rate:.1} beats/s of {n} wanted, worst p99* {worst_p99:.1} ms, {errors} errors{})",
        if holds { "yes" } else { "NO" },
        if dropped > 0 {
            format!(", {dropped} found the generator's queue full")
        } else {
            String::new()
        }
    );
    let third = periods.len() / 3;
    let rss = |ps: &[Period]| mean(ps.iter().filter_map(|p| p.core_rss_mb));
    let middle = rss(&periods[third..2 * third]);
    let last = rss(&periods[periods.len() - third..]);
    match (middle, last) {
        (Some(m), Some(l)) => {
            let change = (l - m) / m;
            println!(
                "RSS flat: {} (middle third {m:.1} MB, last third {l:.1} MB, {:+.1} %; flat = grown by {:.0} % at most)",
                if change <= FLAT_WITHIN { "yes" } else { "NO" },
                change * 100.0,
                FLAT_WITHIN * 100.0
            );
        }
        _ => println!("RSS flat: n/a (no --core-pid)"),
    }
    let cpu = mean(steady.iter().filter_map(|p| p.core_cpu));
    let peak = steady
        .iter()
        .filter_map(|p| p.core_rss_mb)
        .fold(0.0, f64::max);
    if let Some(cpu) = cpu {
        println!("core CPU mean {cpu:.1} %, RSS peak {peak:.1} MB");
    }
    if let (Some(first), Some(last)) = (
        periods.first().and_then(|p| p.store_mb),
        periods.last().and_then(|p| p.store_mb),
    ) {
        let span = periods.last().map_or(1, |p| p.end_s.max(1));
        println!(
            "store {first:.1} MB → {last:.1} MB ({:.1} MB/min)",
            (last - first) * 60.0 / span as f64
        );
    }
}
