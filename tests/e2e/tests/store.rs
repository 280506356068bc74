//! The store under abuse, with the real `capstan-core` binary: file modes whatever the
//! umask, a damaged or empty file refused at start, a node key sending endless new series
//! names, and a full disk (a small tmpfs) that the core must recover from by itself.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use capstan_e2e::{ADMIN_PASSWORD, Api, Core, Proc, bin, free_port, http, wait_for};
use serde_json::{Value, json};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `capstan-core serve` started from a shell with `umask 022`, as a user would.
fn serve_with_umask(dir: &Path, port: u16, admin_password: bool, log: &str) -> Proc {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 022; exec \"$0\" serve")
        .arg(bin("capstan-core"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CAPSTAN_LISTEN", format!("127.0.0.1:{port}"))
        .env("CAPSTAN_DATA_DIR", dir)
        .env("RUST_LOG", "info");
    if admin_password {
        cmd.env("CAPSTAN_ADMIN_PASSWORD", ADMIN_PASSWORD);
    }
    let log = dir.parent().expect("parent").join(log);
    Proc::spawn(cmd, log)
}

fn wait_ping(port: u16) {
    let client = http();
    wait_for("core to answer /api/ping", Duration::from_secs(20), || {
        client
            .get(format!("http://127.0.0.1:{port}/api/ping"))
            .send()
            .ok()
            .filter(|r| r.status() == 200)
    });
}

/// Issue 10 part 2: the store holds the JWT signing key; with umask 022 it used to be
/// created 0644 in a 0755 directory.
#[test]
fn store_and_data_dir_are_owner_only_whatever_the_umask() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let port = free_port();
    let mut core = serve_with_umask(&data, port, false, "core-1.log");
    wait_ping(port);
    let store = data.join("capstan.redb");
    let password = data.join("initial-admin-password");
    wait_for("initial password file", Duration::from_secs(10), || {
        password.exists().then_some(())
    });
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&store), 0o600, "store file");
    assert_eq!(mode(&password), 0o600, "initial password file");
    core.terminate();

    // Loosened by hand (or by an older version): fixed at the next start, with a warning.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut core = serve_with_umask(&data, port, false, "core-2.log");
    wait_ping(port);
    assert_eq!(mode(&data), 0o700, "data dir fixed");
    assert_eq!(mode(&store), 0o600, "store file fixed");
    assert_eq!(mode(&password), 0o600, "initial password file fixed");
    let out = core.output();
    assert!(
        out.contains("had mode 0755") && out.contains("had mode 0644"),
        "a warning names each fixed mode:\n{out}"
    );
    core.terminate();
}

/// Runs `capstan-core serve` on `dir`, expecting it to refuse: returns its output.
fn refused_start(dir: &Path, log: &str) -> String {
    let port = free_port();
    let mut cmd = Command::new(bin("capstan-core"));
    cmd.arg("serve")
        .env_clear()
        .env("CAPSTAN_LISTEN", format!("127.0.0.1:{port}"))
        .env("CAPSTAN_DATA_DIR", dir)
        .env("CAPSTAN_ADMIN_PASSWORD", ADMIN_PASSWORD);
    let mut proc = Proc::spawn(cmd, dir.parent().expect("parent").join(log));
    let status = proc.wait_exit(Duration::from_secs(20));
    let out = proc.output();
    let status = status.unwrap_or_else(|| panic!("the core must refuse to start; it runs:\n{out}"));
    assert!(!status.success(), "exit status {status}:\n{out}");
    out
}

/// Issue 10 part 4: a store whose last 16 KiB were overwritten made every login 500
/// (redb panicked); a 0-byte store made the core start empty with a new signing key.
#[test]
fn a_damaged_or_empty_store_is_refused_with_recovery_steps() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let mut core = Core::start(&data, free_port(), &[]);
    core.api().create_node("before-damage");
    core.proc.terminate();
    let store = data.join("capstan.redb");
    let good = std::fs::read(&store).expect("read store");

    let mut damaged = good.clone();
    let n = damaged.len();
    assert!(n > 16384, "store of {n} bytes");
    damaged[n - 16384..].fill(0xab);
    std::fs::write(&store, &damaged).expect("damage");
    let out = refused_start(&data, "damaged.log");
    assert!(
        out.contains("is damaged") && out.contains("Recovery") && out.contains("backup"),
        "clear message with recovery steps:\n{out}"
    );

    let mut headless = good.clone();
    headless[..512].fill(0);
    std::fs::write(&store, &headless).expect("damage the header");
    let out = refused_start(&data, "headless.log");
    assert!(
        out.contains("is damaged") && out.contains("Recovery"),
        "{out}"
    );

    std::fs::write(&store, b"").expect("truncate");
    let out = refused_start(&data, "empty.log");
    assert!(
        out.contains("is empty (0 bytes)") && out.contains("Recovery"),
        "0-byte store refused:\n{out}"
    );
    assert_eq!(
        std::fs::metadata(&store).expect("stat").len(),
        0,
        "left as it was"
    );

    // The intact file still opens with its data.
    std::fs::write(&store, &good).expect("restore");
    let core = Core::start(&data, free_port(), &[]);
    let (_, nodes) = core.api().get("/api/agents");
    assert_eq!(nodes[0]["name"], "before-damage");
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// One beat of a fake agent carrying one sample: `containers` containers of `per` series
/// each, named from `tag` (a new tag makes new series).
fn beat(
    base: &str,
    id: &str,
    key: &str,
    beat_no: u64,
    tag: &str,
    containers: usize,
    per: usize,
) -> (u16, Value) {
    let containers: Vec<Value> = (0..containers)
        .map(|c| {
            let values: serde_json::Map<String, Value> = (0..per)
                .map(|k| (format!("s{tag}.v{k}"), json!(k as f64)))
                .collect();
            json!({"name": format!("c{c}"), "id": "0123456789ab", "image": "x", "state": "running",
                   "status": "Up", "values": values})
        })
        .collect();
    let body = json!({
        "protocol": capstan_proto::PROTOCOL_VERSION, "agent_version": "0.0.0-fake", "hostname": "fake", "os": "fake",
        "uptime_secs": 1, "interval_ms": 1000,
        "metrics": {"beat": beat_no, "samples": [{"t": now_s(), "host": {"cpu.busy": 1.0}, "containers": containers}]}
    });
    let r = http()
        .post(format!("{base}/api/heartbeat"))
        .header("x-capstan-agent-id", id)
        .header("x-capstan-agent-key", key)
        .json(&body)
        .send()
        .expect("beat");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Store pages per series, its share of its node's frames included: README "Disk use"
/// (bench-store measures ≈ 370 KB), with a margin.
const PAGES_PER_SERIES: u64 = 400_000;

/// Issue 10 part 3: 2,000 new series names per beat for 40 beats grew the store from
/// 0.6 MB to 1.13 GB and the core's RSS from 32 to 629 MB.
#[test]
fn a_node_sending_endless_new_series_stays_within_its_budget() {
    const BUDGET: u64 = 300;
    let tmp = tempfile::tempdir().expect("tempdir");
    let core = Core::start(
        tmp.path(),
        free_port(),
        &[("CAPSTAN_MAX_SERIES_PER_NODE", "300")],
    );
    let api = core.api();
    let (id, key) = api.create_node("flooder");
    let pid = core.proc.pid().expect("pid");
    let rss_before = rss_kb(pid);
    let mut last = Value::Null;
    for i in 0..40u64 {
        let started = Instant::now();
        // 10 containers × 200 series, every name new.
        let (status, body) = beat(&core.url, &id, &key, i + 1, &format!("b{i}"), 10, 200);
        assert_eq!(status, 200, "beat {i}: {body}");
        last = body;
        std::thread::sleep(Duration::from_millis(1000).saturating_sub(started.elapsed()));
    }
    let ack = &last["metrics"];
    assert_eq!(ack["series_budget"], BUDGET, "reply: {last}");
    assert_eq!(
        ack["series"], BUDGET,
        "the budget is used, not exceeded: {last}"
    );
    assert!(
        ack["series_dropped"].as_u64().unwrap_or(0) >= 1000,
        "the reply tells the agent its new series are dropped: {last}"
    );
    let (_, view) = api.get(&format!("/api/agents/{id}"));
    assert_eq!(view["metrics_series"], BUDGET, "{view}");
    assert_eq!(view["metrics_series_budget"], BUDGET, "{view}");
    assert!(
        view["metrics_series_dropped"].as_u64().unwrap_or(0) >= 1000,
        "{view}"
    );
    // Every admitted series has its blocks by now (40 reserved per flush).
    std::thread::sleep(Duration::from_secs(3));
    let size = std::fs::metadata(tmp.path().join("capstan.redb"))
        .expect("store")
        .len();
    // The README's formula: the file is at most twice the pages in use.
    let bound = 2 * (4_000_000 + BUDGET * PAGES_PER_SERIES);
    assert!(size <= bound, "store {size} bytes > bound {bound}");
    let rss_after = rss_kb(pid);
    eprintln!("store {size} bytes (bound {bound}); core RSS {rss_before} → {rss_after} kB");
    assert!(
        rss_after < rss_before + 200_000,
        "core RSS grew from {rss_before} to {rss_after} kB"
    );
}

/// The free bytes of the filesystem holding `path` (`df` in 1 KiB blocks).
fn free_kb(path: &Path) -> u64 {
    let out = Command::new("df")
        .arg("-k")
        .arg("--output=avail")
        .arg(path)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

/// Fills the filesystem holding `dir` with one file, to the last byte.
fn fill(file: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(file).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = vec![0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.flush();
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Issue 10 part 4: on a full disk the first failed commit poisoned redb; every later
/// write answered 500 until a restart while `/api/ping` stayed 200. Now writes answer 503
/// `store_unavailable`, `/api/ready` says so, and within 15 s of space returning both
/// recover by themselves, with every acknowledged write still there after a restart.
#[test]
fn a_full_disk_is_survived_and_writes_resume_once_space_returns() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs (needs root)");
        return;
    }
    let _unmount = Unmount(mnt.clone());
    let data = mnt.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let port = free_port();
    let core = Core::start(&data, port, &[]);
    let api = core.api();
    let (id, key) = api.create_node("on-a-small-disk");
    let ready = |api: &Api| api.get("/api/ready");
    assert_eq!(ready(&api).0, 200);

    // A node with some series, then the disk fills up.
    for i in 0..3u64 {
        let (status, _) = beat(&core.url, &id, &key, i + 1, "base", 2, 20);
        assert_eq!(status, 200);
        std::thread::sleep(Duration::from_secs(1));
    }
    let filler = mnt.join("filler");
    fill(&filler);
    assert!(free_kb(&mnt) < 64, "disk full: {} kB free", free_kb(&mnt));

    // Writes that need space: new series (their blocks) and new nodes.
    let mut acknowledged = vec![id.clone()];
    let mut saw_503_write = None;
    let mut saw_503_ready = None;
    let start = Instant::now();
    let mut n = 4u64;
    while start.elapsed() < Duration::from_secs(30)
        && (saw_503_write.is_none() || saw_503_ready.is_none())
    {
        let (status, body) = beat(&core.url, &id, &key, n, &format!("full{n}"), 5, 40);
        n += 1;
        assert!(status == 200 || status == 503, "beat: {status} {body}");
        let (status, body) = api.post("/api/agents", json!({"name": format!("n{n}")}));
        match status {
            201 => acknowledged.push(body["id"].as_str().expect("id").to_string()),
            503 => {
                assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
                saw_503_write.get_or_insert(body);
            }
            other => panic!("a write on a full disk must answer 201 or 503, not {other}: {body}"),
        }
        let (status, body) = ready(&api);
        if status == 503 {
            assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
            saw_503_ready.get_or_insert(body);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        saw_503_write.is_some(),
        "no write failed with 503 on the full disk"
    );
    assert!(
        saw_503_ready.is_some(),
        "/api/ready never said 503 on the full disk"
    );
    let (ping, _) = api.get("/api/ping");
    assert_eq!(ping, 200, "liveness stays");

    // Space returns: within 15 s writes succeed again and the core is ready.
    std::fs::remove_file(&filler).expect("free space");
    let freed = Instant::now();
    wait_for(
        "a write to succeed after space returned",
        Duration::from_secs(15),
        || {
            let (status, body) = api.post("/api/agents", json!({"name": "after-recovery"}));
            (status == 201).then(|| acknowledged.push(body["id"].as_str().expect("id").to_string()))
        },
    );
    wait_for(
        "/api/ready 200 after space returned",
        Duration::from_secs(15),
        || (ready(&api).0 == 200).then_some(()),
    );
    assert!(
        freed.elapsed() <= Duration::from_secs(15),
        "recovered after {:?}",
        freed.elapsed()
    );
    let (status, _) = beat(&core.url, &id, &key, n + 1, "base", 2, 20);
    assert_eq!(status, 200);
    eprintln!("recovered {:?} after space returned", freed.elapsed());
    assert!(core.proc.output().contains("the store writes again"));

    // Nothing acknowledged is lost, across a restart too.
    let Core { mut proc, .. } = core;
    proc.terminate();
    let core = Core::start(&data, port, &[]);
    let (_, nodes) = core.api().get("/api/agents");
    let have: Vec<&str> = nodes
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    for id in &acknowledged {
        assert!(have.contains(&id.as_str()), "acknowledged node {id} lost");
    }
}
