//! Issue 11: the agent's long-poll (`GET /api/agent/watch`) and the UI's log long-poll
//! (`…/logs/{source}?cursor=…&wait=…`), driven through the real router.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use capstan_core::config::Config;
use capstan_core::{AppState, app};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "test-password-1";

struct Harness {
    _dir: tempfile::TempDir,
    state: AppState,
}

fn harness_with(config: Config) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..config
    };
    let boot = AppState::open(config, Some(PASSWORD.into())).expect("open");
    Harness {
        _dir: dir,
        state: boot.state,
    }
}

fn router(state: &AppState) -> Router {
    app(state.clone()).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))))
}

async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router(state).oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("json")
    };
    (status, body)
}

fn req(method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(body.map_or_else(Body::empty, |v| Body::from(v.to_string())))
        .expect("request")
}

fn agent_req(method: Method, uri: &str, node: &Node, body: Option<Value>) -> Request<Body> {
    let mut r = req(method, uri, None, body);
    let h = r.headers_mut();
    h.insert(
        capstan_proto::HEADER_AGENT_ID,
        node.id.parse().expect("header"),
    );
    h.insert(
        capstan_proto::HEADER_AGENT_KEY,
        node.key.parse().expect("header"),
    );
    r
}

#[derive(Clone)]
struct Node {
    id: String,
    key: String,
}

async fn setup() -> (Harness, String, Node) {
    setup_with(Config::default()).await
}

async fn setup_with(config: Config) -> (Harness, String, Node) {
    let h = harness_with(config);
    let (status, login) = call(
        &h.state,
        req(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "admin", "password": PASSWORD})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let token = login["access_token"].as_str().expect("token").to_string();
    let (status, node) = call(
        &h.state,
        req(
            Method::POST,
            "/api/agents",
            Some(&token),
            Some(json!({"name": "web-1"})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{node}");
    let node = Node {
        id: node["id"].as_str().expect("id").into(),
        key: node["key"].as_str().expect("key").into(),
    };
    let beat = json!({
        "protocol": capstan_proto::PROTOCOL_VERSION, "agent_version": "0.1.0",
        "hostname": "web-1", "os": "Debian", "uptime_secs": 10, "interval_ms": 1000,
        "nginx": {"address": "127.0.0.1", "http_port": 8080, "https_port": 8443,
            "warnings": [], "error": null},
    });
    let (status, reply) = call(
        &h.state,
        agent_req(Method::POST, "/api/heartbeat", &node, Some(beat)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    (h, token, node)
}

/// The first watch (no `since`) answers at once with the counter to wait from.
async fn first_watch(h: &Harness, node: &Node) -> (u64, String) {
    let (status, w) = call(
        &h.state,
        agent_req(Method::GET, "/api/agent/watch?timeout=5", node, None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{w}");
    assert_eq!(w["changed"], false, "{w}");
    (
        w["counter"].as_u64().expect("counter"),
        w["boot"].as_str().expect("boot").to_string(),
    )
}

/// Starts a held watch; resolves to (answer, how long it was held).
fn spawn_watch(
    h: &Harness,
    node: &Node,
    since: u64,
    boot: &str,
    timeout: u64,
) -> tokio::task::JoinHandle<(Value, Duration)> {
    let state = h.state.clone();
    let r = agent_req(
        Method::GET,
        &format!("/api/agent/watch?since={since}&boot={boot}&timeout={timeout}"),
        node,
        None,
    );
    tokio::spawn(async move {
        let started = Instant::now();
        let (status, body) = call(&state, r).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (body, started.elapsed())
    })
}

#[tokio::test]
async fn the_watch_answers_at_once_when_a_service_for_the_node_changes() {
    let (h, token, node) = setup().await;
    let (since, boot) = first_watch(&h, &node).await;
    let held = spawn_watch(&h, &node, since, &boot, 20);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !held.is_finished(),
        "nothing changed yet: the watch is held"
    );
    let changed_at = Instant::now();
    let (status, svc) = call(
        &h.state,
        req(
            Method::POST,
            "/api/services",
            Some(&token),
            Some(json!({
                "name": "shop", "domains": ["shop.example.com"],
                "placements": [{"node_id": node.id, "targets": [
                    {"kind": "container", "container": "shop-web", "port": 80}]}],
            })),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{svc}");
    let (answer, _) = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("answered well before its 20 s timeout")
        .expect("join");
    assert!(
        changed_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        changed_at.elapsed()
    );
    assert_eq!(answer["changed"], true, "{answer}");
    let counter = answer["counter"].as_u64().expect("counter");
    assert!(counter > since, "{answer}");
    // A PUT (edit) of that service wakes the next watch too.
    let id = svc["id"].as_str().expect("id");
    let held = spawn_watch(&h, &node, counter, &boot, 20);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = call(
        &h.state,
        req(
            Method::PUT,
            &format!("/api/services/{id}"),
            Some(&token),
            Some(json!({
                "name": "shop", "domains": ["shop.example.com", "www.shop.example.com"],
                "placements": [{"node_id": node.id, "targets": [
                    {"kind": "container", "container": "shop-web", "port": 80}]}],
            })),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (answer, _) = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("answered at once")
        .expect("join");
    assert_eq!(answer["changed"], true, "{answer}");
}

#[tokio::test]
async fn the_watch_answers_at_once_when_someone_starts_watching_a_log() {
    let (h, token, node) = setup().await;
    let (since, boot) = first_watch(&h, &node).await;
    let held = spawn_watch(&h, &node, since, &boot, 20);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished());
    // The UI's first poll registers the log watch (and waits for the agent's answer).
    let state = h.state.clone();
    let uri = format!("/api/agents/{}/logs/web", node.id);
    let viewer =
        tokio::spawn(async move { call(&state, req(Method::GET, &uri, Some(&token), None)).await });
    let (answer, held_for) = tokio::time::timeout(Duration::from_secs(2), held)
        .await
        .expect("answered before the viewer's first poll gave up")
        .expect("join");
    assert_eq!(answer["changed"], true, "{answer}");
    assert!(held_for < Duration::from_secs(3), "{held_for:?}");
    // The beat it triggers carries the request to follow `web`.
    let beat = json!({
        "protocol": capstan_proto::PROTOCOL_VERSION, "agent_version": "0.1.0",
        "hostname": "web-1", "os": "Debian", "uptime_secs": 10, "interval_ms": 1000,
    });
    let (_, reply) = call(
        &h.state,
        agent_req(Method::POST, "/api/heartbeat", &node, Some(beat)),
    )
    .await;
    assert_eq!(reply["desired"]["logs"][0]["source"], "web", "{reply}");
    viewer.abort();
}

#[tokio::test]
async fn the_watch_times_out_unchanged_and_detects_a_new_core() {
    let (h, _token, node) = setup().await;
    let (since, boot) = first_watch(&h, &node).await;
    let (answer, held_for) = spawn_watch(&h, &node, since, &boot, 1).await.expect("join");
    assert_eq!(answer["changed"], false, "{answer}");
    assert_eq!(answer["counter"].as_u64(), Some(since));
    assert!(
        held_for >= Duration::from_millis(900) && held_for < Duration::from_secs(3),
        "{held_for:?}"
    );
    // Counters of another core process (a restart) mean nothing here: beat now.
    let (answer, held_for) = spawn_watch(&h, &node, since, "0123abcd", 20)
        .await
        .expect("join");
    assert_eq!(answer["changed"], true, "{answer}");
    assert_eq!(answer["boot"], boot.as_str());
    assert!(held_for < Duration::from_secs(1), "{held_for:?}");
    // A counter from before the restart that happens to be ahead answers at once too.
    let (answer, _) = spawn_watch(&h, &node, since + 7, &boot, 20)
        .await
        .expect("join");
    assert_eq!(answer["changed"], true, "{answer}");
    // Bad input names the field; no key, no watch.
    for (query, field) in [("since=x", "since"), ("timeout=-1", "timeout")] {
        let (status, body) = call(
            &h.state,
            agent_req(
                Method::GET,
                &format!("/api/agent/watch?{query}"),
                &node,
                None,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (status, _) = call(&h.state, req(Method::GET, "/api/agent/watch", None, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, doc) = call(&h.state, req(Method::GET, "/api/openapi.json", None, None)).await;
    assert!(doc["paths"]["/api/agent/watch"]["get"].is_object());
}

fn upload(source: &str, texts: &[&str]) -> Value {
    json!({"batches": [{"source": source, "restart": false, "skipped": 0, "error": null,
        "lines": texts.iter().map(|t| json!({"ts": "2026-01-01T00:00:00Z", "stream": "stdout", "text": t}))
            .collect::<Vec<_>>()}]})
}

/// The UI's log long-poll: held until lines after the cursor exist, empty at the deadline.
#[tokio::test]
async fn a_log_long_poll_answers_when_lines_arrive_and_is_empty_at_its_deadline() {
    let (h, token, node) = setup().await;
    let uri = format!("/api/agents/{}/logs/web", node.id);
    // First poll: registers the watch; the agent answers with no history.
    let state = h.state.clone();
    let (t, u) = (token.clone(), uri.clone());
    let first =
        tokio::spawn(async move { call(&state, req(Method::GET, &u, Some(&t), None)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = call(
        &h.state,
        agent_req(
            Method::POST,
            capstan_proto::LOGS_PATH,
            &node,
            Some(upload("web", &[])),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, first) = first.await.expect("join");
    assert_eq!(status, StatusCode::OK, "{first}");
    let cursor = first["cursor"].as_u64().expect("cursor");

    // Nothing new: an empty answer at the deadline, not before.
    let started = Instant::now();
    let (status, idle) = call(
        &h.state,
        req(
            Method::GET,
            &format!("{uri}?cursor={cursor}&wait=1"),
            Some(&token),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{idle}");
    assert!(
        idle["lines"].as_array().is_some_and(Vec::is_empty),
        "{idle}"
    );
    assert_eq!(idle["cursor"].as_u64(), Some(cursor));
    assert!(started.elapsed() >= Duration::from_millis(900), "held");

    // Lines posted while a poll is held come back at once, in order.
    let state = h.state.clone();
    let (t, u) = (token.clone(), format!("{uri}?cursor={cursor}&wait=20"));
    let held = tokio::spawn(async move {
        let started = Instant::now();
        let r = call(&state, req(Method::GET, &u, Some(&t), None)).await;
        (r, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "no lines yet: held");
    let posted = Instant::now();
    call(
        &h.state,
        agent_req(
            Method::POST,
            capstan_proto::LOGS_PATH,
            &node,
            Some(upload("web", &["one", "two"])),
        ),
    )
    .await;
    let ((status, got), _) = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("answered well before 20 s")
        .expect("join");
    assert!(
        posted.elapsed() < Duration::from_secs(1),
        "{:?}",
        posted.elapsed()
    );
    assert_eq!(status, StatusCode::OK, "{got}");
    let texts: Vec<&str> = got["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect();
    assert_eq!(texts, ["one", "two"]);
    assert_eq!(got["cursor"].as_u64(), Some(cursor + 2));

    // `wait` is bounded and named when wrong.
    let (status, body) = call(
        &h.state,
        req(
            Method::GET,
            &format!("{uri}?cursor={cursor}&wait=99"),
            Some(&token),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "wait", "{body}");
}

/// Held watches keep connections busy: at most half of `http_max_connections` are held,
/// so watches can never crowd beats out of the listener; the rest answer at once.
#[tokio::test]
async fn held_watches_never_take_more_than_half_the_connections() {
    let (h, _token, node) = setup_with(Config {
        http_max_connections: 16,
        ..Config::default()
    })
    .await;
    let (since, boot) = first_watch(&h, &node).await;
    let held: Vec<_> = (0..8)
        .map(|_| spawn_watch(&h, &node, since, &boot, 20))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(held.iter().all(|w| !w.is_finished()), "8 held");
    let (answer, held_for) = spawn_watch(&h, &node, since, &boot, 20)
        .await
        .expect("join");
    assert_eq!(answer["changed"], false, "{answer}");
    assert!(
        held_for < Duration::from_secs(1),
        "the 9th answers at once: {held_for:?}"
    );
    // A beat still gets through.
    let beat = json!({
        "protocol": capstan_proto::PROTOCOL_VERSION, "agent_version": "0.1.0",
        "hostname": "web-1", "os": "Debian", "uptime_secs": 10, "interval_ms": 1000,
    });
    let (status, _) = call(
        &h.state,
        agent_req(Method::POST, "/api/heartbeat", &node, Some(beat)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for w in held {
        w.abort();
    }
}
