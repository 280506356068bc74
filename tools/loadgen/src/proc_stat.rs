//! CPU time and resident memory of a process from `/proc/<pid>/stat` and `status`, the
//! same figures the `scripts/bench-*` peers are measured with.

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn cpu_secs_of(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_sec())
}

/// User + system CPU seconds used by `pid` so far.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    cpu_secs_of(&format!("/proc/{pid}/stat"))
}

/// User + system CPU seconds used by this process so far.
pub fn self_cpu_secs() -> Option<f64> {
    cpu_secs_of("/proc/self/stat")
}

/// Resident set size of `pid`, MB.
pub fn rss_mb(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
