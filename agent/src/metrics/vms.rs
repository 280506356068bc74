//! QEMU/KVM guests, discovered from the host's processes under the host root: a process
//! whose argv0's basename starts with `qemu-system-` or is `qemu-kvm` is a guest. Its
//! command line gives the name (`-name guest=X,…` or `-name X`), vCPUs (`-smp`) and
//! memory size (`-m`); its `/proc/<pid>/stat` and `io` give CPU, resident memory and
//! disk rates. Where libvirt runs, its runtime state (`/run/libvirt/qemu/<domain>.xml`
//! and `.pid`) names the guest after its domain and gives vCPUs, memory and state.
//!
//! Discovery reads process command lines, so it runs every [`RESCAN`] rather than every
//! second, and skips PIDs already seen to be something else; those are forgotten every
//! [`FULL_RESCAN`], so a process that turns into QEMU later (`exec` from a wrapper
//! script) is still found. libvirt's guests are found through their PID files at once.
//! In between only the known guests' `stat`/`io` are read, and a guest whose process
//! vanished (or whose PID now belongs to another program) drops out at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use capstan_proto::VmSample;
use capstan_proto::metric_limits::{MAX_VM_SERIES, MAX_VMS};
use capstan_proto::metric_names as n;

/// How often the process table is scanned for new guests.
pub const RESCAN: Duration = Duration::from_secs(5);
/// How often PIDs known not to be QEMU are looked at again.
pub const FULL_RESCAN: Duration = Duration::from_secs(60);
const MAX_NAME: usize = 128;

/// What a guest's command line says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QemuArgs {
    pub name: Option<String>,
    pub vcpus: u32,
    pub mem_bytes: Option<u64>,
}

/// What libvirt's runtime state file says about a running domain.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Domain {
    pub name: String,
    pub state: String,
    pub pid: Option<u32>,
    pub vcpus: Option<u32>,
    pub mem_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
struct Guest {
    name: String,
    source: &'static str,
    state: String,
    vcpus: u32,
    mem_bytes: Option<u64>,
    /// The process's `comm` when first read: a different one means the PID was reused.
    comm: Option<String>,
}

/// One reading of a guest process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcStat {
    /// utime + stime, clock ticks.
    pub cpu_ticks: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Reading {
    at: Option<Instant>,
    cpu_ticks: u64,
    read_bytes: Option<u64>,
    write_bytes: Option<u64>,
}

pub struct Vms {
    guests: BTreeMap<u32, Guest>,
    scanned: Option<Instant>,
    /// PIDs whose command line was not QEMU's, since `others_since`.
    others: HashSet<u32>,
    others_since: Option<Instant>,
    prev: HashMap<u32, Reading>,
    ticks_per_sec: f64,
    page_size: u64,
}

impl Default for Vms {
    fn default() -> Self {
        // SAFETY: sysconf only reads system constants.
        let (tck, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Vms {
            guests: BTreeMap::new(),
            scanned: None,
            others: HashSet::new(),
            others_since: None,
            prev: HashMap::new(),
            ticks_per_sec: if tck > 0 { tck as f64 } else { 100.0 },
            page_size: u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096),
        }
    }
}

impl Vms {
    pub fn collect(&mut self, root: &Path, now: Instant) -> Vec<VmSample> {
        if self
            .scanned
            .is_none_or(|at| now.duration_since(at) >= RESCAN)
        {
            if self
                .others_since
                .is_none_or(|at| now.duration_since(at) >= FULL_RESCAN)
            {
                self.others.clear();
                self.others_since = Some(now);
            }
            let mut found = discover(root, &mut self.others);
            // Keep the comm already read for guests still there under the same name.
            for (pid, g) in &mut found {
                if let Some(old) = self.guests.get(pid).filter(|o| o.name == g.name) {
                    g.comm.clone_from(&old.comm);
                }
            }
            self.guests = found;
            self.scanned = Some(now);
        }
        let mut out = Vec::with_capacity(self.guests.len());
        let mut gone = Vec::new();
        for (pid, guest) in &mut self.guests {
            let Ok(text) = super::read(root, &format!("/proc/{pid}/stat")) else {
                gone.push(*pid);
                continue;
            };
            let Some((comm, stat)) = parse_stat(&text) else {
                gone.push(*pid);
                continue;
            };
            match &guest.comm {
                Some(c) if c != comm => {
                    gone.push(*pid);
                    continue;
                }
                Some(_) => {}
                None => guest.comm = Some(comm.to_string()),
            }
            let io = super::read(root, &format!("/proc/{pid}/io"))
                .ok()
                .map(|t| parse_io(&t));
            let reading = Reading {
                at: Some(now),
                cpu_ticks: stat.cpu_ticks,
                read_bytes: io.map(|(r, _)| r),
                write_bytes: io.map(|(_, w)| w),
            };
            let mut values = BTreeMap::new();
            values.insert(
                n::VM_MEM_USED.to_string(),
                (stat.rss_pages * self.page_size) as f64,
            );
            if let Some(m) = guest.mem_bytes {
                values.insert(n::VM_MEM_MAX.to_string(), m as f64);
            }
            if let Some(p) = self.prev.get(pid)
                && let Some(then) = p.at
            {
                let secs = now.duration_since(then).as_secs_f64();
                if let Some(r) = super::rate(Some(p.cpu_ticks), stat.cpu_ticks, secs) {
                    values.insert(n::VM_CPU_PCT.to_string(), r / self.ticks_per_sec * 100.0);
                }
                for (name, before, after) in [
                    (n::VM_DISK_READ_BPS, p.read_bytes, reading.read_bytes),
                    (n::VM_DISK_WRITE_BPS, p.write_bytes, reading.write_bytes),
                ] {
                    if let (Some(b), Some(a)) = (before, after)
                        && let Some(r) = super::rate(Some(b), a, secs)
                    {
                        values.insert(name.to_string(), r);
                    }
                }
            }
            self.prev.insert(*pid, reading);
            out.push(VmSample {
                name: guest.name.clone(),
                source: guest.source.to_string(),
                state: guest.state.clone(),
                vcpus: guest.vcpus,
                values: super::clean(values, MAX_VM_SERIES),
            });
        }
        for pid in gone {
            self.guests.remove(&pid);
        }
        self.prev.retain(|pid, _| self.guests.contains_key(pid));
        out.truncate(MAX_VMS);
        out
    }
}

/// All guests running now, by PID, named uniquely. PIDs in `others` are skipped unless
/// libvirt names them; PIDs found not to be QEMU are added to it.
fn discover(root: &Path, others: &mut HashSet<u32>) -> BTreeMap<u32, Guest> {
    let domains = libvirt_domains(root);
    let mut guests = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(super::under(root, "/proc")) else {
        return guests;
    };
    let mut alive = HashSet::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        alive.insert(pid);
        if others.contains(&pid) && !domains.contains_key(&pid) {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&str> = raw
            .split(|b| *b == 0)
            .filter_map(|a| std::str::from_utf8(a).ok())
            .collect();
        if !args.first().is_some_and(|a0| is_qemu(a0)) {
            others.insert(pid);
            continue;
        }
        let q = parse_qemu_args(&args[1..]);
        let guest = match domains.get(&pid) {
            Some(d) => Guest {
                name: sanitize_name(&d.name, pid),
                source: "libvirt",
                state: if d.state.is_empty() {
                    "running".into()
                } else {
                    d.state.clone()
                },
                vcpus: d.vcpus.unwrap_or(q.vcpus),
                mem_bytes: d.mem_bytes.or(q.mem_bytes),
                comm: None,
            },
            None => Guest {
                name: sanitize_name(q.name.as_deref().unwrap_or(""), pid),
                source: "qemu",
                state: "running".into(),
                vcpus: q.vcpus,
                mem_bytes: q.mem_bytes,
                comm: None,
            },
        };
        guests.insert(pid, guest);
    }
    others.retain(|pid| alive.contains(pid));
    // Series are keyed by name: two guests with one name would mix their figures.
    let mut seen = HashSet::new();
    for (pid, g) in &mut guests {
        if !seen.insert(g.name.clone()) {
            let suffix = format!("-{pid}");
            let mut base = g.name.clone();
            base.truncate(MAX_NAME - suffix.len());
            g.name = base + &suffix;
        }
    }
    guests
}

/// Running libvirt domains by PID, from `/run/libvirt/qemu/<domain>.pid` and `.xml`.
fn libvirt_domains(root: &Path) -> HashMap<u32, Domain> {
    let mut out = HashMap::new();
    let dir = super::under(root, "/run/libvirt/qemu");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("xml") {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let Ok(xml) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut d = parse_domstatus(&xml);
        if d.name.is_empty() {
            d.name = stem.to_string();
        }
        let from_file = std::fs::read_to_string(dir.join(format!("{stem}.pid")))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if let Some(pid) = from_file.or(d.pid) {
            out.insert(pid, d);
        }
    }
    out
}

pub fn is_qemu(argv0: &str) -> bool {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    base.starts_with("qemu-system-") || base == "qemu-kvm"
}

/// QEMU option values are comma-separated, with `,,` standing for a literal comma.
fn split_opts(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                if let Some(last) = parts.last_mut() {
                    last.push(',');
                }
            } else {
                parts.push(String::new());
            }
        } else if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

/// The option's implied first value (`-m 512`) or its `key=` value (`-m size=512`).
fn opt(parts: &[String], key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    parts
        .iter()
        .find_map(|p| p.strip_prefix(&prefix).map(str::to_string))
        .or_else(|| parts.first().filter(|p| !p.contains('=')).cloned())
        .filter(|v| !v.is_empty())
}

/// Reads `-name`, `-smp` and `-m` (also spelled with `--`); the last occurrence wins, as
/// in QEMU.
pub fn parse_qemu_args(args: &[&str]) -> QemuArgs {
    let mut out = QemuArgs {
        vcpus: 1,
        ..QemuArgs::default()
    };
    let mut i = 0;
    while i < args.len() {
        // `-name` and `--name` are the same option.
        let flag = args[i]
            .strip_prefix("--")
            .or_else(|| args[i].strip_prefix('-'))
            .unwrap_or("");
        let Some(value) = args.get(i + 1) else { break };
        match flag {
            "name" => {
                out.name = opt(&split_opts(value), "guest");
                i += 1;
            }
            "smp" => {
                if let Some(v) = parse_smp(&split_opts(value)) {
                    out.vcpus = v;
                }
                i += 1;
            }
            "m" => {
                out.mem_bytes = opt(&split_opts(value), "size").and_then(|s| parse_size(&s));
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// `-smp 4`, `-smp cpus=4,…`, or only the topology (`sockets=2,cores=2`), as QEMU does.
fn parse_smp(parts: &[String]) -> Option<u32> {
    if let Some(v) = opt(parts, "cpus") {
        return v.parse().ok();
    }
    let mut product: Option<u32> = None;
    for key in ["sockets", "dies", "clusters", "cores", "threads"] {
        let prefix = format!("{key}=");
        if let Some(v) = parts
            .iter()
            .find_map(|p| p.strip_prefix(&prefix))
            .and_then(|v| v.parse::<u32>().ok())
        {
            product = Some(product.unwrap_or(1).saturating_mul(v));
        }
    }
    product
}

/// QEMU's `-m` sizes: a number, optionally fractional, with an optional unit suffix
/// (`B`, `K`, `M`, `G`, `T`, case-insensitive); MiB without one.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "b" => 1,
        "k" => 1 << 10,
        "" | "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    let bytes = num * mult as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// libvirt's units for `<memory unit='…'>` (default KiB).
fn libvirt_bytes(value: u64, unit: &str) -> Option<u64> {
    let mult: u64 = match unit {
        "b" | "bytes" => 1,
        "KB" => 1000,
        "" | "k" | "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "M" | "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "G" | "GiB" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "T" | "TiB" => 1 << 40,
        _ => return None,
    };
    value.checked_mul(mult)
}

/// The few fields of a libvirt status file (`<domstatus state='running' pid='…'>` around
/// a `<domain>`) the agent uses. Not a general XML parser: libvirt writes this file
/// itself, in a fixed shape.
pub fn parse_domstatus(xml: &str) -> Domain {
    let mut d = Domain::default();
    if let Some(tag) = start_tag(xml, "domstatus") {
        d.state = attr(tag, "state").unwrap_or_default();
        d.pid = attr(tag, "pid").and_then(|p| p.parse().ok());
    }
    // The domain definition follows; look only inside it, past the status attributes.
    let domain = xml
        .find("<domain ")
        .or_else(|| xml.find("<domain>"))
        .map_or(xml, |i| &xml[i..]);
    if let Some(name) = element(domain, "name") {
        d.name = unescape(name.1.trim());
    }
    if let Some((tag, text)) = element(domain, "vcpu") {
        // `current` is how many are online when fewer than the maximum.
        d.vcpus = attr(tag, "current")
            .and_then(|c| c.parse().ok())
            .or_else(|| text.trim().parse().ok());
    }
    if let Some((tag, text)) = element(domain, "memory") {
        let unit = attr(tag, "unit").unwrap_or_default();
        d.mem_bytes = text
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|v| libvirt_bytes(v, &unit));
    }
    d
}

/// The first `<name …>` start tag (attributes included), not a longer name like
/// `<memoryBacking>`.
fn start_tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}");
    let mut from = 0;
    while let Some(i) = xml[from..].find(&open) {
        let start = from + i;
        let rest = &xml[start + open.len()..];
        if rest.starts_with([' ', '>', '/', '\t', '\n']) {
            let end = rest.find('>')?;
            return Some(&xml[start..start + open.len() + end + 1]);
        }
        from = start + open.len();
    }
    None
}

/// (start tag, text) of the first `<name>text</name>` element.
fn element<'a>(xml: &'a str, name: &str) -> Option<(&'a str, &'a str)> {
    let tag = start_tag(xml, name)?;
    let start = xml.find(tag)? + tag.len();
    let close = format!("</{name}>");
    let end = xml[start..].find(&close)?;
    Some((tag, &xml[start..start + end]))
}

fn attr(tag: &str, name: &str) -> Option<String> {
    for quote in ['\'', '"'] {
        let pat = format!(" {name}={quote}");
        if let Some(i) = tag.find(&pat) {
            let rest = &tag[i + pat.len()..];
            let end = rest.find(quote)?;
            return Some(unescape(&rest[..end]));
        }
    }
    None
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// A name the core accepts (`[A-Za-z0-9._-]`, 1-128), else `qemu-<pid>`.
pub fn sanitize_name(name: &str, pid: u32) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(MAX_NAME);
    if s.is_empty() {
        format!("qemu-{pid}")
    } else {
        s
    }
}

/// `/proc/<pid>/stat`: (comm, figures). The comm is in parentheses and may itself
/// contain spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<(&str, ProcStat)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?;
    let fields: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    // After the comm: state is field 3 of the man page, so field k is index k - 3.
    if fields.first() == Some(&"Z") {
        return None;
    }
    let get = |k: usize| fields.get(k - 3).and_then(|v| v.parse::<u64>().ok());
    Some((
        comm,
        ProcStat {
            cpu_ticks: get(14)? + get(15)?,
            rss_pages: get(24)?,
        },
    ))
}

/// `/proc/<pid>/io`: bytes read from and written to storage.
pub fn parse_io(text: &str) -> (u64, u64) {
    let mut r = 0;
    let mut w = 0;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("read_bytes:") {
            r = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("write_bytes:") {
            w = v.trim().parse().unwrap_or(0);
        }
    }
    (r, w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn args(s: &str) -> QemuArgs {
        let v: Vec<&str> = s.split(' ').collect();
        parse_qemu_args(&v)
    }

    #[test]
    fn argv0_identifies_qemu() {
        for yes in [
            "qemu-system-x86_64",
            "/usr/bin/qemu-system-aarch64",
            "/usr/libexec/qemu-kvm",
        ] {
            assert!(is_qemu(yes), "{yes}");
        }
        for no in [
            "qemu-img",
            "/usr/bin/qemu-kvm-helper",
            "bash",
            "",
            "/opt/qemu-system",
        ] {
            assert!(!is_qemu(no), "{no}");
        }
    }

    #[test]
    fn names_vcpus_and_memory_from_the_command_line() {
        let a = args("-name guest=web-1,debug-threads=on -smp 4,sockets=4 -m 2048");
        assert_eq!(a.name.as_deref(), Some("web-1"));
        assert_eq!(a.vcpus, 4);
        assert_eq!(a.mem_bytes, Some(2048 << 20));

        let a = args("-name db -smp cpus=2,maxcpus=8 -m size=2G,slots=4,maxmem=8G");
        assert_eq!(a.name.as_deref(), Some("db"));
        assert_eq!(a.vcpus, 2);
        assert_eq!(a.mem_bytes, Some(2 << 30));

        let a = args("--name x,,y,process=q -smp sockets=2,cores=2,threads=2 -m 1.5G");
        assert_eq!(a.name.as_deref(), Some("x,y"));
        assert_eq!(a.vcpus, 8);
        assert_eq!(a.mem_bytes, Some(3 << 29));

        // libvirt's style, and QEMU's defaults when options are missing.
        let a = args("-m size=524288k -machine pc");
        assert_eq!(a.mem_bytes, Some(512 << 20));
        assert_eq!(a.name, None);
        assert_eq!(a.vcpus, 1);
        assert_eq!(args("-m").mem_bytes, None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Some(512 << 20));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("4096B"), Some(4096));
        assert_eq!(parse_size("12X"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn guest_names_are_made_acceptable() {
        assert_eq!(sanitize_name("web server/1", 7), "web_server_1");
        assert_eq!(sanitize_name("", 7), "qemu-7");
        assert_eq!(sanitize_name(&"a".repeat(300), 7).len(), MAX_NAME);
    }

    #[test]
    fn stat_fields_survive_odd_comms() {
        let line = "4242 (qemu (x) 1) S 1 4242 4242 0 -1 4194624 100 0 0 0 250 50 0 0 20 0 3 0 1000 1000000 2048 18446744073709551615";
        let (comm, s) = parse_stat(line).expect("parses");
        assert_eq!(comm, "qemu (x) 1");
        assert_eq!(s.cpu_ticks, 300);
        assert_eq!(s.rss_pages, 2048);
        assert!(parse_stat("1 (z) Z 0 0").is_none());
    }

    const DOMSTATUS: &str = r#"<!--
WARNING: THIS IS AN AUTO-GENERATED FILE.
-->
<domstatus state='paused' reason='user' pid='5151'>
  <monitor path='/var/lib/libvirt/qemu/domain-3-win&amp;lin/monitor.sock' type='unix'/>
  <vcpus>
    <vcpu id='0' pid='5160'/>
  </vcpus>
  <qemuCaps>
    <flag name='kvm'/>
  </qemuCaps>
  <domain type='kvm' id='3'>
    <name>win&amp;lin</name>
    <uuid>0b4f1b5e-8d2e-4a3a-9c9e-1f1e1e1e1e1e</uuid>
    <memory unit='KiB'>4194304</memory>
    <currentMemory unit='KiB'>2097152</currentMemory>
    <memoryBacking><hugepages/></memoryBacking>
    <vcpu placement='static' current='2'>4</vcpu>
  </domain>
</domstatus>
"#;

    #[test]
    fn libvirt_status_file() {
        let d = parse_domstatus(DOMSTATUS);
        assert_eq!(
            d,
            Domain {
                name: "win&lin".into(),
                state: "paused".into(),
                pid: Some(5151),
                vcpus: Some(2),
                mem_bytes: Some(4 << 30),
            }
        );
        let plain = "<domain type='kvm'><name>a</name><memory>1024</memory><vcpu>3</vcpu></domain>";
        let d = parse_domstatus(plain);
        assert_eq!((d.vcpus, d.mem_bytes), (Some(3), Some(1 << 20)));
    }

    /// A host tree: `/proc/<pid>/{cmdline,stat,io}` and libvirt's run directory.
    struct Tree(tempfile::TempDir);

    impl Tree {
        fn new() -> Tree {
            Tree(tempfile::tempdir().expect("tempdir"))
        }
        fn path(&self) -> PathBuf {
            self.0.path().to_path_buf()
        }
        fn process(
            &self,
            pid: u32,
            argv: &[&str],
            comm: &str,
            ticks: u64,
            rss: u64,
            io: (u64, u64),
        ) {
            let dir = self.0.path().join(format!("proc/{pid}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            let mut cmdline = argv.join("\0");
            cmdline.push('\0');
            std::fs::write(dir.join("cmdline"), cmdline).expect("cmdline");
            std::fs::write(
                dir.join("stat"),
                format!(
                    "{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 1 1 {rss} 0\n"
                ),
            )
            .expect("stat");
            std::fs::write(
                dir.join("io"),
                format!(
                    "rchar: 1\nwchar: 2\nread_bytes: {}\nwrite_bytes: {}\n",
                    io.0, io.1
                ),
            )
            .expect("io");
        }
        fn remove(&self, pid: u32) {
            std::fs::remove_dir_all(self.0.path().join(format!("proc/{pid}"))).expect("rm");
        }
    }

    #[test]
    fn guests_are_found_measured_and_dropped_under_a_root() {
        let t = Tree::new();
        let qemu = [
            "/usr/bin/qemu-system-x86_64",
            "-name",
            "guest=alpha,debug-threads=on",
            "-smp",
            "2",
            "-m",
            "64",
        ];
        t.process(100, &qemu, "qemu-system-x86", 1000, 256, (0, 0));
        t.process(
            101,
            &["/bin/bash", "-name", "guest=nope"],
            "bash",
            5,
            5,
            (0, 0),
        );
        t.process(102, &["qemu-kvm", "-m", "1G"], "qemu-kvm", 0, 1, (0, 0));
        let libvirt_qemu = [
            "/usr/bin/qemu-system-x86_64",
            "-name",
            "guest=ignored",
            "-smp",
            "1",
        ];
        t.process(103, &libvirt_qemu, "qemu-system-x86", 0, 1, (0, 0));
        let run = t.path().join("run/libvirt/qemu");
        std::fs::create_dir_all(&run).expect("mkdir");
        std::fs::write(run.join("win.xml"), DOMSTATUS).expect("xml");
        std::fs::write(run.join("win.pid"), "103\n").expect("pid");

        let mut vms = Vms::default();
        let start = Instant::now();
        let first = vms.collect(&t.path(), start);
        let names: Vec<&str> = first.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["alpha", "qemu-102", "win_lin"]);
        let alpha = &first[0];
        assert_eq!((alpha.source.as_str(), alpha.vcpus), ("qemu", 2));
        assert_eq!(alpha.values[n::VM_MEM_MAX], (64u64 << 20) as f64);
        assert_eq!(alpha.values[n::VM_MEM_USED], (256 * vms.page_size) as f64);
        assert!(
            !alpha.values.contains_key(n::VM_CPU_PCT),
            "no rate on the first reading"
        );
        let win = &first[2];
        assert_eq!(
            (win.source.as_str(), win.state.as_str(), win.vcpus),
            ("libvirt", "paused", 2)
        );
        assert_eq!(win.values[n::VM_MEM_MAX], (4u64 << 30) as f64);

        // One second later: one core's worth of ticks and 1 MB written.
        let tck = vms.ticks_per_sec as u64;
        t.process(
            100,
            &qemu,
            "qemu-system-x86",
            1000 + tck,
            256,
            (0, 1_000_000),
        );
        let second = vms.collect(&t.path(), start + Duration::from_secs(1));
        let alpha = &second[0];
        assert!((alpha.values[n::VM_CPU_PCT] - 100.0).abs() < 1e-9);
        assert!((alpha.values[n::VM_DISK_WRITE_BPS] - 1e6).abs() < 1e-6);

        // The process goes: the guest drops out before the next scan.
        t.remove(100);
        let third = vms.collect(&t.path(), start + Duration::from_secs(2));
        assert!(third.iter().all(|v| v.name != "alpha"));
        // The PID is reused by another program: not a guest any more.
        t.process(102, &["/bin/sleep", "9"], "sleep", 0, 1, (0, 0));
        let fourth = vms.collect(&t.path(), start + Duration::from_secs(3));
        assert!(fourth.iter().all(|v| v.name != "qemu-102"));
        // A new guest shows up at the next scan.
        t.process(200, &qemu, "qemu-system-x86", 0, 1, (0, 0));
        let later = vms.collect(&t.path(), start + RESCAN + Duration::from_secs(1));
        assert!(later.iter().any(|v| v.name == "alpha"));
        // A process seen as something else that later execs QEMU is found by the
        // periodic full rescan, not missed forever.
        t.process(101, &qemu[..1], "qemu-system-x86", 0, 1, (0, 0));
        let skipped = vms.collect(&t.path(), start + RESCAN * 2 + Duration::from_secs(1));
        assert!(skipped.iter().all(|v| v.name != "qemu-101"));
        let full = vms.collect(&t.path(), start + FULL_RESCAN + Duration::from_secs(1));
        assert!(full.iter().any(|v| v.name == "qemu-101"), "{full:?}");
    }

    #[test]
    fn duplicate_names_are_told_apart() {
        let t = Tree::new();
        let argv = ["qemu-system-x86_64", "-name", "same"];
        t.process(10, &argv, "qemu-system-x86", 0, 1, (0, 0));
        t.process(11, &argv, "qemu-system-x86", 0, 1, (0, 0));
        let mut vms = Vms::default();
        let out = vms.collect(&t.path(), Instant::now());
        let names: Vec<&str> = out.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["same", "same-11"]);
    }
}
