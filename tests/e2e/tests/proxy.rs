//! Reverse proxy and domain routing end to end: a real core, two real agents each driving
//! a real NGINX (one of them the edge) on loopback ports, and real Docker containers.
//! Client → edge NGINX → node NGINX → containers, by Host header.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use capstan_e2e::docker::{Container, Network};
use capstan_e2e::{
    Api, Core, NginxGuard, Proc, free_port, get_host, live_files, start_agent, wait_for,
};
use serde_json::{Value, json};

const DOMAIN: &str = "app.capstan-e2e.test";

struct Node {
    id: String,
    port: u16,
    nginx_dir: PathBuf,
    _agent: Proc,
    _nginx: NginxGuard,
}

fn start_node(api: &Api, core: &Core, root: &Path, name: &str) -> Node {
    start_node_with(api, core, root, name, &[])
}

fn start_node_with(
    api: &Api,
    core: &Core,
    root: &Path,
    name: &str,
    extra: &[(&str, &str)],
) -> Node {
    let (id, key) = api.create_node(name);
    let port = free_port();
    let https = free_port();
    let state = root.join(name);
    let nginx_dir = state.join("nginx");
    let (port_text, https_text) = (port.to_string(), https.to_string());
    let mut env = vec![
        ("CORE_URL", core.url.as_str()),
        ("AGENT_ID", id.as_str()),
        ("AGENT_KEY", key.as_str()),
        ("CAPSTAN_AGENT_NGINX", "true"),
        ("CAPSTAN_AGENT_NGINX_LISTEN", "127.0.0.1"),
        ("CAPSTAN_AGENT_NGINX_HTTP_PORT", port_text.as_str()),
        ("CAPSTAN_AGENT_NGINX_HTTPS_PORT", https_text.as_str()),
        ("ADVERTISE_ADDRESS", "127.0.0.1"),
    ];
    env.extend_from_slice(extra);
    let agent = start_agent(&state, &env);
    Node {
        id,
        port,
        _nginx: NginxGuard(nginx_dir.clone()),
        nginx_dir,
        _agent: agent,
    }
}

fn container_target(name: &str) -> Value {
    json!({"kind": "container", "container": name, "port": 80})
}

fn service_body(name: &str, node: &str, targets: Vec<Value>) -> Value {
    json!({
        "name": name,
        "domains": [DOMAIN],
        "placements": [{"node_id": node, "targets": targets}],
    })
}

/// Bodies seen over `n` requests through `port`.
fn sample(port: u16, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        match get_host(port, DOMAIN, "/") {
            Ok((200, body)) => *seen.entry(body).or_insert(0) += 1,
            Ok((status, body)) => {
                *seen.entry(format!("HTTP {status} {body:.40}")).or_insert(0) += 1
            }
            Err(e) => *seen.entry(format!("error {e}")).or_insert(0) += 1,
        }
    }
    seen
}

fn service_state(api: &Api, id: &str) -> Vec<(String, String)> {
    let (_, svc) = api.get(&format!("/api/services/{id}"));
    svc["status"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["role"].as_str().unwrap_or("").to_string(),
                        s["state"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn edge_to_node_to_containers_with_zero_downtime_changes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = format!("{}", std::process::id());
    let net = Network::create(&format!("capstan-e2e-{run}"));
    let ip_a = format!("{}.10", net.prefix);
    let ip_b = format!("{}.11", net.prefix);
    let web1 = Container::web_on(
        &format!("capstan-e2e-{run}-web1"),
        "one",
        &[],
        &["--network", &net.name, "--ip", &ip_a],
    );
    let web2 = Container::web(&format!("capstan-e2e-{run}-web2"), "two", &[]);
    let _web3 = Container::web(
        &format!("capstan-e2e-{run}-web3"),
        "three",
        &[&format!("capstan.e2e={run}")],
    );

    let core_dir = tmp.path().join("core");
    std::fs::create_dir_all(&core_dir).expect("mkdir");
    let core = Core::start(&core_dir, free_port(), &[]);
    let api = core.api();
    let edge = start_node(&api, &core, tmp.path(), "edge");
    let node = start_node(&api, &core, tmp.path(), "node-b");
    let (status, body) = api.send(
        "PATCH",
        &format!("/api/agents/{}", edge.id),
        json!({"edge": true}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["edge"], true);

    // 1. A service on node-b with two containers: round robin through edge → node.
    let (status, svc) = api.post(
        "/api/services",
        service_body(
            "app",
            &node.id,
            vec![container_target(&web1.name), container_target(&web2.name)],
        ),
    );
    assert_eq!(status, 201, "{svc}");
    let svc_id = svc["id"].as_str().expect("id").to_string();
    wait_for(
        "both NGINX applied and serving",
        Duration::from_secs(20),
        || {
            let seen = sample(edge.port, 2);
            (seen.contains_key("one") || seen.contains_key("two")).then_some(())
        },
    );
    wait_for(
        "service applied on node and edge",
        Duration::from_secs(30),
        || {
            let st = service_state(&api, &svc_id);
            (st.len() == 2 && st.iter().all(|(_, s)| s == "applied")).then_some(())
        },
    );
    let seen = sample(edge.port, 40);
    assert_eq!(seen.len(), 2, "only the two containers answer: {seen:?}");
    for body in ["one", "two"] {
        let n = seen.get(body).copied().unwrap_or(0);
        assert!(n >= 12, "round robin: {body} answered {n}/40 ({seen:?})");
    }
    // The node's NGINX alone answers the same (the edge added one hop, nothing else).
    let direct = sample(node.port, 10);
    assert!(
        direct.keys().all(|b| b == "one" || b == "two"),
        "{direct:?}"
    );
    // Unknown host names get 404, not some service.
    assert_eq!(
        get_host(edge.port, "nope.example", "/").map(|r| r.0),
        Ok(404)
    );

    // 2. Change a target under continuous load: zero failed requests.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let port = edge.port;
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut bodies: Vec<(Instant, String)> = Vec::new();
            let started = Instant::now();
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(40) {
                    break;
                }
                match get_host(port, DOMAIN, "/") {
                    Ok((200, b)) => bodies.push((Instant::now(), b)),
                    other => failures.push(format!("{other:?}")),
                }
            }
            (failures, bodies)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let changed = Instant::now();
    let (status, body) = api.send(
        "PUT",
        &format!("/api/services/{svc_id}"),
        service_body(
            "app",
            &node.id,
            vec![
                container_target(&web1.name),
                json!({"kind": "container", "label": format!("capstan.e2e={run}"), "port": 80}),
            ],
        ),
    );
    assert_eq!(status, 200, "{body}");
    wait_for(
        "web3 answers through the edge",
        Duration::from_secs(30),
        || sample(edge.port, 4).contains_key("three").then_some(()),
    );
    let propagation = changed.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let (failures, bodies) = load.join().expect("load thread");
    assert!(
        failures.is_empty(),
        "{} failed requests during the change: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        bodies.len() > 50,
        "the load loop ran ({} requests)",
        bodies.len()
    );
    let first_three = bodies
        .iter()
        .position(|(_, b)| b == "three")
        .expect("three seen under load");
    let late_two = bodies[first_three..]
        .iter()
        .skip(20)
        .filter(|(_, b)| b == "two")
        .count();
    assert_eq!(
        late_two, 0,
        "web2 left the upstream once the change applied"
    );
    eprintln!(
        "propagation PUT → new target through the edge: {propagation:?}; {} requests, 0 failed",
        bodies.len()
    );
    // Propagation time is a benchmark figure (scripts/bench-proxy), not a test limit.

    // 3. A change NGINX rejects: the old config keeps serving, the error is visible.
    let before = live_files(&node.nginx_dir);
    let (status, body) = api.send(
        "PUT",
        &format!("/api/services/{svc_id}"),
        service_body(
            "app",
            &node.id,
            vec![json!({"kind": "address", "host": "no-such-host.invalid", "port": 80})],
        ),
    );
    assert_eq!(
        status, 200,
        "the API accepts it; only NGINX can tell: {body}"
    );
    let error = wait_for(
        "NGINX error visible via the API",
        Duration::from_secs(30),
        || {
            let (_, svc) = api.get(&format!("/api/services/{svc_id}"));
            svc["status"]
                .as_array()?
                .iter()
                .find(|s| s["state"] == "error")
                .map(|s| s["error"].as_str().unwrap_or("").to_string())
        },
    );
    assert!(
        error.contains("no-such-host.invalid"),
        "NGINX's own message: {error}"
    );
    let (_, routing) = api.get("/api/routing");
    let node_routing = routing["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["node_id"] == node.id.as_str())
        .expect("node")
        .clone();
    assert_eq!(node_routing["state"], "error", "{node_routing}");
    assert_eq!(
        live_files(&node.nginx_dir),
        before,
        "running config untouched"
    );
    let seen = sample(edge.port, 10);
    assert!(
        seen.keys().all(|b| b == "one" || b == "three"),
        "old config still serving: {seen:?}"
    );

    // Back to a good config.
    let (status, _) = api.send(
        "PUT",
        &format!("/api/services/{svc_id}"),
        service_body("app", &node.id, vec![container_target(&web1.name)]),
    );
    assert_eq!(status, 200);
    wait_for("only web1 answers", Duration::from_secs(30), || {
        let seen = sample(edge.port, 6);
        (seen.len() == 1 && seen.contains_key("one")).then_some(())
    });

    // 4. web1 restarted with a new IP: traffic follows.
    assert_eq!(web1.ip(), ip_a);
    web1.stop();
    web1.readdress(&net.name, &ip_b);
    web1.start();
    let new_ip = web1.ip();
    assert_eq!(new_ip, ip_b, "web1 restarted on another address");
    wait_for(
        "traffic follows web1 to its new address",
        Duration::from_secs(30),
        || {
            let seen = sample(edge.port, 4);
            (seen.len() == 1 && seen.contains_key("one")).then_some(())
        },
    );
    let conf = live_files(&node.nginx_dir)
        .into_iter()
        .find(|(k, _)| *k == format!("http/{svc_id}.conf"))
        .map(|(_, v)| v)
        .expect("service file, named by the service's ID");
    assert!(conf.contains(&format!("server {new_ip}:80")), "{conf}");

    // 5. Injection attempts: 4xx naming a field, and nothing changes on disk.
    let before = live_files(&node.nginx_dir);
    let base = || service_body("evil", &node.id, vec![container_target(&web1.name)]);
    let mut attempts: Vec<Value> = Vec::new();
    for bad in [
        "a.com;",
        "a.com { }",
        "a.com\nserver {",
        "$host.com",
        "a\"b.com",
        "a#b.com",
        "a\u{0}b.com",
        "a'b.com",
    ] {
        let mut b = base();
        b["domains"] = json!([bad]);
        attempts.push(b);
    }
    for bad in [
        "x\"; return 200 \"pwned",
        "a;b",
        "a{b",
        "a}b",
        "a\nb",
        "$remote_addr",
        "a#b",
        "a\\b",
    ] {
        let mut b = base();
        b["request_headers"] = json!([{"name": "X-Test", "value": bad}]);
        attempts.push(b);
    }
    for bad in ["/a;b", "/a{", "/a b", "/$uri", "/a\nb", "relative"] {
        let mut b = base();
        b["routes"] = json!([{"path": bad, "placements": [{"node_id": node.id, "targets": [container_target(&web1.name)]}]}]);
        attempts.push(b);
    }
    for bad in ["web1; rm -rf /", "web1\n", "$(id)"] {
        let mut b = base();
        b["placements"][0]["targets"][0]["container"] = json!(bad);
        attempts.push(b);
    }
    let mut b = base();
    b["name"] = json!("evil;name");
    attempts.push(b);
    let mut b = base();
    b["response_headers"] = json!([{"name": "X-A: b\r\nX-Injected", "value": "v"}]);
    attempts.push(b);
    let mut b = base();
    b["placements"][0]["targets"] = json!([{"kind": "address", "host": "1.2.3.4;", "port": 80}]);
    attempts.push(b);
    let mut b = base();
    b["placements"][0]["targets"][0]["port"] = json!(70000);
    attempts.push(b);
    let mut b = base();
    b["domains"] = json!([format!("{}.com", "a".repeat(300))]);
    attempts.push(b);
    for attempt in &attempts {
        let (status, body) = api.post("/api/services", attempt.clone());
        assert!(
            status == 400 || status == 422,
            "{status} for {attempt}: {body}"
        );
        assert!(body["error"]["field"].is_string(), "field named: {body}");
        let (status, body) = api.send("PUT", &format!("/api/services/{svc_id}"), attempt.clone());
        assert!(
            status == 400 || status == 422,
            "PUT {status} for {attempt}: {body}"
        );
    }
    let (_, list) = api.get("/api/services");
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "nothing created: {list}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        live_files(&node.nginx_dir),
        before,
        "files on disk unchanged"
    );
    assert!(live_files(&edge.nginx_dir).len() >= 2);
}

#[test]
fn edge_and_node_on_one_host_use_one_nginx_without_a_second_hop() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = format!("{}", std::process::id());
    let web = Container::web(&format!("capstan-e2e-{run}-solo"), "solo", &[]);
    let core_dir = tmp.path().join("core");
    std::fs::create_dir_all(&core_dir).expect("mkdir");
    let core = Core::start(&core_dir, free_port(), &[]);
    let api = core.api();
    let host = start_node(&api, &core, tmp.path(), "solo-host");
    let (status, _) = api.send(
        "PATCH",
        &format!("/api/agents/{}", host.id),
        json!({"edge": true}),
    );
    assert_eq!(status, 200);
    let (status, svc) = api.post(
        "/api/services",
        service_body("solo", &host.id, vec![container_target(&web.name)]),
    );
    assert_eq!(status, 201, "{svc}");
    let svc_id = svc["id"].as_str().expect("id").to_string();
    // A second service on the same node whose container does not exist: its warning
    // shows on it, not on `solo` (issue 10, part 7).
    let missing = format!("capstan-e2e-{run}-missing");
    let (status, ghost) = api.post(
        "/api/services",
        json!({
            "name": "ghost",
            "domains": ["ghost.capstan-e2e.test"],
            "placements": [{"node_id": host.id, "targets": [container_target(&missing)]}],
        }),
    );
    assert_eq!(status, 201, "{ghost}");
    let ghost_id = ghost["id"].as_str().expect("id").to_string();
    wait_for(
        "served directly by the one NGINX",
        Duration::from_secs(20),
        || (get_host(host.port, DOMAIN, "/").ok()? == (200, "solo".to_string())).then_some(()),
    );
    let warnings = |id: &str| {
        let (_, s) = api.get(&format!("/api/services/{id}"));
        s["status"][0]["warnings"].clone()
    };
    let ghost_warnings = wait_for(
        "the missing container's warning on its service",
        Duration::from_secs(20),
        || {
            let w = warnings(&ghost_id);
            w.as_array()?
                .iter()
                .any(|m| m.as_str().is_some_and(|m| m.contains(&missing)))
                .then_some(w)
        },
    );
    assert_eq!(
        warnings(&svc_id),
        json!([]),
        "solo shows none of ghost's warnings ({ghost_warnings})"
    );
    let files = live_files(&host.nginx_dir);
    let conf = files
        .iter()
        .find(|(k, _)| **k == format!("http/{svc_id}.conf"))
        .map(|(_, v)| v)
        .expect("conf named by the service's ID");
    assert!(
        conf.contains(&format!("server {}:80", web.ip())),
        "container directly in the upstream: {conf}"
    );
    assert!(
        !conf.contains(&format!("server 127.0.0.1:{}", host.port)),
        "no hop to itself: {conf}"
    );
    // The node's NGINX access log, on demand through the logs API.
    let logged = wait_for(
        "the request in nginx:access",
        Duration::from_secs(30),
        || {
            let _ = get_host(host.port, DOMAIN, "/from-the-log-test");
            let (status, body) = api.get(&format!(
                "/api/agents/{}/logs/nginx:access?tail=50",
                host.id
            ));
            assert_eq!(status, 200, "{body}");
            body["lines"]
                .as_array()?
                .iter()
                .find(|l| {
                    l["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("/from-the-log-test") && t.contains(DOMAIN))
                })
                .cloned()
        },
    );
    assert_eq!(logged["stream"], "file");
    let (_, routing) = api.get("/api/routing");
    let d = routing["domains"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["domain"] == DOMAIN))
        .expect("the solo domain");
    assert_eq!(d["domain"], DOMAIN);
    assert_eq!(d["nodes"][0]["node_id"], host.id.as_str());
    assert_eq!(d["edges"][0]["node_id"], host.id.as_str());
}

#[test]
fn docker_deployment_router_container_is_validated_and_reloaded_through_the_docker_api() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = format!("{}", std::process::id());
    let web1 = Container::web(&format!("capstan-e2e-{run}-r1"), "r-one", &[]);
    let web2 = Container::web(&format!("capstan-e2e-{run}-r2"), "r-two", &[]);
    let core_dir = tmp.path().join("core");
    std::fs::create_dir_all(&core_dir).expect("mkdir");
    let core = Core::start(&core_dir, free_port(), &[]);
    let api = core.api();
    let (id, key) = api.create_node("docker-host");
    let state = tmp.path().join("agent");
    let nginx_dir = state.join("nginx");
    std::fs::create_dir_all(&nginx_dir).expect("mkdir");
    let router = capstan_e2e::docker::router(&format!("capstan-e2e-{run}-router"), &nginx_dir);
    let port = free_port();
    let https = free_port();
    let _agent = start_agent(
        &state,
        &[
            ("CORE_URL", core.url.as_str()),
            ("AGENT_ID", id.as_str()),
            ("AGENT_KEY", key.as_str()),
            ("CAPSTAN_AGENT_NGINX", "true"),
            // An agent without an nginx binary of its own, as in its image.
            ("CAPSTAN_AGENT_NGINX_BINARY", "/nonexistent/nginx"),
            ("CAPSTAN_AGENT_NGINX_CONTAINER", router.name.as_str()),
            (
                "CAPSTAN_AGENT_NGINX_DIR",
                nginx_dir.to_str().expect("utf-8"),
            ),
            ("CAPSTAN_AGENT_NGINX_LISTEN", "127.0.0.1"),
            ("CAPSTAN_AGENT_NGINX_HTTP_PORT", &port.to_string()),
            ("CAPSTAN_AGENT_NGINX_HTTPS_PORT", &https.to_string()),
            ("ADVERTISE_ADDRESS", "127.0.0.1"),
        ],
    );
    let (status, svc) = api.post(
        "/api/services",
        service_body("routed", &id, vec![container_target(&web1.name)]),
    );
    assert_eq!(status, 201, "{svc}");
    let svc_id = svc["id"].as_str().expect("id").to_string();
    wait_for(
        "the router container serves the service",
        Duration::from_secs(30),
        || (get_host(port, DOMAIN, "/").ok()? == (200, "r-one".to_string())).then_some(()),
    );
    // A change is applied with a SIGHUP to the container's NGINX.
    let (status, _) = api.send(
        "PUT",
        &format!("/api/services/{svc_id}"),
        service_body("routed", &id, vec![container_target(&web2.name)]),
    );
    assert_eq!(status, 200);
    wait_for(
        "reloaded inside the container",
        Duration::from_secs(30),
        || (get_host(port, DOMAIN, "/").ok()? == (200, "r-two".to_string())).then_some(()),
    );
    // `nginx -t` runs in the container: its rejection is reported and nothing changes.
    let (status, _) = api.send(
        "PUT",
        &format!("/api/services/{svc_id}"),
        service_body(
            "routed",
            &id,
            vec![json!({"kind": "address", "host": "no-such-host.invalid", "port": 80})],
        ),
    );
    assert_eq!(status, 200);
    wait_for("rejection visible", Duration::from_secs(30), || {
        let (_, s) = api.get(&format!("/api/services/{svc_id}"));
        let st = &s["status"][0];
        (st["state"] == "error" && st["error"].as_str()?.contains("no-such-host.invalid"))
            .then_some(())
    });
    assert_eq!(get_host(port, DOMAIN, "/"), Ok((200, "r-two".to_string())));
}

#[test]
fn a_service_on_two_nodes_is_balanced_at_the_edge_and_an_offline_node_leaves() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = format!("{}", std::process::id());
    let wa = Container::web(&format!("capstan-e2e-{run}-na"), "from-a", &[]);
    let wb = Container::web(&format!("capstan-e2e-{run}-nb"), "from-b", &[]);
    let core_dir = tmp.path().join("core");
    std::fs::create_dir_all(&core_dir).expect("mkdir");
    let core = Core::start(&core_dir, free_port(), &[]);
    let api = core.api();
    let edge = start_node(&api, &core, tmp.path(), "edge2");
    let a = start_node(&api, &core, tmp.path(), "node-a");
    let mut b = start_node(&api, &core, tmp.path(), "node-b");
    let (status, _) = api.send(
        "PATCH",
        &format!("/api/agents/{}", edge.id),
        json!({"edge": true}),
    );
    assert_eq!(status, 200);
    let (status, svc) = api.post(
        "/api/services",
        json!({
            "name": "spread",
            "domains": [DOMAIN],
            "placements": [
                {"node_id": a.id, "targets": [container_target(&wa.name)]},
                {"node_id": b.id, "targets": [container_target(&wb.name)]},
            ],
        }),
    );
    assert_eq!(status, 201, "{svc}");
    wait_for(
        "both nodes answer through the edge",
        Duration::from_secs(30),
        || {
            let seen = sample(edge.port, 10);
            (seen.contains_key("from-a") && seen.contains_key("from-b")).then_some(())
        },
    );
    // node-b's agent dies: its NGINX keeps running, but the node goes offline and the
    // edge stops sending it traffic.
    b._agent.kill9();
    let killed = Instant::now();
    wait_for(
        "edge routes only to node-a",
        Duration::from_secs(20),
        || {
            let seen = sample(edge.port, 10);
            (seen.len() == 1 && seen.contains_key("from-a")).then_some(())
        },
    );
    eprintln!("offline node left the edge after {:?}", killed.elapsed());
    let seen = sample(edge.port, 20);
    assert_eq!(seen.get("from-a"), Some(&20), "{seen:?}");
}

/// One GET to `ip:80` (a container's address, reachable from the host): its body.
fn get_ip(ip: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = format!("{ip}:80").parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string())
}

/// A stopped container's address, taken by the next container started on the network,
/// gets none of the stopped one's requests: the agent reacts to Docker's events at once
/// instead of at its next beat. The beat interval is 3 s here, so waiting for the beat
/// would leave a window of up to 3 s; container A is stopped and B started on A's fixed
/// address three times under continuous requests for A's service.
#[test]
fn a_stopped_containers_address_reused_by_another_gets_none_of_its_requests() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = format!("{}", std::process::id());
    let net = Network::create(&format!("capstan-e2e-{run}-reuse"));
    let ip = format!("{}.20", net.prefix);
    let fixed = ["--network", net.name.as_str(), "--ip", ip.as_str()];
    let a = Container::web_on(&format!("capstan-e2e-{run}-alpha"), "alpha", &[], &fixed);
    let b = Container::web_created(&format!("capstan-e2e-{run}-bravo"), "bravo", &fixed);

    let core_dir = tmp.path().join("core");
    std::fs::create_dir_all(&core_dir).expect("mkdir");
    let core = Core::start(&core_dir, free_port(), &[]);
    let api = core.api();
    let node = start_node_with(
        &api,
        &core,
        tmp.path(),
        "reuse-node",
        &[
            ("CAPSTAN_AGENT_HEARTBEAT_INTERVAL_MS", "3000"),
            ("CAPSTAN_AGENT_BACKOFF_MAX_MS", "30000"),
        ],
    );
    let (status, svc) = api.post(
        "/api/services",
        service_body("alpha", &node.id, vec![container_target(&a.name)]),
    );
    assert_eq!(status, 201, "{svc}");

    for round in 0..3 {
        let mut last = Err(String::new());
        let waited = Instant::now();
        while last != Ok((200, "alpha".into())) {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "round {round}: alpha not served through NGINX: {last:?}; agent:\n{}",
                node._agent.output()
            );
            std::thread::sleep(Duration::from_millis(100));
            last = get_host(node.port, DOMAIN, "/");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let load = {
            let stop = stop.clone();
            let port = node.port;
            std::thread::spawn(move || {
                let mut seen: BTreeMap<String, usize> = BTreeMap::new();
                let mut bravo_at = Vec::new();
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let key = match get_host(port, DOMAIN, "/") {
                        Ok((200, body)) => body,
                        Ok((status, _)) => format!("HTTP {status}"),
                        Err(e) => format!("error {e:.30}"),
                    };
                    if key == "bravo" {
                        bravo_at.push(started.elapsed());
                    }
                    *seen.entry(key).or_insert(0) += 1;
                    // ~200 requests a second: dense enough, gentle on a shared host.
                    std::thread::sleep(Duration::from_millis(5));
                }
                (seen, bravo_at)
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        a.stop();
        let stopped = t0.elapsed();
        b.start();
        let b_up = wait_for(
            "bravo answering on alpha's old address",
            Duration::from_secs(10),
            || (get_ip(&ip).as_deref() == Some("bravo")).then(|| t0.elapsed()),
        );
        // Longer than a beat interval after B is up: the old code's window has closed.
        std::thread::sleep(Duration::from_millis(4000));
        stop.store(true, Ordering::Relaxed);
        let (seen, bravo_at) = load.join().expect("load thread");
        eprintln!(
            "round {round}: alpha stopped after {stopped:?}, bravo up on {ip} after {b_up:?}; requests for alpha's service: {seen:?}"
        );
        assert!(
            bravo_at.is_empty(),
            "round {round}: {} requests for alpha's service reached bravo on alpha's old address \
             (first at {:?} of the load): {seen:?}",
            bravo_at.len(),
            bravo_at.first()
        );
        assert!(seen.get("alpha").copied().unwrap_or(0) > 0, "{seen:?}");
        // Put alpha back on its address for the next round.
        b.stop();
        a.start();
    }
}
