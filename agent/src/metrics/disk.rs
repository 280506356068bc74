//! Disk I/O rates per whole device from `/proc/diskstats` (not namespaced) and space per
//! mounted filesystem from the host's mount table plus `statvfs` under the host root.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use capstan_proto::metric_names as n;

/// Filesystem types worth a chart; pseudo and overlay filesystems are left out.
const REAL_FS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "vfat", "exfat", "ntfs", "ntfs3", "jfs",
    "reiserfs", "nfs", "nfs4", "cifs",
];

/// Counters of one device: reads, sectors read, writes, sectors written.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DiskCounters {
    pub reads: u64,
    pub read_sectors: u64,
    pub writes: u64,
    pub write_sectors: u64,
}

#[derive(Default)]
pub struct Disk {
    prev: Option<(Instant, HashMap<String, DiskCounters>)>,
}

pub fn parse_diskstats(text: &str) -> HashMap<String, DiskCounters> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
            Some((
                f.get(2)?.to_string(),
                DiskCounters {
                    reads: num(3)?,
                    read_sectors: num(5)?,
                    writes: num(7)?,
                    write_sectors: num(9)?,
                },
            ))
        })
        .collect()
}

impl Disk {
    pub fn collect(
        &mut self,
        root: &Path,
        now: Instant,
        out: &mut BTreeMap<String, f64>,
    ) -> std::io::Result<()> {
        let mut stats = parse_diskstats(&super::read(root, "/proc/diskstats")?);
        // Whole devices only: partitions are not listed in /sys/block, loop and ram
        // devices are noise.
        stats.retain(|name, _| {
            !name.starts_with("loop")
                && !name.starts_with("ram")
                && super::under(root, "/sys/block").join(name).exists()
        });
        if let Some((then, prev)) = &self.prev {
            let secs = now.duration_since(*then).as_secs_f64();
            for (name, c) in &stats {
                let p = prev.get(name);
                let fields = [
                    (
                        n::DISK_READ_BPS,
                        p.map(|p| p.read_sectors),
                        c.read_sectors,
                        512.0,
                    ),
                    (
                        n::DISK_WRITE_BPS,
                        p.map(|p| p.write_sectors),
                        c.write_sectors,
                        512.0,
                    ),
                    (n::DISK_READ_IOPS, p.map(|p| p.reads), c.reads, 1.0),
                    (n::DISK_WRITE_IOPS, p.map(|p| p.writes), c.writes, 1.0),
                ];
                for (field, before, after, scale) in fields {
                    if let Some(r) = super::rate(before, after, secs) {
                        out.insert(format!("disk.{name}.{field}"), r * scale);
                    }
                }
            }
        }
        self.prev = Some((now, stats));
        Ok(())
    }
}

/// Mount points of real filesystems, first mount of each device only (bind mounts and
/// the agent's own view of `/host` would repeat it).
pub fn parse_mounts(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        let (Some(dev), Some(mnt), Some(kind)) = (f.first(), f.get(1), f.get(2)) else {
            continue;
        };
        if !REAL_FS.contains(kind) || !seen.insert(dev.to_string()) {
            continue;
        }
        // Mount points escape spaces as \040; such paths are rare and stay skipped.
        if mnt.contains('\\') {
            continue;
        }
        out.push(mnt.to_string());
    }
    out
}

/// How long the mount table is trusted. With many containers it lists dozens of overlay
/// mounts and is costly for the kernel to generate; mounts of real filesystems change
/// rarely, and a new one shows up within this delay.
pub const MOUNTS_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Space per mounted filesystem; the mount table is re-read every [`MOUNTS_TTL`].
#[derive(Default)]
pub struct Filesystems {
    mounts: Option<(Instant, Vec<String>)>,
}

impl Filesystems {
    pub fn collect(
        &mut self,
        root: &Path,
        now: Instant,
        out: &mut BTreeMap<String, f64>,
    ) -> std::io::Result<()> {
        let fresh = self
            .mounts
            .as_ref()
            .filter(|(at, _)| now.duration_since(*at) < MOUNTS_TTL);
        if fresh.is_none() {
            // PID 1's table is the host's mount namespace even when the agent runs in a
            // container.
            let text = super::read(root, "/proc/1/mounts")
                .or_else(|_| super::read(root, "/proc/mounts"))?;
            self.mounts = Some((now, parse_mounts(&text)));
        }
        let mounts = self.mounts.as_ref().map_or(&[][..], |(_, m)| m.as_slice());
        space(root, mounts, out);
        Ok(())
    }
}

fn space(root: &Path, mounts: &[String], out: &mut BTreeMap<String, f64>) {
    for mnt in mounts {
        let Some((size, used)) = statvfs(&super::under(root, mnt)) else {
            continue;
        };
        out.insert(format!("fs.{mnt}.{}", n::FS_SIZE), size as f64);
        out.insert(format!("fs.{mnt}.{}", n::FS_USED), used as f64);
        if size > 0 {
            out.insert(
                format!("fs.{mnt}.{}", n::FS_USED_PCT),
                used as f64 * 100.0 / size as f64,
            );
        }
    }
}

/// Size and used bytes as `df` shows them (used = blocks − free).
pub fn statvfs(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a properly sized out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let frsize = s.f_frsize as u64;
    let size = s.f_blocks as u64 * frsize;
    let used = (s.f_blocks as u64).saturating_sub(s.f_bfree as u64) * frsize;
    Some((size, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diskstats_fields() {
        let d = parse_diskstats(
            "   8       0 sda 100 0 2000 0 50 0 4000 0 0 0 0\n 7 0 loop0 1 0 2 0 0 0 0 0 0 0 0\n",
        );
        assert_eq!(
            d["sda"],
            DiskCounters {
                reads: 100,
                read_sectors: 2000,
                writes: 50,
                write_sectors: 4000
            }
        );
    }

    #[test]
    fn mounts_keep_real_filesystems_once() {
        let m = parse_mounts(
            "/dev/vda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\n/dev/vda1 /host ext4 ro 0 0\noverlay /x overlay rw 0 0\n/dev/vdb /data xfs rw 0 0\n",
        );
        assert_eq!(m, vec!["/".to_string(), "/data".to_string()]);
    }
}
