//! Monitoring end to end: the real agent beating to the real core, host figures charted,
//! and a real container's figures appearing within seconds and going when it is removed.

use std::time::Duration;

use capstan_e2e::docker::Container;
use capstan_e2e::{Core, free_port, start_agent, wait_for};
use serde_json::Value;

fn containers(latest: &Value) -> Vec<Value> {
    latest["sample"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn host_and_container_metrics_flow_from_agent_to_charts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let core_dir = dir.path().join("core");
    std::fs::create_dir_all(&core_dir).expect("core dir");
    let core = Core::start(&core_dir, free_port(), &[]);
    let api = core.api();
    let (id, key) = api.create_node("metrics-node");
    let _agent = start_agent(
        &dir.path().join("agent"),
        &[
            ("CORE_URL", core.url.as_str()),
            ("AGENT_ID", id.as_str()),
            ("AGENT_KEY", key.as_str()),
        ],
    );

    // Host series reach the 1 s ring (the flusher writes once a second).
    let chart = wait_for("cpu and memory history", Duration::from_secs(20), || {
        let (status, body) = api.get(&format!(
            "/api/agents/{id}/metrics?range=1h&series=cpu.busy,mem.used"
        ));
        assert_eq!(status, 200, "{body}");
        let filled = |name: &str| {
            body["series"][name]["avg"]
                .as_array()
                .map_or(0, |a| a.iter().filter(|v| !v.is_null()).count())
        };
        (filled("cpu.busy") >= 2 && filled("mem.used") >= 2).then_some(body)
    });
    let mem = chart["series"]["mem.used"]["avg"]
        .as_array()
        .expect("avg")
        .iter()
        .filter_map(Value::as_f64)
        .next_back()
        .expect("a value");
    assert!(mem > 1e6, "memory used {mem}");

    let name = format!("capstan-metrics-{}", std::process::id());
    let container = Container::web(&name, "hello", &[]);
    let seen = wait_for(
        "the container in the live sample",
        Duration::from_secs(20),
        || {
            let (_, latest) = api.get(&format!("/api/agents/{id}/metrics/latest"));
            containers(&latest).into_iter().find(|c| {
                c["name"] == name.as_str()
                        && c["values"]["cpu.pct"].is_number()
                        // Read through the container's init, in its network namespace.
                        && c["values"]["net.rx_bps"].is_number()
            })
        },
    );
    assert_eq!(seen["state"], "running");
    assert!(
        seen["values"]["mem.used"].as_f64().expect("mem") > 0.0,
        "{seen}"
    );
    wait_for("the container's history", Duration::from_secs(10), || {
        let (status, body) = api.get(&format!(
            "/api/agents/{id}/containers/{name}/metrics?range=1h&series=cpu.pct"
        ));
        assert_eq!(status, 200, "{body}");
        body["series"]["cpu.pct"]["avg"]
            .as_array()
            .and_then(|a| a.iter().find(|v| !v.is_null()).cloned())
    });

    drop(container);
    wait_for(
        "the removed container to leave the sample",
        Duration::from_secs(20),
        || {
            let (_, latest) = api.get(&format!("/api/agents/{id}/metrics/latest"));
            (!containers(&latest)
                .iter()
                .any(|c| c["name"] == name.as_str()))
            .then_some(())
        },
    );
}

fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "docker {args:?}: {text}");
    text.trim().to_string()
}

/// `docker run -d` of the test image with extra arguments and a shell script; the
/// returned guard removes the container.
fn run_container(name: &str, extra: &[&str], script: &str) -> Container {
    capstan_e2e::docker::ensure_image();
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", name])
        .output();
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend([capstan_e2e::docker::IMAGE, "sh", "-c", script]);
    docker(&args);
    Container {
        name: name.to_string(),
    }
}

/// A core and an agent beating to it; returns (core, api, node id, agent).
fn core_and_agent(
    dir: &std::path::Path,
    agent_env: &[(&str, &str)],
) -> (Core, capstan_e2e::Api, String, capstan_e2e::Proc) {
    core_and_agent_with(dir, &[], agent_env)
}

fn core_and_agent_with(
    dir: &std::path::Path,
    core_env: &[(&str, &str)],
    agent_env: &[(&str, &str)],
) -> (Core, capstan_e2e::Api, String, capstan_e2e::Proc) {
    let core_dir = dir.join("core");
    std::fs::create_dir_all(&core_dir).expect("core dir");
    let core = Core::start(&core_dir, free_port(), core_env);
    let api = core.api();
    let (id, key) = api.create_node("metrics-node");
    let mut env = vec![
        ("CORE_URL", core.url.as_str()),
        ("AGENT_ID", id.as_str()),
        ("AGENT_KEY", key.as_str()),
    ];
    env.extend_from_slice(agent_env);
    let agent = start_agent(&dir.join("agent"), &env);
    (core, api, id, agent)
}

fn find_container(api: &capstan_e2e::Api, id: &str, name: &str) -> Option<Value> {
    let (_, latest) = api.get(&format!("/api/agents/{id}/metrics/latest"));
    containers(&latest).into_iter().find(|c| c["name"] == name)
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Custom metrics from a container's own JSON endpoint, a slow endpoint and bad labels
/// reported without stalling anything, health checks and restart counts from Docker.
#[test]
fn custom_metrics_health_and_restarts_of_real_containers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_core, api, id, agent) = core_and_agent(dir.path(), &[]);
    let tag = std::process::id();

    // A service publishing a JSON object of numbers (nested, a boolean, a string).
    let good = format!("capstan-custom-good-{tag}");
    let json =
        r#"{"requests":42,"latency":{"p99":1.5},"ready":true,"version":"1.2.3","shards":[1,2]}"#;
    let _good = run_container(
        &good,
        &[
            "--label",
            "capstan.metrics.port=8080",
            "--label",
            "capstan.metrics.path=/stats.json",
        ],
        &format!(
            "mkdir -p /www && echo '{json}' > /www/stats.json && exec httpd -f -p 8080 -h /www"
        ),
    );
    // An endpoint that answers after 5 s (a CGI script sleeping): beyond the timeout.
    let slow = format!("capstan-custom-slow-{tag}");
    let _slow = run_container(
        &slow,
        &[
            "--label",
            "capstan.metrics.port=80",
            "--label",
            "capstan.metrics.path=/cgi-bin/slow",
        ],
        "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\nsleep 5\\necho Content-Type: application/json\\necho\\necho {\\\"x\\\":1}\\n' > /www/cgi-bin/slow && chmod +x /www/cgi-bin/slow && exec httpd -f -p 80 -h /www",
    );
    // Labels the agent must refuse to turn into a URL.
    let bad = format!("capstan-custom-bad-{tag}");
    let _bad = run_container(
        &bad,
        &[
            "--label",
            "capstan.metrics.port=80@evil.example",
            "--label",
            "capstan.metrics.path=/x",
        ],
        "exec sleep 600",
    );
    // Health checks: one passing, one failing.
    let healthy = format!("capstan-health-ok-{tag}");
    let _healthy = run_container(
        &healthy,
        &["--health-cmd", "true", "--health-interval", "1s"],
        "exec sleep 600",
    );
    let sick = format!("capstan-health-bad-{tag}");
    let _sick = run_container(
        &sick,
        &[
            "--health-cmd",
            "false",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ],
        "exec sleep 600",
    );
    // Exits after 2 s; Docker restarts it.
    let flappy = format!("capstan-restarts-{tag}");
    let _flappy = run_container(&flappy, &["--restart", "always"], "sleep 2; exit 1");

    let seen = wait_for(
        "custom series of the good container",
        Duration::from_secs(30),
        || find_container(&api, &id, &good).filter(|c| c["values"]["custom.requests"].is_number()),
    );
    assert_eq!(seen["values"]["custom.requests"], 42.0, "{seen}");
    assert_eq!(seen["values"]["custom.latency.p99"], 1.5, "{seen}");
    assert_eq!(seen["values"]["custom.ready"], 1.0, "{seen}");
    assert!(
        seen["values"].get("custom.version").is_none(),
        "strings ignored: {seen}"
    );
    assert!(
        seen["values"].get("custom.shards").is_none(),
        "arrays ignored: {seen}"
    );
    assert!(seen["values"]["cpu.pct"].is_number() || seen["values"]["mem.used"].is_number());
    let status = &seen["custom"];
    let ip = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &good,
    ]);
    assert_eq!(
        status["url"],
        format!("http://{ip}:8080/stats.json"),
        "{seen}"
    );
    assert_eq!(status["series"], 3, "{seen}");
    assert!(status.get("error").is_none_or(|e| e == ""), "{seen}");
    assert!(
        status["last_ok"].as_u64().expect("last_ok") + 60 > now_s(),
        "{seen}"
    );
    // The history of a custom series is charted like any other.
    wait_for("custom series history", Duration::from_secs(10), || {
        let (status, body) = api.get(&format!(
            "/api/agents/{id}/containers/{good}/metrics?range=1h&series=custom.requests"
        ));
        assert_eq!(status, 200, "{body}");
        body["series"]["custom.requests"]["avg"]
            .as_array()
            .and_then(|a| a.iter().find(|v| v.as_f64() == Some(42.0)).cloned())
    });

    let slow_seen = wait_for(
        "the slow endpoint's timeout",
        Duration::from_secs(20),
        || {
            find_container(&api, &id, &slow).filter(|c| {
                c["custom"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("timed out"))
            })
        },
    );
    assert_eq!(slow_seen["custom"]["series"], 0, "{slow_seen}");
    assert!(
        slow_seen["values"]
            .as_object()
            .is_some_and(|v| !v.keys().any(|k| k.starts_with("custom."))),
        "{slow_seen}"
    );
    // The slow endpoint does not hold samples back: the live sample stays current.
    for _ in 0..5 {
        let (_, latest) = api.get(&format!("/api/agents/{id}/metrics/latest"));
        let t = latest["sample"]["t"].as_u64().expect("t");
        assert!(t + 3 >= now_s(), "latest sample is {} s old", now_s() - t);
        std::thread::sleep(Duration::from_millis(700));
    }

    let bad_seen = wait_for("the bad label's error", Duration::from_secs(20), || {
        find_container(&api, &id, &bad).filter(|c| c["custom"].is_object())
    });
    let error = bad_seen["custom"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("capstan.metrics.port"), "{bad_seen}");
    assert_eq!(bad_seen["custom"]["url"], "", "{bad_seen}");

    wait_for("health states", Duration::from_secs(30), || {
        let ok = find_container(&api, &id, &healthy)?;
        let bad = find_container(&api, &id, &sick)?;
        (ok["health"] == "healthy" && bad["health"] == "unhealthy").then_some(())
    });
    let plain = find_container(&api, &id, &good).expect("good container");
    assert!(
        plain.get("health").is_none_or(|h| h == ""),
        "no health check: {plain}"
    );

    let flapped = wait_for("a restart count", Duration::from_secs(40), || {
        find_container(&api, &id, &flappy).filter(|c| c["restarts"].as_u64().unwrap_or(0) >= 1)
    });
    let docker_count: u64 = docker(&["inspect", "-f", "{{.RestartCount}}", &flappy])
        .parse()
        .expect("count");
    assert!(
        flapped["restarts"].as_u64().expect("restarts") <= docker_count,
        "{flapped}"
    );

    // Removing the labelled container stops its poller: the agent's log has no
    // connection errors for it afterwards, and it leaves the sample.
    drop(_good);
    wait_for(
        "the labelled container to leave",
        Duration::from_secs(20),
        || find_container(&api, &id, &good).is_none().then_some(()),
    );
    drop(agent);
}

/// The core goes away for ~15 s: the agent keeps collecting every second, then drains
/// the backlog in gzip-compressed beats, and the 1 s tier has (nearly) every second of
/// the outage.
#[test]
fn collection_continues_through_a_core_outage_and_the_backlog_arrives_gzipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut core, api, id, agent) = core_and_agent(
        dir.path(),
        &[("RUST_LOG", "info,capstan_agent::client=debug")],
    );
    wait_for("first host points", Duration::from_secs(20), || {
        let (_, body) = api.get(&format!(
            "/api/agents/{id}/metrics?range=1h&series=cpu.busy"
        ));
        let n = body["series"]["cpu.busy"]["avg"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|v| !v.is_null()).count());
        (n >= 2).then_some(())
    });
    assert!(
        !agent.output().contains("gzip-compressed"),
        "single-sample beats are small and go plain"
    );

    let port = core.port;
    let data = core.dir.clone();
    core.proc.terminate();
    let down = now_s();
    std::thread::sleep(Duration::from_secs(15));
    let up = now_s();
    let core = Core::start(&data, port, &[]);
    let api = core.api();

    // Seconds strictly inside the outage: nothing could have been delivered live.
    let outage: Vec<u64> = (down + 1..up).collect();
    let filled = wait_for(
        "the outage to be filled from the backlog",
        Duration::from_secs(30),
        || {
            let have = seconds_with_values(&api, &id);
            let n = outage.iter().filter(|s| have.contains(s)).count();
            (n + 2 >= outage.len()).then_some(n)
        },
    );
    assert!(outage.len() >= 13, "outage of {} s", outage.len());
    assert!(filled + 2 >= outage.len(), "{filled} of {}", outage.len());
    let log = agent.output();
    assert!(
        log.contains("request body gzip-compressed"),
        "the backlog beat was gzipped:\n{log}"
    );
}

/// Seconds holding a `cpu.busy` value in the node's 1 s tier.
fn seconds_with_values(api: &capstan_e2e::Api, id: &str) -> std::collections::HashSet<u64> {
    let (status, body) = api.get(&format!(
        "/api/agents/{id}/metrics?range=1h&series=cpu.busy"
    ));
    assert_eq!(status, 200, "{body}");
    let t = body["t"].as_array().cloned().unwrap_or_default();
    let avg = body["series"]["cpu.busy"]["avg"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    t.iter()
        .zip(avg.iter())
        .filter(|(_, v)| !v.is_null())
        .filter_map(|(t, _)| t.as_u64())
        .collect()
}

/// A kill -9 of the core loses no sample it acknowledged: the agent keeps samples until
/// the core's answer says they are on disk, and sends again what the restarted core
/// lost. The core writes every 5 s here, so without that a kill drops up to 5 s of
/// samples it had already answered for.
#[test]
fn a_core_killed_between_writes_loses_no_acknowledged_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flush = [("CAPSTAN_METRICS_FLUSH_SECS", "5")];
    let (mut core, api, id, _agent) = core_and_agent_with(dir.path(), &flush, &[]);
    let (core_dir, port) = (core.dir.clone(), core.port);
    wait_for("a first write", Duration::from_secs(30), || {
        (seconds_with_values(&api, &id).len() >= 3).then_some(())
    });
    // Mid-way between two writes, most likely; every beat so far was answered.
    std::thread::sleep(Duration::from_millis(6500));
    let killed = now_s();
    core.proc.kill9();
    std::thread::sleep(Duration::from_secs(2));
    let core = Core::start(&core_dir, port, &flush);
    let api = core.api();
    let before: Vec<u64> = (killed - 8..killed).collect();
    let missing = wait_for(
        "the seconds before the kill to be complete",
        Duration::from_secs(40),
        || {
            let have = seconds_with_values(&api, &id);
            let missing: Vec<u64> = before
                .iter()
                .filter(|s| !have.contains(s))
                .copied()
                .collect();
            missing.is_empty().then_some(missing)
        },
    );
    assert!(missing.is_empty());
}

/// A real QEMU guest (paused, no disk) on this host appears with its name, vCPUs and
/// memory size, has history, and leaves when its process is killed.
#[test]
fn a_qemu_guest_is_discovered_and_dropped_when_it_stops() {
    let qemu = [
        "/usr/bin/qemu-system-x86_64",
        "/usr/local/bin/qemu-system-x86_64",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).is_file())
    .expect("qemu-system-x86_64 is installed (apt-get install qemu-system-x86)");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_core, api, id, _agent) = core_and_agent(dir.path(), &[]);
    let name = format!("capstan-test-vm-{}", std::process::id());
    let mut cmd = std::process::Command::new(qemu);
    cmd.args([
        "-name",
        &format!("guest={name},debug-threads=on"),
        "-m",
        "64",
        "-smp",
        "2",
        "-display",
        "none",
        "-nographic",
        "-S",
        "-nodefaults",
    ]);
    let mut vm = capstan_e2e::Proc::spawn(cmd, dir.path().join("qemu.log"));

    let vms = |api: &capstan_e2e::Api| -> Vec<Value> {
        let (_, latest) = api.get(&format!("/api/agents/{id}/metrics/latest"));
        latest["sample"]["vms"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let seen = wait_for(
        "the guest in the live sample",
        Duration::from_secs(30),
        || {
            assert!(vm.is_running(), "qemu exited: {}", vm.output());
            vms(&api)
                .into_iter()
                .find(|v| v["name"] == name.as_str() && v["values"]["cpu.pct"].is_number())
        },
    );
    assert_eq!(seen["source"], "qemu", "{seen}");
    assert_eq!(seen["state"], "running", "{seen}");
    assert_eq!(seen["vcpus"], 2, "{seen}");
    assert_eq!(seen["values"]["mem.max"], (64u64 << 20) as f64, "{seen}");
    let used = seen["values"]["mem.used"].as_f64().expect("mem.used");
    assert!(used > 1e6, "{seen}");
    wait_for("the guest's history", Duration::from_secs(10), || {
        let (status, body) = api.get(&format!(
            "/api/agents/{id}/vms/{name}/metrics?range=1h&series=mem.used"
        ));
        assert_eq!(status, 200, "{body}");
        body["series"]["mem.used"]["avg"]
            .as_array()
            .and_then(|a| a.iter().find(|v| !v.is_null()).cloned())
    });

    vm.kill9();
    wait_for(
        "the killed guest to leave the sample",
        Duration::from_secs(15),
        || (!vms(&api).iter().any(|v| v["name"] == name.as_str())).then_some(()),
    );
}

/// The README's memory formula ("Memory"): a base, the store's page cache, a figure per
/// stored series and the metrics buffer at its bound (reached only when the store falls
/// behind). The test below holds the real core to it.
const BASE_MB: f64 = 30.0;
const PER_SERIES_KB: f64 = 1.5;
const BUFFER_MB: f64 = 100.0;

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Issue 19 (CI memory bound): 300 simulated agents (`capstan-loadgen`, 140 series each)
/// beating at 1 Hz for 30 s against the real core with a 16 MB store cache: its RSS,
/// sampled 4 times a second, never passes what the README's formula gives for that
/// config and fleet. Before the bound (redb's 1 GiB default cache, 16 glibc arenas, keys
/// allocated per beat) the same load took the core to 650 MB within the run (98 MB now). The
/// assertion is on memory, not on time: a slow machine only makes the load lighter.
#[test]
fn the_core_stays_within_its_memory_formula_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let core_dir = dir.path().join("core");
    std::fs::create_dir_all(&core_dir).expect("core dir");
    let cache_mb = 16.0;
    let core = Core::start(
        &core_dir,
        free_port(),
        &[("CAPSTAN_STORE_CACHE_MB", "16"), ("RUST_LOG", "warn")],
    );
    let pid = core.proc.pid().expect("core pid");
    let (nodes, series) = (300.0, 140.0);
    let bound = BASE_MB + cache_mb + nodes * series * PER_SERIES_KB / 1024.0 + BUFFER_MB;

    let mut gen_cmd = std::process::Command::new(capstan_e2e::bin("capstan-loadgen"));
    gen_cmd
        .args(["--url", &core.url, "--nodes", "300", "--seconds", "30"])
        .args(["--warmup", "3", "--connections", "32", "--json"])
        .env("CAPSTAN_ADMIN_PASSWORD", capstan_e2e::ADMIN_PASSWORD);
    let mut generator = capstan_e2e::Proc::spawn(gen_cmd, dir.path().join("loadgen.log"));
    let mut peak: f64 = 0.0;
    let started = std::time::Instant::now();
    while generator.is_running() {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the generator did not finish: {}",
            generator.output()
        );
        peak = peak.max(rss_mb(pid).expect("the core runs"));
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = generator.output();
    let step: Value = out
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no step figures from the generator: {out}"));
    // The load was real: most beats were answered (whatever the latency).
    let achieved = step["achieved_per_s"].as_f64().unwrap_or(0.0);
    assert!(achieved >= 150.0, "only {achieved} beats/s answered: {out}");
    assert!(
        peak <= bound,
        "core RSS peaked at {peak:.1} MB, above the formula's {bound:.1} MB ({achieved:.0} beats/s)"
    );
    eprintln!("core RSS peak {peak:.1} MB of {bound:.1} MB allowed, {achieved:.0} beats/s");
}
