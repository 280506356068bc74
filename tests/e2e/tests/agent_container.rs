//! The agent as it ships for Docker: the image built from the real `agent/Dockerfile`,
//! run with the settings of the `agent` service in `agent/docker-compose.yml` (read from
//! the file, so the test follows it), beating to a core started here. The figures the
//! core receives must be the host's, checked against what this test reads from the
//! host's own `/proc` and `statvfs`: memory, core count, uptime, root filesystem size and
//! the host's network interfaces (not the container's). A container started here shows
//! up in the agent's list and leaves it when removed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use capstan_e2e::docker::{self, Container};
use capstan_e2e::{Api, Core, bin, free_port};
use serde_json::Value;

/// The `agent` service of `agent/docker-compose.yml`, as far as `docker run` needs it.
#[derive(Debug, Default)]
struct ComposeAgent {
    privileged: bool,
    network_mode: Option<String>,
    pid: Option<String>,
    /// `source:target[:mode]` as written; named volumes have a source without `/`.
    volumes: Vec<String>,
    environment: Vec<(String, String)>,
}

/// Reads the `agent` service block (indentation-based; the file is ours and plain).
fn compose_agent() -> ComposeAgent {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../agent/docker-compose.yml");
    let text = std::fs::read_to_string(&path).expect("agent/docker-compose.yml");
    let mut svc = ComposeAgent::default();
    let mut in_agent = false;
    let mut list: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent <= 2 {
            in_agent = indent == 2 && trimmed == "agent:";
            list = None;
            continue;
        }
        if !in_agent {
            continue;
        }
        if indent == 4 {
            list = None;
            match trimmed.split_once(':').map(|(k, v)| (k, v.trim())) {
                Some(("privileged", v)) => svc.privileged = v == "true",
                Some(("network_mode", v)) => svc.network_mode = Some(v.to_string()),
                Some(("pid", v)) => svc.pid = Some(v.to_string()),
                Some(("volumes", "")) => list = Some("volumes"),
                Some(("environment", "")) => list = Some("environment"),
                _ => {}
            }
            continue;
        }
        match list {
            Some("volumes") => {
                if let Some(v) = trimmed.strip_prefix("- ") {
                    svc.volumes.push(v.trim().to_string());
                }
            }
            Some("environment") => {
                if let Some((k, v)) = trimmed.split_once(':') {
                    svc.environment
                        .push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            _ => {}
        }
    }
    svc
}

/// Host interfaces as the agent reports them: `/proc/net/dev` of this (the host's)
/// network namespace, without loopback and containers' veth ends.
fn host_interfaces() -> BTreeSet<String> {
    std::fs::read_to_string("/proc/net/dev")
        .expect("/proc/net/dev")
        .lines()
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_string()))
        .filter(|n| n != "lo" && !n.starts_with("veth"))
        .collect()
}

/// The interface of the host's default route, if it has one.
fn default_route_interface() -> Option<String> {
    std::fs::read_to_string("/proc/net/route")
        .ok()?
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&"00000000"))
        .map(|f| f[0].to_string())
}

fn meminfo_total_bytes() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("MemTotal");
    kb * 1024.0
}

fn host_cores() -> usize {
    std::fs::read_to_string("/proc/stat")
        .expect("/proc/stat")
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.strip_prefix("cpu"))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .count()
}

fn host_uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .expect("/proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("uptime")
}

/// Size of the host's root filesystem as `df` computes it (fundamental block size ×
/// blocks), read with coreutils `stat -f`.
fn root_fs_size() -> f64 {
    let out = Command::new("stat")
        .args(["-f", "-c", "%S %b", "/"])
        .output()
        .expect("stat -f /");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(v.len(), 2, "stat -f output: {text}");
    v[0] * v[1]
}

fn latest(api: &Api, id: &str) -> Value {
    api.get(&format!("/api/agents/{id}/metrics/latest")).1
}

fn host_keys(sample: &Value) -> BTreeSet<String> {
    sample["sample"]["host"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn container_names(sample: &Value) -> BTreeSet<String> {
    sample["sample"]["containers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls until `check` gives a value; on timeout fails with the agent container's log.
fn wait<T>(what: &str, agent: &str, secs: u64, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {secs} s waiting for {what}; agent container log:\n{}",
                docker::logs(agent)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn agent_image_reports_the_host_it_runs_on() {
    let pid = std::process::id();
    let compose = compose_agent();
    // The figures checked below are the host's only because of these settings.
    assert!(
        compose.volumes.iter().any(|v| v == "/:/host:ro"),
        "compose mounts the host's / at /host read-only: {compose:?}"
    );
    assert!(
        compose
            .volumes
            .iter()
            .any(|v| v.starts_with("/var/run/docker.sock:")),
        "compose mounts the Docker socket: {compose:?}"
    );

    let image = docker::build_agent_image(
        &bin("capstan-agent"),
        &format!("capstan-test/agent:e2e-{pid}"),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let core_dir = dir.path().join("core");
    std::fs::create_dir_all(&core_dir).expect("core dir");
    let core = Core::start(&core_dir, free_port(), &[]);
    let api = core.api();
    let (id, key) = api.create_node("docker-agent");

    // `docker run` with the compose service's settings; named volumes become temp dirs.
    let mut args: Vec<String> = Vec::new();
    if compose.privileged {
        args.extend(docker::privileged_flags());
    }
    if let Some(mode) = &compose.network_mode {
        args.extend(["--network".into(), mode.clone()]);
    }
    if let Some(mode) = &compose.pid {
        args.extend(["--pid".into(), mode.clone()]);
    }
    for v in &compose.volumes {
        let spec = if v.starts_with('/') {
            v.clone()
        } else {
            let (name, rest) = v.split_once(':').expect("named volume source:target");
            let local: PathBuf = dir.path().join(format!("volume-{name}"));
            std::fs::create_dir_all(&local).expect("volume dir");
            format!("{}:{rest}", local.display())
        };
        args.extend(["-v".into(), spec]);
    }
    for (k, v) in &compose.environment {
        args.extend(["-e".into(), format!("{k}={v}")]);
    }
    // The agent reaches the core on the host's loopback (compose: network_mode host).
    // NGINX management is off: this test is about the figures, not the router.
    for (k, v) in [
        ("HOST_ROOT", "/host"),
        ("CORE_URL", core.url.as_str()),
        ("AGENT_ID", id.as_str()),
        ("AGENT_KEY", key.as_str()),
        ("CAPSTAN_AGENT_NGINX", "false"),
        ("RUST_LOG", "info"),
    ] {
        args.extend(["-e".into(), format!("{k}={v}")]);
    }
    args.push(image.tag.clone());
    let agent_name = format!("capstan-e2e-agent-{pid}");
    let agent = docker::run(&agent_name, &args);

    // Rates (network) need two readings: wait for a sample that has them.
    let before = host_interfaces();
    wait("a full host sample", &agent.name, 40, || {
        let l = latest(&api, &id);
        let keys = host_keys(&l);
        (keys
            .iter()
            .any(|k| k.starts_with("net.") && k.ends_with(".rx_bps"))
            && keys.contains("fs./.size")
            && keys.contains("mem.total"))
        .then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let sample = latest(&api, &id);
    let after = host_interfaces();
    let host = &sample["sample"]["host"];
    let keys = host_keys(&sample);

    // Memory: /proc/meminfo is the host's in any container; it must be reported as is.
    assert_eq!(
        host["mem.total"].as_f64(),
        Some(meminfo_total_bytes()),
        "mem.total"
    );

    // One cpu.<n>.busy per host core.
    let core_series = keys
        .iter()
        .filter(|k| {
            k.strip_prefix("cpu.")
                .and_then(|r| r.strip_suffix(".busy"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .count();
    assert_eq!(core_series, host_cores(), "cpu.<n>.busy series: {keys:?}");

    // Uptime of the host, not of the container (a few seconds of sample age allowed).
    let uptime = host["host.uptime"].as_f64().expect("host.uptime");
    let host_up = host_uptime();
    assert!(
        (uptime - host_up).abs() <= 5.0,
        "host.uptime {uptime} vs host {host_up}"
    );

    // The host's root filesystem read through /host, not the container's overlay.
    assert_eq!(
        host["fs./.size"].as_f64(),
        Some(root_fs_size()),
        "fs./.size vs statvfs(/) on the host"
    );

    // Network: exactly the host's interfaces (allowing for ones that came or went while
    // the test read them), including docker0 and the default-route NIC.
    let reported: BTreeSet<String> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("net."))
        .filter_map(|r| r.rsplit_once('.').map(|(name, _)| name.to_string()))
        .collect();
    let stable: BTreeSet<String> = before.intersection(&after).cloned().collect();
    let any: BTreeSet<String> = before.union(&after).cloned().collect();
    assert!(
        stable.is_subset(&reported) && reported.is_subset(&any),
        "net interfaces: agent reported {reported:?}, host has {stable:?}"
    );
    if Path::new("/sys/class/net/docker0").exists() {
        assert!(reported.contains("docker0"), "docker0 in {reported:?}");
    }
    if let Some(nic) = default_route_interface() {
        assert!(
            reported.contains(&nic),
            "default-route NIC {nic} in {reported:?}"
        );
    }
    assert!(
        reported.len() > 1,
        "more than the container's own eth0: {reported:?}"
    );

    // The host name of the host (the core shows it for the node).
    let (_, view) = api.get(&format!("/api/agents/{id}"));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(view["hostname"].as_str(), Some(hostname.trim()), "{view}");

    // A container started on the host appears, and leaves when removed.
    let name = format!("capstan-e2e-watched-{pid}");
    let watched: Container = docker::script(&name, "exec sleep 100000");
    wait(
        "the new container in the agent's sample",
        &agent.name,
        30,
        || {
            container_names(&latest(&api, &id))
                .contains(&name)
                .then_some(())
        },
    );
    drop(watched);
    wait(
        "the removed container to leave the agent's sample",
        &agent.name,
        30,
        || (!container_names(&latest(&api, &id)).contains(&name)).then_some(()),
    );

    drop(agent);
    drop(image);
}
