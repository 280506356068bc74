//! Identity facts about the host: name, OS, uptime. Read under `host_root` so that the
//! privileged container (host `/` mounted at `/host`) reports the host, not itself.

use std::path::Path;

pub struct HostFacts {
    pub hostname: String,
    pub os: String,
    pub uptime_secs: u64,
}

/// Host name and OS change rarely (a rename, an upgrade): the beat loop re-reads them
/// every [`FACTS_TTL`] instead of every second. Uptime is read every time.
pub const FACTS_TTL: std::time::Duration = std::time::Duration::from_secs(60);

pub struct FactsCache {
    root: std::path::PathBuf,
    cached: Option<(std::time::Instant, String, String)>,
}

impl FactsCache {
    pub fn new(root: &Path) -> FactsCache {
        FactsCache {
            root: root.to_path_buf(),
            cached: None,
        }
    }

    pub fn read(&mut self) -> HostFacts {
        let now = std::time::Instant::now();
        let (hostname, os) = match &self.cached {
            Some((at, h, o)) if now.duration_since(*at) < FACTS_TTL => (h.clone(), o.clone()),
            _ => {
                let (h, o) = (hostname(&self.root), os_name(&self.root));
                self.cached = Some((now, h.clone(), o.clone()));
                (h, o)
            }
        };
        HostFacts {
            hostname,
            os,
            uptime_secs: uptime(&self.root),
        }
    }
}

pub fn read(host_root: &Path) -> HostFacts {
    HostFacts {
        hostname: hostname(host_root),
        os: os_name(host_root),
        uptime_secs: uptime(host_root),
    }
}

fn hostname(root: &Path) -> String {
    let from_file = std::fs::read_to_string(root.join("etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let from_kernel = || {
        std::fs::read_to_string(root.join("proc/sys/kernel/hostname"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let name = from_file
        .or_else(from_kernel)
        .unwrap_or_else(|| "localhost".into());
    sanitize_hostname(&name)
}

/// The core accepts RFC 1123 names only; map anything else to something it accepts
/// rather than failing every beat.
fn sanitize_hostname(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(253)
        .collect();
    let parts: Vec<&str> = cleaned.split('.').filter(|p| !p.is_empty()).collect();
    let joined = parts
        .iter()
        .map(|p| &p[..p.len().min(63)])
        .collect::<Vec<_>>()
        .join(".");
    if joined.is_empty() {
        "localhost".into()
    } else {
        joined
    }
}

fn os_name(root: &Path) -> String {
    let text = std::fs::read_to_string(root.join("etc/os-release"))
        .or_else(|_| std::fs::read_to_string(root.join("usr/lib/os-release")))
        .unwrap_or_default();
    let pretty = text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME="));
    let name = pretty
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    name.chars().filter(|c| !c.is_control()).take(128).collect()
}

fn uptime(root: &Path) -> u64 {
    // /proc/uptime is not namespaced, so the container's view is the host's anyway.
    std::fs::read_to_string(root.join("proc/uptime"))
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|secs| secs as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_machine() {
        let f = read(Path::new("/"));
        assert!(!f.hostname.is_empty());
        assert!(f.uptime_secs > 0);
    }

    #[test]
    fn reads_under_a_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("proc")).expect("mkdir");
        std::fs::write(dir.path().join("etc/hostname"), "web 1\n").expect("write");
        std::fs::write(
            dir.path().join("etc/os-release"),
            "PRETTY_NAME=\"Test OS 1\"\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("proc/uptime"), "1234.56 99.0\n").expect("write");
        let f = read(dir.path());
        assert_eq!(f.hostname, "web-1");
        assert_eq!(f.os, "Test OS 1");
        assert_eq!(f.uptime_secs, 1234);
    }
}
