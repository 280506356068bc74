//! Metrics through the user's path: beats carrying samples, the flusher's one transaction,
//! then the query API as the UI calls it.

use std::net::SocketAddr;

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

fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let boot = AppState::open(config, Some(PASSWORD.into())).expect("open");
    Harness {
        _dir: dir,
        state: boot.state,
    }
}

impl Harness {
    fn router(&self) -> Router {
        app(self.state.clone()).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))))
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            assert!(body["error"]["code"].is_string(), "error shape: {body}");
            assert!(body["error"]["message"].is_string(), "error shape: {body}");
        }
        (status, body)
    }

    async fn token(&self) -> String {
        let (status, body) = self
            .call(req(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"username": "admin", "password": PASSWORD})),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().expect("token").to_string()
    }

    async fn node(&self, token: &str) -> (String, String) {
        let (status, body) = self
            .call(req(
                Method::POST,
                "/api/agents",
                Some(token),
                Some(json!({"name": "web-1"})),
            ))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["id"].as_str().expect("id").to_string(),
            body["key"].as_str().expect("key").to_string(),
        )
    }

    async fn beat(&self, id: &str, key: &str, metrics: Value) -> (StatusCode, Value) {
        let body = json!({
            "protocol": capstan_proto::PROTOCOL_VERSION, "agent_version": "0.1.0", "hostname": "web-1",
            "os": "Debian", "uptime_secs": 10, "interval_ms": 1000, "metrics": metrics,
        });
        let r = Request::builder()
            .method(Method::POST)
            .uri("/api/heartbeat")
            .header("content-type", "application/json")
            .header(capstan_proto::HEADER_AGENT_ID, id)
            .header(capstan_proto::HEADER_AGENT_KEY, key)
            .body(Body::from(body.to_string()))
            .expect("request");
        self.call(r).await
    }
}

fn req(method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string())),
        None => b.body(Body::empty()),
    }
    .expect("request")
}

fn now_s() -> u64 {
    capstan_core::metrics::now_s()
}

fn sample(t: u64, busy: f64, ct_cpu: f64) -> Value {
    json!({
        "t": t,
        "host": {"cpu.busy": busy, "mem.used": 1000.0, "fs./.used_pct": 42.5},
        "containers": [{
            "name": "web", "id": "0123456789ab", "image": "busybox", "state": "running",
            "status": "Up 3 seconds", "values": {"cpu.pct": ct_cpu, "mem.used": 2048.0}
        }]
    })
}

#[tokio::test]
async fn beats_are_flushed_and_read_back_as_columns() {
    let h = harness();
    let token = h.token().await;
    let (id, key) = h.node(&token).await;
    let t = now_s();
    // A backlog of two samples, then a live one.
    let (status, body) = h
        .beat(
            &id,
            &key,
            json!({"samples": [sample(t - 2, 10.0, 1.0), sample(t - 1, 20.0, 2.0)], "beat": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Received, not yet on disk: the agent must keep the samples.
    assert_eq!(body["metrics"]["committed_beat"], 0);
    let boot = body["metrics"]["boot"].clone();
    capstan_core::metrics::flush_once(&h.state).await;
    let (status, body) = h
        .beat(
            &id,
            &key,
            json!({"samples": [sample(t, 30.0, 3.0)], "beat": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["metrics"]["committed_beat"], 1, "{body}");
    assert_eq!(body["metrics"]["boot"], boot);
    // The first beat again (as after a core restart): ignored, not counted twice.
    let (status, _) = h
        .beat(
            &id,
            &key,
            json!({"samples": [sample(t - 2, 10.0, 1.0), sample(t - 1, 20.0, 2.0)], "beat": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    capstan_core::metrics::flush_once(&h.state).await;

    let (status, body) = h
        .call(req(
            Method::GET,
            &format!("/api/agents/{id}/metrics?range=1h&series=cpu.busy,mem.used"),
            Some(&token),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["resolution_s"], 1);
    let times = body["t"].as_array().expect("t");
    assert_eq!(times.len(), 3600);
    let busy = body["series"]["cpu.busy"]["avg"].as_array().expect("avg");
    assert_eq!(busy.len(), 3600);
    // The last bucket is the current second, unless the clock ticked since `t`.
    let end = times
        .iter()
        .position(|x| x.as_u64() == Some(t))
        .expect("t in range");
    assert_eq!(
        &busy[end - 2..=end],
        &[json!(10.0), json!(20.0), json!(30.0)]
    );
    assert!(busy[end - 3].is_null(), "gap before the first sample");

    // 24 h: one-minute buckets with min/avg/max of the same points.
    let (status, body) = h
        .call(req(
            Method::GET,
            &format!("/api/agents/{id}/metrics?range=24h&series=cpu.busy"),
            Some(&token),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["resolution_s"], 60);
    let s = &body["series"]["cpu.busy"];
    let filled: Vec<(f64, f64)> = s["min"]
        .as_array()
        .expect("min")
        .iter()
        .zip(s["max"].as_array().expect("max"))
        .filter_map(|(a, b)| Some((a.as_f64()?, b.as_f64()?)))
        .collect();
    // The three points fall in one or two minutes.
    assert!(!filled.is_empty() && filled.len() <= 2, "{filled:?}");
    assert_eq!(filled.iter().map(|f| f.0).fold(f64::MAX, f64::min), 10.0);
    assert_eq!(filled.iter().map(|f| f.1).fold(f64::MIN, f64::max), 30.0);

    // Without `series`: every host series of the node, none of its containers'.
    let (_, body) = h
        .call(req(
            Method::GET,
            &format!("/api/agents/{id}/metrics"),
            Some(&token),
            None,
        ))
        .await;
    let names: Vec<&String> = body["series"].as_object().expect("series").keys().collect();
    assert_eq!(names, ["cpu.busy", "fs./.used_pct", "mem.used"]);

    // The container: live sample and its own history.
    let (status, body) = h
        .call(req(
            Method::GET,
            &format!("/api/agents/{id}/metrics/latest"),
            Some(&token),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["sample"]["t"], t);
    assert_eq!(body["sample"]["containers"][0]["name"], "web");
    assert_eq!(body["sample"]["containers"][0]["values"]["cpu.pct"], 3.0);
    let (status, body) = h
        .call(req(
            Method::GET,
            &format!("/api/agents/{id}/containers/web/metrics?range=1h"),
            Some(&token),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&String> = body["series"].as_object().expect("series").keys().collect();
    assert_eq!(names, ["cpu.pct", "mem.used"]);
    let cpu = body["series"]["cpu.pct"]["avg"].as_array().expect("avg");
    assert_eq!(cpu.iter().filter(|v| !v.is_null()).count(), 3);
}

#[tokio::test]
async fn a_skewed_agent_clock_lands_on_the_core_clock() {
    let h = harness();
    let token = h.token().await;
    let (id, key) = h.node(&token).await;
    let (status, _) = h
        .beat(
            &id,
            &key,
            json!({"samples": [sample(now_s() + 86_400, 7.0, 0.0)]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    capstan_core::metrics::flush_once(&h.state).await;
    let (_, body) = h
        .call(req(
            Method::GET,
            &format!("/api/agents/{id}/metrics?range=1h&series=cpu.busy"),
            Some(&token),
            None,
        ))
        .await;
    let avg = body["series"]["cpu.busy"]["avg"].as_array().expect("avg");
    // Written within the last few seconds, not a day ahead (outside every range).
    assert!(
        avg[avg.len() - 5..].contains(&json!(7.0)),
        "{:?}",
        &avg[avg.len() - 5..]
    );
}

#[tokio::test]
async fn bad_queries_name_the_field_and_unknown_nodes_are_404() {
    let h = harness();
    let token = h.token().await;
    let (id, key) = h.node(&token).await;
    let cases = [
        (
            format!("/api/agents/{id}/metrics?range=2h"),
            StatusCode::BAD_REQUEST,
            "range",
        ),
        (
            format!("/api/agents/{id}/metrics?series=cpu%20busy"),
            StatusCode::BAD_REQUEST,
            "series",
        ),
        (
            format!("/api/agents/{id}/metrics?series=,"),
            StatusCode::BAD_REQUEST,
            "series",
        ),
        (
            format!("/api/agents/{id}/containers/a%20b/metrics"),
            StatusCode::BAD_REQUEST,
            "name",
        ),
    ];
    for (uri, want, field) in cases {
        let (status, body) = h.call(req(Method::GET, &uri, Some(&token), None)).await;
        assert_eq!(status, want, "{uri}: {body}");
        assert_eq!(body["error"]["field"], field, "{uri}");
    }
    for uri in [
        "/api/agents/nope/metrics",
        "/api/agents/nope/metrics/latest",
        "/api/agents/nope/containers/web/metrics",
    ] {
        let (status, body) = h.call(req(Method::GET, uri, Some(&token), None)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        let (status, _) = h.call(req(Method::GET, uri, None, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    // A beat with a bad series name is refused whole, naming the field.
    let mut bad = sample(now_s(), 1.0, 1.0);
    bad["host"]["cpu busy"] = json!(1.0);
    let (status, body) = h.beat(&id, &key, json!({"samples": [bad]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "metrics.samples[0].host");
    let mut bad = sample(now_s(), 1.0, 1.0);
    bad["containers"][0]["name"] = json!("../x");
    let (status, body) = h.beat(&id, &key, json!({"samples": [bad]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"]["field"],
        "metrics.samples[0].containers[0].name"
    );
}

#[tokio::test]
async fn metrics_routes_are_in_the_openapi_document() {
    let h = harness();
    let (status, doc) = h
        .call(req(Method::GET, "/api/openapi.json", None, None))
        .await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/agents/{id}/metrics",
        "/api/agents/{id}/metrics/latest",
        "/api/agents/{id}/containers/{name}/metrics",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
}

#[tokio::test]
async fn overview_says_when_each_node_was_last_seen() {
    // An offline node's overview figures are its last ones: the UI greys them and shows when
    // the node was last seen, so the overview carries the same last_seen_at as the node view.
    let h = harness();
    let token = h.token().await;
    let (id, key) = h.node(&token).await;
    let (status, body) = h
        .call(req(
            Method::POST,
            "/api/agents",
            Some(&token),
            Some(json!({"name": "web-2"})),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let silent = body["id"].as_str().expect("id").to_string();
    let (status, body) = h
        .beat(&id, &key, json!({"samples": [sample(now_s(), 12.5, 3.0)]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, overview) = h
        .call(req(
            Method::GET,
            "/api/metrics/overview",
            Some(&token),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    let row = |node: &str| {
        overview["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["id"] == node)
            .cloned()
            .expect("row")
    };
    let (status, view) = h
        .call(req(
            Method::GET,
            &format!("/api/agents/{id}"),
            Some(&token),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let seen = row(&id)["last_seen_at"].clone();
    assert!(seen.is_string(), "{overview}");
    assert_eq!(seen, view["last_seen_at"], "overview and node view agree");
    assert!(row(&silent)["last_seen_at"].is_null(), "{overview}");
}
