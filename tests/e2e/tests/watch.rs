//! Issue 11, end to end: the agent's long-poll beside its beat. Agents here beat every
//! 5 s, so a change applied well before the next regular beat can only have come through
//! the watch. Real core, real agent, real NGINX; upstreams are tiny HTTP servers in the
//! test; logs come from a real container.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use capstan_e2e::{Api, Core, NginxGuard, Proc, free_port, get_host, start_agent, wait_for};
use serde_json::{Value, json};

const DOMAIN: &str = "watch.capstan-e2e.test";
const BEAT_MS: u64 = 5000;

/// An HTTP server answering every request with `body`, for the test's lifetime.
fn upstream(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A TCP relay to `target` that closes a connection once the upstream side has said
/// nothing for `idle` (like a proxy's read timeout): every long-poll held longer is cut.
fn cutting_proxy(target: u16, idle: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (mut c_read, mut s_write) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n) = c_read.read(&mut buf) {
                    if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_write.shutdown(Shutdown::Both);
                let _ = c_read.shutdown(Shutdown::Both);
            });
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                s_read.set_read_timeout(Some(idle)).ok();
                let mut buf = [0u8; 16384];
                while let Ok(n) = s_read.read(&mut buf) {
                    if n == 0 || c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_write.shutdown(Shutdown::Both);
                let _ = s_read.shutdown(Shutdown::Both);
            });
        }
    });
    port
}

struct Node {
    id: String,
    port: u16,
    _agent: Proc,
    _nginx: NginxGuard,
}

fn start_node(api: &Api, core_url: &str, root: &Path) -> Node {
    let (id, key) = api.create_node("watch-node");
    let port = free_port();
    let https = free_port();
    let state = root.join("node");
    let agent = start_agent(
        &state,
        &[
            ("CORE_URL", core_url),
            ("AGENT_ID", id.as_str()),
            ("AGENT_KEY", key.as_str()),
            ("CAPSTAN_AGENT_NGINX", "true"),
            ("CAPSTAN_AGENT_NGINX_LISTEN", "127.0.0.1"),
            ("CAPSTAN_AGENT_NGINX_HTTP_PORT", &port.to_string()),
            ("CAPSTAN_AGENT_NGINX_HTTPS_PORT", &https.to_string()),
            ("ADVERTISE_ADDRESS", "127.0.0.1"),
            ("HEARTBEAT_INTERVAL_MS", &BEAT_MS.to_string()),
            ("CAPSTAN_AGENT_BACKOFF_MAX_MS", "10000"),
            ("RUST_LOG", "info,capstan_agent=debug"),
        ],
    );
    Node {
        id,
        port,
        _nginx: NginxGuard(state.join("nginx")),
        _agent: agent,
    }
}

fn service(node: &str, upstream: u16) -> Value {
    json!({
        "name": "watched",
        "domains": [DOMAIN],
        "placements": [{"node_id": node, "targets": [
            {"kind": "address", "host": "127.0.0.1", "port": upstream}]}],
    })
}

fn last_seen(api: &Api, node: &str) -> Option<String> {
    let (_, view) = api.get(&format!("/api/agents/{node}"));
    view["last_seen_at"].as_str().map(str::to_string)
}

/// Waits for a regular beat to land and returns when it was seen: the next regular beat
/// is a full interval after it.
fn just_after_a_beat(api: &Api, node: &str) -> Instant {
    let before = last_seen(api, node);
    let start = Instant::now();
    loop {
        if last_seen(api, node) != before {
            return Instant::now();
        }
        assert!(
            start.elapsed() < Duration::from_millis(3 * BEAT_MS),
            "no beat seen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Right after a beat, PUTs the service to `to` and returns how long after that beat the
/// new target answered through NGINX.
fn change_and_time(api: &Api, node: &Node, svc: &str, to: (u16, &str)) -> Duration {
    let beat = just_after_a_beat(api, &node.id);
    let (status, body) = api.send(
        "PUT",
        &format!("/api/services/{svc}"),
        service(&node.id, to.0),
    );
    assert_eq!(status, 200, "{body}");
    wait_for(
        "the new target through NGINX",
        Duration::from_millis(3 * BEAT_MS),
        || (get_host(node.port, DOMAIN, "/").ok()? == (200, to.1.to_string())).then_some(()),
    );
    beat.elapsed()
}

#[test]
fn a_change_reaches_nginx_before_the_next_beat_could_carry_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let core_dir = tmp.path().join("core");
    std::fs::create_dir_all(&core_dir).expect("mkdir");
    let port = free_port();
    let mut core = Core::start(&core_dir, port, &[]);
    let api = core.api();
    let node = start_node(&api, &core.url, tmp.path());
    wait_for("node online", Duration::from_secs(20), || {
        (api.node_status(&node.id) == "online").then_some(())
    });
    let (one, two, three) = (upstream("one"), upstream("two"), upstream("three"));
    let (status, svc) = api.post("/api/services", service(&node.id, one));
    assert_eq!(status, 201, "{svc}");
    let svc = svc["id"].as_str().expect("id").to_string();
    wait_for("first target served", Duration::from_secs(20), || {
        (get_host(node.port, DOMAIN, "/").ok()? == (200, "one".to_string())).then_some(())
    });

    // Each change is made just after a regular beat: the next one is 5 s away, so only
    // the watch can explain an apply well inside that.
    let mut figures = Vec::new();
    for to in [(two, "two"), (three, "three"), (one, "one")] {
        let took = change_and_time(&api, &node, &svc, to);
        assert!(
            took < Duration::from_millis(BEAT_MS - 1500),
            "applied {took:?} after the last beat: that is the next beat's doing, not the watch's"
        );
        figures.push(took);
    }
    eprintln!("beat → PUT → served through NGINX (5 s beats): {figures:?}");

    // A restarted core (new boot ID, counters from zero): the watch reconnects by itself.
    core.proc.kill9();
    core = Core::start(&core_dir, port, &[]);
    let api = core.api();
    wait_for("node online again", Duration::from_secs(20), || {
        (api.node_status(&node.id) == "online").then_some(())
    });
    // The watch retries with backoff (≤ a few seconds after such a short outage).
    std::thread::sleep(Duration::from_secs(6));
    let took = change_and_time(&api, &node, &svc, (two, "two"));
    assert!(
        took < Duration::from_millis(BEAT_MS - 1500),
        "after a core restart: {took:?}"
    );
}

#[test]
fn a_proxy_cutting_long_requests_shortens_the_watch_instead_of_losing_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let core_dir = tmp.path().join("core");
    std::fs::create_dir_all(&core_dir).expect("mkdir");
    let core = Core::start(&core_dir, free_port(), &[]);
    let api = core.api();
    // The agent reaches the core only through a relay that cuts anything silent for 3 s
    // (its watch asks for 25 s).
    let proxy = cutting_proxy(core.port, Duration::from_secs(3));
    let node = start_node(&api, &format!("http://127.0.0.1:{proxy}"), tmp.path());
    wait_for("node online", Duration::from_secs(20), || {
        (api.node_status(&node.id) == "online").then_some(())
    });
    let (one, two) = (upstream("one"), upstream("two"));
    let (status, svc) = api.post("/api/services", service(&node.id, one));
    assert_eq!(status, 201, "{svc}");
    let svc = svc["id"].as_str().expect("id").to_string();
    wait_for("first target served", Duration::from_secs(20), || {
        (get_host(node.port, DOMAIN, "/").ok()? == (200, "one".to_string())).then_some(())
    });
    // Let the first long watch be cut and the agent adapt.
    wait_for(
        "the agent to notice the cut",
        Duration::from_secs(30),
        || {
            let log = std::fs::read_to_string(&node._agent.log).unwrap_or_default();
            log.contains("holding it for less").then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    for to in [(two, "two"), (one, "one")] {
        let took = change_and_time(&api, &node, &svc, to);
        assert!(
            took < Duration::from_millis(BEAT_MS - 1500),
            "through a cutting proxy: {took:?}"
        );
    }
    assert_eq!(api.node_status(&node.id), "online", "beats kept flowing");
}

#[test]
fn log_lines_through_the_long_poll_with_slow_beats() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let core_dir = tmp.path().join("core");
    std::fs::create_dir_all(&core_dir).expect("mkdir");
    let core = Core::start(&core_dir, free_port(), &[]);
    let api = core.api();
    let (node, key) = api.create_node("logs-node");
    let _agent = start_agent(
        &tmp.path().join("agent"),
        &[
            ("CORE_URL", core.url.as_str()),
            ("AGENT_ID", node.as_str()),
            ("AGENT_KEY", key.as_str()),
            ("HEARTBEAT_INTERVAL_MS", &BEAT_MS.to_string()),
            ("CAPSTAN_AGENT_BACKOFF_MAX_MS", "10000"),
        ],
    );
    wait_for("node online", Duration::from_secs(20), || {
        (api.node_status(&node) == "online").then_some(())
    });
    let name = format!("capstan-e2e-{}-watchlogs", std::process::id());
    // Start watching right after a beat: the next regular one is 5 s away, the first
    // poll gives the agent 2.5 s to answer, so only the watch can make it.
    let beat = just_after_a_beat(&api, &node);
    // Interleaved stdout/stderr, 200 lines, starting after the watch is on.
    let c = capstan_e2e::docker::script(
        &name,
        "sleep 4; i=0; while [ $i -lt 200 ]; do if [ $((i % 2)) = 0 ]; then echo line-$i >&2; else echo line-$i; fi; i=$((i+1)); sleep 0.02; done; sleep 3600",
    );
    assert!(
        beat.elapsed() < Duration::from_millis(2000),
        "container start took too long for this test's timing"
    );
    let started = Instant::now();
    let (status, first) = api.get(&format!("/api/agents/{node}/logs/{}?tail=0", c.name));
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["pending"],
        false,
        "the agent answered within {:?}, before its next beat",
        started.elapsed()
    );
    let mut cursor = first["cursor"].as_u64().expect("cursor");
    let mut lines: Vec<Value> = first["lines"].as_array().cloned().unwrap_or_default();
    let mut requests = 1;
    let mut lag_ms: Vec<i64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines.iter().any(|l| l["text"] == "line-199") && Instant::now() < deadline {
        let (status, body) = api.get(&format!(
            "/api/agents/{node}/logs/{}?cursor={cursor}&wait=8",
            c.name
        ));
        requests += 1;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["skipped"], 0, "{body}");
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        for l in body["lines"].as_array().cloned().unwrap_or_default() {
            if let Some(ts) = l["ts"].as_str().and_then(unix_ms) {
                lag_ms.push(now_ms - ts);
            }
            lines.push(l);
        }
        cursor = body["cursor"].as_u64().expect("cursor");
    }
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["text"].as_str()).collect();
    let expected: Vec<String> = (0..200).map(|i| format!("line-{i}")).collect();
    assert_eq!(texts, expected, "every line once, in order");
    for (i, l) in lines.iter().enumerate() {
        let want = if i % 2 == 0 { "stderr" } else { "stdout" };
        assert_eq!(l["stream"], want, "{l}");
    }
    lag_ms.sort_unstable();
    let p95 = lag_ms.get(lag_ms.len() * 95 / 100).copied().unwrap_or(0);
    eprintln!(
        "{} lines in {requests} long-polls; write → read p95 {p95} ms, max {:?} ms",
        lines.len(),
        lag_ms.last()
    );
    assert!(p95 < 1000, "lines arrive promptly: p95 {p95} ms");
    // An idle viewer holds one request per `wait`.
    let idle = Instant::now();
    let (status, body) = api.get(&format!(
        "/api/agents/{node}/logs/{}?cursor={cursor}&wait=3",
        c.name
    ));
    assert_eq!(status, 200, "{body}");
    assert!(
        body["lines"].as_array().is_some_and(Vec::is_empty),
        "{body}"
    );
    assert!(idle.elapsed() >= Duration::from_millis(2900), "held");
}

/// `2026-01-01T00:00:00.123456789Z` → Unix ms (UTC only, as Docker stamps).
fn unix_ms(ts: &str) -> Option<i64> {
    let (date, rest) = ts.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let rest = rest.trim_end_matches('Z');
    let (hms, frac) = rest.split_once('.').unwrap_or((rest, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
    let ms: i64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60 * 1000 + s * 1000 + ms)
}
