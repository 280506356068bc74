//! The allocator's part of the memory bound (README "Memory").
//!
//! The ingest path frees as much as it allocates every second, on whichever worker
//! thread ran the beat. glibc gives each thread that meets a locked arena a new one (up to
//! 8 per core) and keeps freed memory inside each arena: measured at 1,000 nodes, 3.6 GB of
//! RSS was such freed memory after 10 minutes, still rising. The core therefore caps the
//! arenas at start (`malloc_arena_max`) and hands free pages back to the kernel after
//! each flush period ([`trim`]), so RSS follows the memory in use. Other allocators
//! (jemalloc, mimalloc) were measured against this; see the README for the figures.

/// Caps glibc's malloc arenas, unless `MALLOC_ARENA_MAX` is set in the environment (the
/// operator's word wins). Call before any thread starts. Returns the cap applied.
pub fn bound_arenas(max: u32) -> Option<u32> {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return None;
    }
    set_arena_max(max)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(max: u32) -> Option<u32> {
    let value = libc::c_int::try_from(max).ok()?;
    // SAFETY: mallopt only changes a malloc tunable; no pointers are involved.
    let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, value) };
    (ok == 1).then_some(max)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_max: u32) -> Option<u32> {
    None
}

/// Returns freed memory held by the allocator to the kernel (glibc's `malloc_trim`).
/// Blocking for a few milliseconds on a large heap: run it off the async workers.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
    // SAFETY: malloc_trim takes no pointers and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}

/// This process's resident set size, bytes (`/proc/self/statm`).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}
