//! Harness for end-to-end tests: real `capstan-core` and `capstan-agent` processes on
//! loopback with temp data dirs. Binaries come from `CAPSTAN_BIN_DIR` (default
//! `<workspace>/target/debug`); `scripts/test` builds them first.

pub mod docker;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("CAPSTAN_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/debug")
                .to_path_buf()
        });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not found: run `cargo build --workspace --bins` first (or set CAPSTAN_BIN_DIR)",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `check` every 100 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed (SIGKILL) when dropped; its output goes to a log file.
pub struct Proc {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("log file");
        let err = file.try_clone().expect("clone log");
        cmd.stdout(Stdio::from(file)).stderr(Stdio::from(err));
        let child = cmd.spawn().expect("spawn");
        Proc {
            child: Some(child),
            log,
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for exit (bounded).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    /// The process ID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits (bounded) for the process to exit by itself; `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(c) = &mut self.child
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The exit status once the process has exited (reaped), else None.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub const ADMIN_PASSWORD: &str = "e2e-admin-password";

/// A running core with its own data dir and port.
pub struct Core {
    pub dir: PathBuf,
    pub port: u16,
    pub proc: Proc,
    pub url: String,
}

impl Core {
    pub fn start(dir: &Path, port: u16, extra_env: &[(&str, &str)]) -> Core {
        let mut cmd = Command::new(bin("capstan-core"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CAPSTAN_LISTEN", format!("127.0.0.1:{port}"))
            .env("CAPSTAN_DATA_DIR", dir)
            .env("CAPSTAN_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("CAPSTAN_PRESENCE_FLUSH_SECS", "1")
            .env("RUST_LOG", "info");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let proc = Proc::spawn(cmd, dir.join(format!("core-{n}.log")));
        let url = format!("http://127.0.0.1:{port}");
        let core = Core {
            dir: dir.to_path_buf(),
            port,
            proc,
            url,
        };
        let client = http();
        let ping = format!("{}/api/ping", core.url);
        wait_for("core to answer /api/ping", Duration::from_secs(20), || {
            client.get(&ping).send().ok().filter(|r| r.status() == 200)
        });
        core
    }

    pub fn api(&self) -> Api {
        Api::login(&self.url)
    }
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// An admin session against the core's REST API.
pub struct Api {
    pub base: String,
    pub token: String,
    client: reqwest::blocking::Client,
}

impl Api {
    pub fn login(base: &str) -> Api {
        let client = http();
        let resp: serde_json::Value = client
            .post(format!("{base}/api/auth/login"))
            .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .expect("login request")
            .json()
            .expect("login json");
        let token = resp["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("login failed: {resp}"))
            .to_string();
        Api {
            base: base.to_string(),
            token,
            client,
        }
    }

    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    pub fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    /// Creates a node; returns (id, key).
    pub fn create_node(&self, name: &str) -> (String, String) {
        let (status, body) = self.post("/api/agents", serde_json::json!({ "name": name }));
        assert_eq!(status, 201, "create node: {body}");
        (
            body["id"].as_str().expect("id").to_string(),
            body["key"].as_str().expect("key").to_string(),
        )
    }

    pub fn node_status(&self, id: &str) -> String {
        let (_, body) = self.get(&format!("/api/agents/{id}"));
        body["status"].as_str().unwrap_or("").to_string()
    }
}

/// Starts an agent with the given environment (CORE_URL etc.) in `state_dir`.
pub fn start_agent(state_dir: &Path, env: &[(&str, &str)]) -> Proc {
    std::fs::create_dir_all(state_dir).expect("state dir");
    let mut cmd = Command::new(bin("capstan-agent"));
    cmd.arg("run")
        .current_dir(state_dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CAPSTAN_AGENT_STATE_DIR", state_dir)
        .env("CAPSTAN_AGENT_BACKOFF_MAX_MS", "2000")
        // Tests that want NGINX managed say so (and pick loopback ports).
        .env("CAPSTAN_AGENT_NGINX", "false")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let n = std::fs::read_dir(state_dir).map(|d| d.count()).unwrap_or(0);
    Proc::spawn(cmd, state_dir.join(format!("agent-{n}.log")))
}

/// Stops an NGINX master started by an agent under `nginx_dir` (agents leave NGINX
/// running on purpose; tests must not).
pub struct NginxGuard(pub PathBuf);

impl Drop for NginxGuard {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.0.join("run/nginx.pid")) {
            let _ = Command::new("kill").arg("-QUIT").arg(pid.trim()).status();
        }
    }
}

/// One HTTP/1.1 GET with a Host header over a fresh connection; returns (status, body).
/// A connection closed by a reload before any byte is retried once, as a browser does.
pub fn get_host(port: u16, host: &str, path: &str) -> Result<(u16, String), String> {
    match get_host_once(port, host, path) {
        Err(e) if e.starts_with("closed") || e.starts_with("reset") => {
            get_host_once(port, host, path)
        }
        other => other,
    }
}

fn get_host_once(port: u16, host: &str, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("closed: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("reset: {e}"))?;
    if buf.is_empty() {
        return Err("closed: empty reply".into());
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad reply: {text:.80}"))?;
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    Ok((status, body))
}

/// The live NGINX config under `nginx_dir` (`current` generation): relative path → text.
pub fn live_files(nginx_dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let cur = nginx_dir.join("current");
    for sub in ["", "http", "stream"] {
        let Ok(entries) = std::fs::read_dir(cur.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().is_file() {
                out.insert(
                    format!("{sub}/{}", e.file_name().to_string_lossy()),
                    std::fs::read_to_string(e.path()).unwrap_or_default(),
                );
            }
        }
    }
    out
}
