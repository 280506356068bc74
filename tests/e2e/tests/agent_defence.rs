//! The agent against a hostile core (issue 10, part 1). A fake core on loopback plays an
//! attacker holding the core's address: it answers every beat with a desired state of
//! its choosing. The real agent, driving a real NGINX, must apply a valid state and
//! refuse the whole document when any value breaks the core's own grammars: nothing is
//! written outside its state dir, NGINX keeps serving the old config, and the next beat
//! reports the error.
//!
//! The fake core speaks both protocols (the typed `desired.nginx` section and the old
//! `update_nginx` task), so the same test shows the attacks working against an agent
//! from before (`CAPSTAN_BIN_DIR` pointing at old binaries) and failing against this one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_e2e::{NginxGuard, free_port, get_host, live_files, start_agent, wait_for};
use serde_json::{Value, json};

const GOOD: &str = "good.capstan-e2e.test";
const INJ: &str = "inj.test; location /leak/ { alias /etc/; autoindex on; } server_tokens off";

/// What the fake core answers (the NGINX section and its version) and the beats it got.
#[derive(Default)]
struct Shared {
    section: Option<(u64, Value)>,
    /// `desired.logs` of every reply.
    logs: Value,
    beats: Vec<Value>,
}

/// A loopback "core" answering `POST /api/heartbeat` with whatever `Shared` holds.
fn fake_core(shared: Arc<Mutex<Shared>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let shared = shared.clone();
            std::thread::spawn(move || serve_connection(conn, &shared));
        }
    });
    port
}

fn serve_connection(conn: TcpStream, shared: &Mutex<Shared>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut out = conn;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let (mut length, mut gzip) = (0usize, false);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("content-encoding:") && lower.contains("gzip") {
                gzip = true;
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if gzip {
            let mut plain = Vec::new();
            let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain);
            body = plain;
        }
        let reply = if request_line.starts_with("POST /api/heartbeat") {
            let beat: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut s = shared.lock().expect("lock");
            s.beats.push(beat);
            let mut reply = reply_for(s.section.as_ref());
            if !s.logs.is_null() {
                reply["desired"]["logs"] = s.logs.clone();
            }
            reply
        } else {
            json!({})
        };
        let text = reply.to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            text.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

/// The reply in both protocols: the typed section (protocol 2) and, for an agent from
/// before, the same state as an `update_nginx` task with its version inside.
fn reply_for(section: Option<&(u64, Value)>) -> Value {
    let Some((version, state)) = section else {
        return json!({"desired": {}, "desired_config_version": 0, "tasks": [],
            "server_time": "2026-01-01T00:00:00Z"});
    };
    let mut old_payload = state.clone();
    old_payload["version"] = json!(version);
    json!({
        "desired": {"nginx": {"version": version, "state": state}},
        "desired_config_version": version,
        "tasks": [{"id": format!("nginx-{version:016x}"), "type": "update_nginx", "payload": old_payload}],
        "server_time": "2026-01-01T00:00:00Z",
    })
}

fn service(id: &str, name: &str, domain: &str, upstream: u16) -> Value {
    json!({
        "id": id, "name": name, "domains": [domain], "balance": "round_robin",
        "routes": [{"path": "/", "targets": [
            {"kind": "address", "host": "127.0.0.1", "port": upstream, "weight": 1, "backup": false}
        ]}],
        "connect_timeout_secs": 5, "read_timeout_secs": 60, "send_timeout_secs": 60,
        "client_max_body_size_mb": 1, "request_headers": [], "response_headers": [],
        "websocket": false, "max_fails": 1, "fail_timeout_secs": 10,
    })
}

fn state(services: Vec<Value>) -> Value {
    json!({"services": services, "trusted_proxies": [], "tls_routes": []})
}

/// A plain HTTP server answering every request with `body`.
fn upstream(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// Every path under `root` whose name contains `needle`.
fn find(root: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return hits;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.to_string_lossy().contains(needle) {
            hits.push(path.display().to_string());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            hits.extend(find(&path, needle));
        }
    }
    hits
}

fn last_beat(shared: &Mutex<Shared>) -> Value {
    shared
        .lock()
        .expect("lock")
        .beats
        .last()
        .cloned()
        .unwrap_or(Value::Null)
}

fn applied(beat: &Value) -> u64 {
    beat["applied"]["nginx"]
        .as_u64()
        .or_else(|| beat["applied_config_version"].as_u64())
        .unwrap_or(0)
}

#[test]
fn an_invalid_desired_state_from_the_core_is_refused_whole_and_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let shared = Arc::new(Mutex::new(Shared::default()));
    let core_port = fake_core(shared.clone());
    let old = upstream("old");
    let http = free_port();
    let https = free_port();
    let state_dir = tmp.path().join("agent");
    let nginx_dir = state_dir.join("nginx");
    let _nginx = NginxGuard(nginx_dir.clone());
    let core_url = format!("http://127.0.0.1:{core_port}");
    let mut agent = start_agent(
        &state_dir,
        &[
            ("CORE_URL", core_url.as_str()),
            ("AGENT_ID", "0b6f0c1e-4a55-4c1e-9b8e-2f6a7d9e1c20"),
            ("AGENT_KEY", "fake-core-does-not-check"),
            ("CAPSTAN_AGENT_NGINX", "true"),
            ("CAPSTAN_AGENT_NGINX_LISTEN", "127.0.0.1"),
            ("CAPSTAN_AGENT_NGINX_HTTP_PORT", &http.to_string()),
            ("CAPSTAN_AGENT_NGINX_HTTPS_PORT", &https.to_string()),
            ("ADVERTISE_ADDRESS", "127.0.0.1"),
        ],
    );

    // A valid state applies and serves.
    let good = service("11111111-2222-4333-8444-555555555555", "good", GOOD, old);
    let v1 = 1001;
    shared.lock().expect("lock").section = Some((v1, state(vec![good.clone()])));
    wait_for("the valid state served", Duration::from_secs(30), || {
        (get_host(http, GOOD, "/").ok()? == (200, "old".to_string())).then_some(())
    });
    wait_for("v1 reported applied", Duration::from_secs(10), || {
        (applied(&last_beat(&shared)) == v1).then_some(())
    });
    let before = live_files(&nginx_dir);
    assert!(!before.is_empty());

    // Attack 1: service names that walk out of the config directory (the issue's
    // literal one, and one deep enough to leave the agent's state dir).
    let deep = "../../../../../escaped/demo.service.d/override";
    let v2 = 1002;
    shared.lock().expect("lock").section = Some((
        v2,
        state(vec![
            good.clone(),
            service(
                "22222222-2222-4333-8444-555555555555",
                "../../../../tmp/x/demo.service.d/override",
                "evil.capstan-e2e.test",
                old,
            ),
            service(
                "33333333-2222-4333-8444-555555555555",
                deep,
                "evil2.capstan-e2e.test",
                old,
            ),
        ]),
    ));
    let error = wait_for("v2 refused in a beat", Duration::from_secs(15), || {
        let beat = last_beat(&shared);
        let e = &beat["nginx"]["error"];
        (e["version"].as_u64() == Some(v2)).then(|| e["message"].as_str().unwrap_or("").to_string())
    });
    assert!(
        error.contains("services[1].name"),
        "names the field: {error}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        find(tmp.path(), "demo.service.d"),
        Vec::<String>::new(),
        "nothing written for the hostile names, inside or outside the state dir"
    );
    assert!(!tmp.path().join("escaped").exists());
    assert_eq!(live_files(&nginx_dir), before, "running config untouched");
    assert_eq!(get_host(http, GOOD, "/"), Ok((200, "old".to_string())));
    assert_eq!(applied(&last_beat(&shared)), v1, "still reports v1 applied");

    // Attack 2: a domain carrying NGINX directives.
    let v3 = 1003;
    shared.lock().expect("lock").section = Some((
        v3,
        state(vec![
            good.clone(),
            service("44444444-2222-4333-8444-555555555555", "inj", INJ, old),
        ]),
    ));
    let error = wait_for("v3 refused in a beat", Duration::from_secs(15), || {
        let beat = last_beat(&shared);
        let e = &beat["nginx"]["error"];
        (e["version"].as_u64() == Some(v3)).then(|| e["message"].as_str().unwrap_or("").to_string())
    });
    assert!(
        error.contains("services[1].domains[0]"),
        "names the field: {error}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let leak = get_host(http, "inj.test", "/leak/hostname");
    assert!(
        !matches!(&leak, Ok((200, _))),
        "/etc/ must not be served: {leak:?}"
    );
    assert_eq!(live_files(&nginx_dir), before, "running config untouched");
    assert_eq!(get_host(http, GOOD, "/"), Ok((200, "old".to_string())));
    assert_eq!(applied(&last_beat(&shared)), v1);

    // A watched log source that is no container name never reaches the Docker API.
    shared.lock().expect("lock").logs = json!([{"source": "../../images/json", "tail": 10}]);
    wait_for("the log request ignored", Duration::from_secs(10), || {
        agent
            .output()
            .contains("ignoring a log request")
            .then_some(())
    });
    assert!(agent.is_running(), "{}", agent.output());
}
