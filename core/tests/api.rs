//! Handler tests: the real router on a temp redb file, driven with `oneshot` requests the
//! way a client would send them. Every error body is checked for the common shape.

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

fn harness_with(mut config: Config) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    config.data_dir = dir.path().to_path_buf();
    let boot = AppState::open(config, Some(PASSWORD.into())).expect("open");
    Harness {
        _dir: dir,
        state: boot.state,
    }
}

fn harness() -> Harness {
    harness_with(Config::default())
}

impl Harness {
    fn router(&self, ip: [u8; 4]) -> Router {
        app(self.state.clone()).layer(MockConnectInfo(SocketAddr::from((ip, 40000))))
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, Value) {
        self.call_from([127, 0, 0, 1], req).await
    }

    async fn call_from(&self, ip: [u8; 4], req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router(ip).oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_client_error() || status.is_server_error() {
            assert_error_shape(&body);
        }
        (status, body)
    }

    async fn login(&self) -> Value {
        let (status, body) = self
            .call(json_req(
                Method::POST,
                "/api/auth/login",
                None,
                json!({"username": "admin", "password": PASSWORD}),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn token(&self) -> String {
        self.login().await["access_token"]
            .as_str()
            .expect("token")
            .to_string()
    }

    async fn create_node(&self, token: &str, name: &str) -> Value {
        let (status, body) = self
            .call(json_req(
                Method::POST,
                "/api/agents",
                Some(token),
                json!({ "name": name }),
            ))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

fn assert_error_shape(body: &Value) {
    let err = &body["error"];
    assert!(err["code"].is_string(), "error body lacks code: {body}");
    assert!(
        err["message"].is_string(),
        "error body lacks message: {body}"
    );
}

fn json_req(method: Method, uri: &str, token: Option<&str>, body: Value) -> Request<Body> {
    raw_req(method, uri, token, "application/json", body.to_string())
}

fn raw_req(
    method: Method,
    uri: &str,
    token: Option<&str>,
    content_type: &str,
    body: String,
) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body)).expect("request")
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).expect("request")
}

fn beat_req(id: &str, key: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/api/heartbeat")
        .header("content-type", "application/json")
        .header(capstan_proto::HEADER_AGENT_ID, id)
        .header(capstan_proto::HEADER_AGENT_KEY, key)
        .body(Body::from(body.to_string()))
        .expect("request")
}

fn beat_body() -> Value {
    json!({
        "protocol": capstan_proto::PROTOCOL_VERSION, "agent_version": "0.1.0", "hostname": "web-1",
        "os": "Debian", "uptime_secs": 10, "interval_ms": 1000,
    })
}

#[tokio::test]
async fn ping_needs_no_auth_and_everything_else_does() {
    let h = harness();
    let (status, body) = h.call(get("/api/ping", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    for uri in [
        "/api/agents",
        "/api/agents/x",
        "/api/agents/x/tasks",
        "/api/join-tokens",
        "/api/auth/me",
        "/api/info",
    ] {
        let (status, body) = h.call(get(uri, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(body["error"]["code"], "unauthorized", "{uri}");
        let (status, _) = h.call(get(uri, Some("not.a.jwt"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} with garbage token");
    }
    let (status, _) = h
        .call(json_req(
            Method::POST,
            "/api/agents",
            None,
            json!({"name": "a"}),
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_refresh_rotates_and_logout_revokes() {
    let h = harness();
    let (status, body) = h
        .call(json_req(
            Method::POST,
            "/api/auth/login",
            None,
            json!({"username": "admin", "password": "wrong-password"}),
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_credentials");

    let tokens = h.login().await;
    assert_eq!(tokens["token_type"], "Bearer");
    let access = tokens["access_token"].as_str().expect("access");
    let (status, me) = h.call(get("/api/auth/me", Some(access))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "admin");

    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    let (status, rotated) = h
        .call(json_req(
            Method::POST,
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": refresh }),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(rotated["refresh_token"], tokens["refresh_token"]);
    let (status, body) = h
        .call(json_req(
            Method::POST,
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": refresh }),
        ))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "old refresh token is spent"
    );
    assert_eq!(body["error"]["code"], "invalid_refresh_token");

    let new_refresh = rotated["refresh_token"].as_str().expect("refresh");
    let (status, _) = h
        .call(json_req(
            Method::POST,
            "/api/auth/logout",
            None,
            json!({ "refresh_token": new_refresh }),
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = h
        .call(json_req(
            Method::POST,
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": new_refresh }),
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "logged out");
}

#[tokio::test]
async fn password_change_revokes_existing_tokens() {
    let h = harness();
    let token = h.token().await;
    let (status, body) = h
        .call(json_req(
            Method::POST,
            "/api/auth/password",
            Some(&token),
            json!({"current_password": PASSWORD, "new_password": "short"}),
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "new_password");
    let (status, _) = h
        .call(json_req(
            Method::POST,
            "/api/auth/password",
            Some(&token),
            json!({"current_password": PASSWORD, "new_password": "a-new-password"}),
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = h.call(get("/api/auth/me", Some(&token))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "old access token revoked");
    let (status, _) = h
        .call(json_req(
            Method::POST,
            "/api/auth/login",
            None,
            json!({"username": "admin", "password": "a-new-password"}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn login_is_rate_limited_per_source_ip() {
    let h = harness_with(Config {
        login_burst: 3,
        login_per_minute: 1,
        ..Config::default()
    });
    let attempt = || {
        json_req(
            Method::POST,
            "/api/auth/login",
            None,
            json!({"username": "admin", "password": "guess-guess"}),
        )
    };
    for _ in 0..3 {
        let (status, _) = h.call_from([10, 0, 0, 1], attempt()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let resp = h
        .router([10, 0, 0, 1])
        .oneshot(attempt())
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    let (status, _) = h.call_from([10, 0, 0, 2], attempt()).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "another IP is not limited"
    );
}

#[tokio::test]
async fn bad_input_names_the_field_and_changes_nothing() {
    let h = harness();
    let token = h.token().await;
    let cases: Vec<(Request<Body>, StatusCode, Option<&str>)> = vec![
        (
            raw_req(
                Method::POST,
                "/api/agents",
                Some(&token),
                "application/json",
                "{".into(),
            ),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            raw_req(
                Method::POST,
                "/api/agents",
                Some(&token),
                "text/plain",
                "{}".into(),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
        ),
        (
            json_req(Method::POST, "/api/agents", Some(&token), json!({})),
            StatusCode::BAD_REQUEST,
            Some("name"),
        ),
        (
            json_req(
                Method::POST,
                "/api/agents",
                Some(&token),
                json!({"name": 7}),
            ),
            StatusCode::BAD_REQUEST,
            Some("name"),
        ),
        (
            json_req(
                Method::POST,
                "/api/agents",
                Some(&token),
                json!({"name": "a", "extra": 1}),
            ),
            StatusCode::BAD_REQUEST,
            Some("extra"),
        ),
        (
            json_req(
                Method::POST,
                "/api/auth/login",
                None,
                json!({"username": "admin"}),
            ),
            StatusCode::BAD_REQUEST,
            Some("password"),
        ),
        (
            json_req(
                Method::POST,
                "/api/join-tokens",
                Some(&token),
                json!({"ttl_secs": 5}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("ttl_secs"),
        ),
        (
            json_req(
                Method::POST,
                "/api/join-tokens",
                Some(&token),
                json!({"max_uses": -1}),
            ),
            StatusCode::BAD_REQUEST,
            Some("max_uses"),
        ),
    ];
    for (req, want_status, want_field) in cases {
        let uri = req.uri().to_string();
        let (status, body) = h.call(req).await;
        assert_eq!(status, want_status, "{uri}: {body}");
        assert_eq!(body["error"]["field"].as_str(), want_field, "{uri}: {body}");
    }
    // Injection attempts against the node name grammar.
    for name in [
        "a;b", "a{b", "a}b", "a\nb", "a$b", "a'b", "a\"b", "a#b", "a\u{0}b", "a b", "../etc",
        "-rf", "",
    ] {
        let (status, body) = h
            .call(json_req(
                Method::POST,
                "/api/agents",
                Some(&token),
                json!({ "name": name }),
            ))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}: {body}");
        assert_eq!(body["error"]["field"], "name");
    }
    let long = "a".repeat(64);
    let (status, _) = h
        .call(json_req(
            Method::POST,
            "/api/agents",
            Some(&token),
            json!({ "name": long }),
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, list) = h.call(get("/api/agents", Some(&token))).await;
    assert_eq!(list, json!([]), "nothing was created");
}

#[tokio::test]
async fn node_lifecycle_and_heartbeat() {
    let h = harness();
    let token = h.token().await;
    let node = h.create_node(&token, "web-1").await;
    let id = node["id"].as_str().expect("id").to_string();
    let key = node["key"].as_str().expect("key").to_string();
    assert_eq!(node["status"], "offline");
    assert!(node["last_seen_at"].is_null());

    let (status, body) = h
        .call(json_req(
            Method::POST,
            "/api/agents",
            Some(&token),
            json!({"name": "web-1"}),
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["field"], "name");
    assert_eq!(body["error"]["code"], "name_taken");

    // Wrong key, unknown ID, missing headers: 401.
    let (status, body) = h.call(beat_req(&id, "wrong", beat_body())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_agent_key");
    let (status, _) = h.call(beat_req("nope", &key, beat_body())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h
        .call(json_req(Method::POST, "/api/heartbeat", None, beat_body()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Bad beats name the field.
    let mut bad = beat_body();
    bad.as_object_mut().expect("object").remove("hostname");
    let (status, body) = h.call(beat_req(&id, &key, bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "hostname");
    let mut bad = beat_body();
    bad["hostname"] = json!("evil;host");
    let (status, body) = h.call(beat_req(&id, &key, bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "hostname");

    let (status, reply) = h.call(beat_req(&id, &key, beat_body())).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(
        reply["desired"]["nginx"].is_null(),
        "no NGINX report, no NGINX section: {reply}"
    );
    assert_eq!(reply["tasks"], json!([]));

    let (_, view) = h
        .call(get(&format!("/api/agents/{id}"), Some(&token)))
        .await;
    assert_eq!(view["status"], "online");
    assert_eq!(view["hostname"], "web-1");
    assert!(view["last_seen_at"].is_string());

    // A task is delivered in every reply until its result comes back, then finished.
    let (status, task) = h
        .call(json_req(
            Method::POST,
            &format!("/api/agents/{id}/tasks"),
            Some(&token),
            json!({"type": "ping", "payload": {"n": 1}}),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let task_id = task["id"].as_str().expect("task id").to_string();
    for _ in 0..2 {
        let (_, reply) = h.call(beat_req(&id, &key, beat_body())).await;
        assert_eq!(reply["tasks"][0]["id"], task_id.as_str());
        assert_eq!(reply["tasks"][0]["type"], "ping");
    }
    let mut with_result = beat_body();
    with_result["task_results"] =
        json!([{"task_id": task_id, "ok": true, "output": {"pong": true}}]);
    let (_, reply) = h.call(beat_req(&id, &key, with_result)).await;
    assert_eq!(reply["tasks"], json!([]));
    let (_, tasks) = h
        .call(get(&format!("/api/agents/{id}/tasks"), Some(&token)))
        .await;
    assert_eq!(tasks[0]["status"], "done");
    assert_eq!(tasks[0]["output"]["pong"], true);
    let (status, body) = h
        .call(json_req(
            Method::POST,
            &format!("/api/agents/{id}/tasks"),
            Some(&token),
            json!({"type": "rm -rf"}),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "type");
    assert_eq!(body["error"]["code"], "unsupported_task_type");

    // Rotating the key locks the old one out at once.
    let (status, rotated) = h
        .call(json_req(
            Method::POST,
            &format!("/api/agents/{id}/rotate-key"),
            Some(&token),
            json!({}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let new_key = rotated["key"].as_str().expect("key");
    let (status, _) = h.call(beat_req(&id, &key, beat_body())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h.call(beat_req(&id, new_key, beat_body())).await;
    assert_eq!(status, StatusCode::OK);

    // Delete: gone from the API, beats refused, name free again.
    let del = Request::builder()
        .method(Method::DELETE)
        .uri(format!("/api/agents/{id}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let (status, _) = h.call(del).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = h
        .call(get(&format!("/api/agents/{id}"), Some(&token)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "node_not_found");
    let (status, _) = h.call(beat_req(&id, new_key, beat_body())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    h.create_node(&token, "web-1").await;
}

/// Issue 19 (1): every beat ran a read transaction on the blocking pool for its pending
/// tasks. They come from memory now: a beat without results is answered, its pending task
/// included, even while the store cannot be opened at all; a beat carrying a result still
/// needs the store (503, so the agent keeps it), and lands once the store is back.
#[tokio::test]
async fn beats_learn_pending_tasks_without_reading_the_store() {
    let h = harness();
    let token = h.token().await;
    let node = h.create_node(&token, "web-1").await;
    let id = node["id"].as_str().expect("id").to_string();
    let key = node["key"].as_str().expect("key").to_string();
    let (status, task) = h
        .call(json_req(
            Method::POST,
            &format!("/api/agents/{id}/tasks"),
            Some(&token),
            json!({"type": "ping"}),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let task_id = task["id"].as_str().expect("task id").to_string();

    // The file goes away and the store is reopened: every store read now fails.
    let db = h.state.config.database_path();
    let aside = db.with_extension("aside");
    std::fs::rename(&db, &aside).expect("move the store aside");
    let store = h.state.store.clone();
    let reopened = tokio::task::spawn_blocking(move || store.reopen())
        .await
        .expect("join");
    assert!(reopened.is_err(), "the store cannot open a missing file");

    let (status, reply) = h.call(beat_req(&id, &key, beat_body())).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["tasks"][0]["id"], task_id.as_str());
    let mut with_result = beat_body();
    with_result["task_results"] = json!([{"task_id": task_id, "ok": true, "output": {}}]);
    let (status, body) = h.call(beat_req(&id, &key, with_result.clone())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (_, reply) = h.call(beat_req(&id, &key, beat_body())).await;
    assert_eq!(reply["tasks"][0]["id"], task_id.as_str(), "still pending");

    std::fs::rename(&aside, &db).expect("bring the store back");
    let store = h.state.store.clone();
    tokio::task::spawn_blocking(move || store.reopen())
        .await
        .expect("join")
        .expect("reopen");
    let (status, reply) = h.call(beat_req(&id, &key, with_result)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["tasks"], json!([]));
    let (_, tasks) = h
        .call(get(&format!("/api/agents/{id}/tasks"), Some(&token)))
        .await;
    assert_eq!(tasks[0]["status"], "done");
}

/// Issue 19 (1): redb's page cache is sized from the config (its own default is 1 GiB).
#[tokio::test]
async fn the_store_cache_is_sized_from_the_config() {
    let h = harness();
    assert_eq!(h.state.store.cache_bytes(), 64 << 20, "the default");
    let h = harness_with(Config {
        store_cache_mb: 8,
        ..Config::default()
    });
    assert_eq!(h.state.store.cache_bytes(), 8 << 20);
}

/// Issue 10 (1): a user could queue `update_nginx` with any payload and the agent applied
/// it. Only the harmless run-once commands may be queued now; the rest is 400 naming
/// `type`, and nothing is stored or delivered.
#[tokio::test]
async fn only_run_once_commands_can_be_queued() {
    let h = harness();
    let token = h.token().await;
    let node = h.create_node(&token, "web-1").await;
    let id = node["id"].as_str().expect("id").to_string();
    let key = node["key"].as_str().expect("key").to_string();
    let attack = json!({
        "type": "update_nginx",
        "payload": {"version": 1, "services": [{
            "name": "../../../../tmp/x/demo.service.d/override",
            "domains": ["inj.test; location /leak/ { alias /etc/; autoindex on; } server_tokens off"],
        }]},
    });
    for body in [
        attack,
        json!({"type": "get_logs", "payload": {"source": "web", "tail": 10}}),
        json!({"type": "unknown"}),
        json!({"type": "from_the_future"}),
        json!({"type": ""}),
    ] {
        let (status, reply) = h
            .call(json_req(
                Method::POST,
                &format!("/api/agents/{id}/tasks"),
                Some(&token),
                body.clone(),
            ))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert_eq!(reply["error"]["field"], "type", "{reply}");
        assert_eq!(reply["error"]["code"], "unsupported_task_type", "{reply}");
    }
    let (_, tasks) = h
        .call(get(&format!("/api/agents/{id}/tasks"), Some(&token)))
        .await;
    assert_eq!(tasks, json!([]), "nothing queued");
    let (_, reply) = h.call(beat_req(&id, &key, beat_body())).await;
    assert_eq!(reply["tasks"], json!([]), "nothing delivered");
    for kind in ["noop", "ping"] {
        let (status, task) = h
            .call(json_req(
                Method::POST,
                &format!("/api/agents/{id}/tasks"),
                Some(&token),
                json!({ "type": kind }),
            ))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{task}");
        assert_eq!(task["type"], kind);
    }
}

/// Issue 10 (1): beats carry the protocol version; another version is refused with a
/// clear 4xx naming `protocol`, and the node shows why until a beat is accepted.
#[tokio::test]
async fn a_beat_in_another_protocol_is_refused_and_shown_on_the_node() {
    let h = harness();
    let token = h.token().await;
    let node = h.create_node(&token, "web-1").await;
    let id = node["id"].as_str().expect("id").to_string();
    let key = node["key"].as_str().expect("key").to_string();
    assert!(node["protocol_error"].is_null());
    for version in [1, 99] {
        let mut beat = beat_body();
        beat["protocol"] = json!(version);
        let (status, body) = h.call(beat_req(&id, &key, beat)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "unsupported_protocol");
        assert_eq!(body["error"]["field"], "protocol");
        let (_, view) = h
            .call(get(&format!("/api/agents/{id}"), Some(&token)))
            .await;
        let shown = view["protocol_error"].as_str().unwrap_or_default();
        assert!(
            shown.contains(&format!("protocol {version}"))
                && shown.contains(&format!("speaks {}", capstan_proto::PROTOCOL_VERSION)),
            "{view}"
        );
        assert_eq!(view["status"], "offline", "a refused beat is not presence");
    }
    let (_, list) = h.call(get("/api/agents", Some(&token))).await;
    assert!(list[0]["protocol_error"].is_string(), "{list}");
    let (status, _) = h.call(beat_req(&id, &key, beat_body())).await;
    assert_eq!(status, StatusCode::OK);
    let (_, view) = h
        .call(get(&format!("/api/agents/{id}"), Some(&token)))
        .await;
    assert!(view["protocol_error"].is_null(), "{view}");
    assert_eq!(view["status"], "online");
}

fn nginx_report(warnings: Value, error: Value) -> Value {
    json!({"address": "127.0.0.1", "http_port": 8080, "https_port": 8443,
        "warnings": warnings, "error": error})
}

async fn create_service(h: &Harness, token: &str, name: &str, node: &str) -> String {
    let (status, svc) = h
        .call(json_req(
            Method::POST,
            "/api/services",
            Some(token),
            json!({
                "name": name,
                "domains": [format!("{name}.example.com")],
                "placements": [{"node_id": node, "targets": [
                    {"kind": "container", "container": format!("{name}-web"), "port": 80}
                ]}],
            }),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{svc}");
    svc["id"].as_str().expect("id").to_string()
}

/// The NGINX desired state is a typed, versioned section of the reply: sent while the
/// node has not applied it, not resent once applied or once that version failed there.
#[tokio::test]
async fn the_nginx_section_is_sent_until_applied_and_not_after_it_failed() {
    let h = harness();
    let token = h.token().await;
    let node = h.create_node(&token, "web-1").await;
    let id = node["id"].as_str().expect("id").to_string();
    let key = node["key"].as_str().expect("key").to_string();
    let svc = create_service(&h, &token, "shop", &id).await;
    let mut beat = beat_body();
    beat["nginx"] = nginx_report(json!([]), Value::Null);
    let (status, reply) = h.call(beat_req(&id, &key, beat.clone())).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let section = &reply["desired"]["nginx"];
    let version = section["version"].as_u64().expect("version");
    assert!(version > 0);
    let spec = &section["state"]["services"][0];
    assert_eq!(spec["id"], svc.as_str(), "files are named from this ID");
    assert_eq!(spec["name"], "shop");
    assert_eq!(spec["domains"], json!(["shop.example.com"]));
    let state: capstan_proto::NginxDesired =
        serde_json::from_value(section["state"].clone()).expect("typed");
    assert_eq!(capstan_proto::validate::nginx_desired(&state), Ok(()));
    assert!(reply["tasks"].as_array().is_some_and(Vec::is_empty));
    // Applied: nothing more to send.
    beat["applied"] = json!({"nginx": version});
    let (_, reply) = h.call(beat_req(&id, &key, beat.clone())).await;
    assert!(reply["desired"]["nginx"].is_null(), "{reply}");
    // Failed (refused or rejected by nginx -t): not resent, and the node shows the error.
    beat["applied"] = json!({"nginx": 0});
    beat["nginx"] = nginx_report(
        json!([]),
        json!({"version": version, "message": "refused the desired state: services[0].name: bad"}),
    );
    let (_, reply) = h.call(beat_req(&id, &key, beat)).await;
    assert!(reply["desired"]["nginx"].is_null(), "{reply}");
    let (_, view) = h
        .call(get(&format!("/api/agents/{id}"), Some(&token)))
        .await;
    assert_eq!(view["config_state"], "error", "{view}");
}

/// Issue 10 (7): a warning about one service's missing container showed on every service
/// of the node. Each service shows its own warnings and the node-wide ones only.
#[tokio::test]
async fn warnings_show_on_their_own_service_only() {
    let h = harness();
    let token = h.token().await;
    let node = h.create_node(&token, "web-1").await;
    let id = node["id"].as_str().expect("id").to_string();
    let key = node["key"].as_str().expect("key").to_string();
    let a = create_service(&h, &token, "alpha", &id).await;
    let b = create_service(&h, &token, "beta", &id).await;
    let mut beat = beat_body();
    beat["nginx"] = nginx_report(
        json!([
            {"service_id": a, "message": "alpha: no running container matches alpha-web"},
            {"message": "Docker is unavailable"},
            "an old agent's warning",
        ]),
        Value::Null,
    );
    let (status, reply) = h.call(beat_req(&id, &key, beat)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let warnings_of = |svc: Value| svc["status"][0]["warnings"].clone();
    let (_, sa) = h
        .call(get(&format!("/api/services/{a}"), Some(&token)))
        .await;
    assert_eq!(
        warnings_of(sa),
        json!([
            "alpha: no running container matches alpha-web",
            "Docker is unavailable",
            "an old agent's warning"
        ])
    );
    let (_, sb) = h
        .call(get(&format!("/api/services/{b}"), Some(&token)))
        .await;
    assert_eq!(
        warnings_of(sb),
        json!(["Docker is unavailable", "an old agent's warning"]),
        "beta does not show alpha's missing container"
    );
    let (_, routing) = h.call(get("/api/routing", Some(&token))).await;
    assert_eq!(
        routing["nodes"][0]["warnings"].as_array().map(Vec::len),
        Some(3),
        "the node's view lists them all: {routing}"
    );
}

/// One table of specific error codes: what was not found, what is taken.
#[tokio::test]
async fn error_codes_say_what_went_wrong() {
    let h = harness();
    let token = h.token().await;
    let node = h.create_node(&token, "web-1").await;
    let id = node["id"].as_str().expect("id").to_string();
    for (uri, code) in [
        ("/api/agents/nope", "node_not_found"),
        ("/api/agents/nope/tasks", "node_not_found"),
        ("/api/services/nope", "service_not_found"),
        ("/api/nope", "not_found"),
    ] {
        let (status, body) = h.call(get(uri, Some(&token))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert_eq!(body["error"]["code"], code, "{uri}: {body}");
    }
    create_service(&h, &token, "shop", &id).await;
    let (status, body) = h
        .call(json_req(
            Method::POST,
            "/api/services",
            Some(&token),
            json!({"name": "other", "domains": ["x.example.com", "shop.example.com"]}),
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "domain_taken");
    assert_eq!(body["error"]["field"], "domains[1]");
    let (status, body) = h
        .call(json_req(
            Method::POST,
            "/api/services",
            Some(&token),
            json!({"name": "shop", "domains": ["y.example.com"]}),
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "name_taken");
    assert_eq!(body["error"]["field"], "name");
}

/// Beats authenticate against the in-memory fleet snapshot: nodes created concurrently
/// must all be in it, never lost to a refresh that read the store earlier and finished
/// later.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn nodes_created_concurrently_can_all_beat_at_once() {
    let h = std::sync::Arc::new(harness());
    let token = h.token().await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (h, token) = (h.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            h.create_node(&token, &format!("node-{i}")).await
        }));
    }
    let mut nodes = Vec::new();
    for t in tasks {
        nodes.push(t.await.expect("task"));
    }
    for node in nodes {
        let id = node["id"].as_str().expect("id");
        let key = node["key"].as_str().expect("key");
        let (status, body) = h.call(beat_req(id, key, beat_body())).await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
    }
}

#[tokio::test]
async fn offline_after_missed_beats() {
    let h = harness();
    let token = h.token().await;
    let node = h.create_node(&token, "fast").await;
    let id = node["id"].as_str().expect("id");
    let key = node["key"].as_str().expect("key");
    let mut beat = beat_body();
    beat["interval_ms"] = json!(100);
    let (status, _) = h.call(beat_req(id, key, beat)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, view) = h
        .call(get(&format!("/api/agents/{id}"), Some(&token)))
        .await;
    assert_eq!(view["status"], "online");
    // 3 missed beats of 100 ms (+ half a beat of slack) = 350 ms.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let (_, view) = h
        .call(get(&format!("/api/agents/{id}"), Some(&token)))
        .await;
    assert_eq!(view["status"], "offline");
}

#[tokio::test]
async fn join_token_registration() {
    let h = harness();
    let token = h.token().await;
    let (status, jt) = h
        .call(json_req(
            Method::POST,
            "/api/join-tokens",
            Some(&token),
            json!({"max_uses": 1}),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{jt}");
    let join = jt["token"].as_str().expect("token").to_string();
    let (_, list) = h.call(get("/api/join-tokens", Some(&token))).await;
    assert!(
        list[0].get("token").is_none(),
        "secret never listed: {list}"
    );

    let register = |name: &str, join: &str| {
        json_req(
            Method::POST,
            "/api/agents/register",
            None,
            json!({"join_token": join, "name": name, "hostname": "host-a"}),
        )
    };
    let (status, body) = h.call(register("bad;name", &join)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "name");
    let (status, body) = h.call(register("node-a", "x.y")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_join_token");
    let (status, creds) = h.call(register("node-a", &join)).await;
    assert_eq!(status, StatusCode::CREATED, "{creds}");
    let (status, _) = h
        .call(beat_req(
            creds["id"].as_str().expect("id"),
            creds["key"].as_str().expect("key"),
            beat_body(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h.call(register("node-b", &join)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "single use");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let h = harness();
    let (status, body) = h.call(get("/api/nope", None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let put = Request::builder()
        .method(Method::PUT)
        .uri("/api/ping")
        .body(Body::empty())
        .expect("request");
    let (status, body) = h.call(put).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let h = harness();
    let (status, doc) = h.call(get("/api/openapi.json", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/ping", "get"),
        ("/api/info", "get"),
        ("/api/auth/login", "post"),
        ("/api/auth/refresh", "post"),
        ("/api/auth/logout", "post"),
        ("/api/auth/me", "get"),
        ("/api/auth/password", "post"),
        ("/api/agents", "get"),
        ("/api/agents", "post"),
        ("/api/agents/{id}", "get"),
        ("/api/agents/{id}", "delete"),
        ("/api/agents/{id}/rotate-key", "post"),
        ("/api/agents/{id}/tasks", "get"),
        ("/api/agents/{id}/tasks", "post"),
        ("/api/agents/register", "post"),
        ("/api/join-tokens", "get"),
        ("/api/join-tokens", "post"),
        ("/api/join-tokens/{id}", "delete"),
        ("/api/heartbeat", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from OpenAPI"
        );
    }
}

/// The raw response (headers included) from `ip`.
async fn respond(h: &Harness, ip: [u8; 4], req: Request<Body>) -> axum::response::Response {
    h.router(ip).oneshot(req).await.expect("infallible")
}

async fn json_of(resp: axum::response::Response) -> Value {
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("json body")
    }
}

fn refresh_with(token: &str) -> Request<Body> {
    json_req(
        Method::POST,
        "/api/auth/refresh",
        None,
        json!({ "refresh_token": token }),
    )
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_its_whole_family() {
    let h = harness();
    let first = h.login().await["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let other_session = h.login().await["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let (status, rotated) = h.call(refresh_with(&first)).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let second = rotated["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let (status, rotated) = h.call(refresh_with(&second)).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let third = rotated["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();

    // Someone presents `first` again (the thief, or the victim after the thief rotated).
    let (status, body) = h.call(refresh_with(&first)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_refresh_token");
    // The newest token of that family is revoked with it.
    let (status, body) = h.call(refresh_with(&third)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "token from the rotation still works: {body}"
    );
    // Another login's session is untouched.
    let (status, _) = h.call(refresh_with(&other_session)).await;
    assert_eq!(status, StatusCode::OK);
}

fn set_cookie(resp: &axum::response::Response) -> String {
    let all: Vec<_> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect();
    assert_eq!(all.len(), 1, "one Set-Cookie: {all:?}");
    all[0].clone()
}

fn cookie_value(set_cookie: &str) -> String {
    let first = set_cookie.split(';').next().expect("pair");
    let (name, value) = first.split_once('=').expect("name=value");
    assert_eq!(name, "capstan_refresh");
    value.to_string()
}

fn with_cookie(uri: &str, cookie: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("content-type", "application/json")
        .header("cookie", format!("theme=dark; capstan_refresh={cookie}"))
        .body(Body::from(body.to_string()))
        .expect("request")
}

#[tokio::test]
async fn browser_session_keeps_the_refresh_token_in_an_httponly_cookie() {
    let h = harness();
    let login = json_req(
        Method::POST,
        "/api/auth/login",
        None,
        json!({"username": "admin", "password": PASSWORD, "session_cookie": true}),
    );
    let resp = respond(&h, [127, 0, 0, 1], login).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = set_cookie(&resp);
    for attr in [
        "Path=/api/auth",
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=2592000",
    ] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let body = json_of(resp).await;
    assert!(body["access_token"].is_string());
    assert!(
        body.get("refresh_token").is_none(),
        "cookie mode keeps the refresh token out of the body: {body}"
    );
    let token = cookie_value(&cookie);

    // Refresh by cookie: a new cookie, no token in the body.
    let resp = respond(
        &h,
        [127, 0, 0, 1],
        with_cookie("/api/auth/refresh", &token, json!({})),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rotated = cookie_value(&set_cookie(&resp));
    assert_ne!(rotated, token);
    let body = json_of(resp).await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body["access_token"].is_string());

    // Reusing the old cookie fails and clears the cookie, and ends the session.
    let resp = respond(
        &h,
        [127, 0, 0, 1],
        with_cookie("/api/auth/refresh", &token, json!({})),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&resp).contains("Max-Age=0"));
    let resp = respond(
        &h,
        [127, 0, 0, 1],
        with_cookie("/api/auth/refresh", &rotated, json!({})),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "family revoked");

    // No cookie, no token: 401.
    let (status, body) = h
        .call(json_req(Method::POST, "/api/auth/refresh", None, json!({})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_refresh_token");

    // Logout by cookie revokes and clears.
    let login = json_req(
        Method::POST,
        "/api/auth/login",
        None,
        json!({"username": "admin", "password": PASSWORD, "session_cookie": true}),
    );
    let token = cookie_value(&set_cookie(&respond(&h, [127, 0, 0, 1], login).await));
    let resp = respond(
        &h,
        [127, 0, 0, 1],
        with_cookie("/api/auth/logout", &token, json!({})),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookie(&resp);
    assert!(
        cleared.starts_with("capstan_refresh=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert!(cleared.contains("Path=/api/auth"), "{cleared}");
    let resp = respond(
        &h,
        [127, 0, 0, 1],
        with_cookie("/api/auth/refresh", &token, json!({})),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "logged out");
}

#[tokio::test]
async fn the_cookie_is_secure_behind_https() {
    // public_url on https: always Secure.
    let h = harness_with(Config {
        public_url: Some("https://capstan.example.com".into()),
        ..Config::default()
    });
    let login = || {
        json_req(
            Method::POST,
            "/api/auth/login",
            None,
            json!({"username": "admin", "password": PASSWORD, "session_cookie": true}),
        )
    };
    let cookie = set_cookie(&respond(&h, [127, 0, 0, 1], login()).await);
    assert!(cookie.contains("; Secure"), "{cookie}");

    // A trusted proxy saying X-Forwarded-Proto: https; an untrusted peer saying so is ignored.
    let h = harness_with(Config {
        trusted_proxies: vec!["10.9.9.9".parse().expect("ip")],
        ..Config::default()
    });
    let forwarded = || {
        let mut req = login();
        req.headers_mut()
            .insert("x-forwarded-proto", "https".parse().expect("value"));
        req
    };
    let cookie = set_cookie(&respond(&h, [10, 9, 9, 9], forwarded()).await);
    assert!(cookie.contains("; Secure"), "{cookie}");
    let cookie = set_cookie(&respond(&h, [10, 1, 1, 1], forwarded()).await);
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let h = harness();
    let token = h.token().await;
    let requests = vec![
        get("/api/ping", None),
        get("/api/agents", Some(&token)),
        get("/api/agents", None),
        get("/api/nope", None),
        get("/", None),
        get("/nodes/some-page", None),
        json_req(
            Method::POST,
            "/api/join-tokens",
            Some(&token),
            json!([null, null]),
        ),
    ];
    for req in requests {
        let uri = req.uri().to_string();
        let resp = respond(&h, [127, 0, 0, 1], req).await;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{uri}: {name} missing"))
                .to_string()
        };
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{uri}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert_eq!(header("x-frame-options"), "DENY", "{uri}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{uri}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{uri}");
        assert_eq!(header("cross-origin-opener-policy"), "same-origin", "{uri}");
    }
}

#[tokio::test]
async fn a_json_array_or_scalar_is_refused_where_an_object_is_expected() {
    let h = harness();
    let token = h.token().await;
    let (_, node) = h
        .call(json_req(
            Method::POST,
            "/api/agents",
            Some(&token),
            json!({"name": "n1"}),
        ))
        .await;
    let id = node["id"].as_str().expect("id").to_string();
    let endpoints = [
        (Method::POST, "/api/join-tokens".to_string(), true),
        (Method::POST, "/api/agents".to_string(), true),
        (Method::PATCH, format!("/api/agents/{id}"), true),
        (Method::POST, format!("/api/agents/{id}/tasks"), true),
        (Method::POST, "/api/services".to_string(), true),
        (Method::POST, "/api/auth/login".to_string(), false),
        (Method::POST, "/api/auth/refresh".to_string(), false),
        (Method::POST, "/api/agents/register".to_string(), false),
    ];
    for (method, uri, auth) in &endpoints {
        for body in [
            "[null,null]",
            "[]",
            r#"["admin","test-password-1"]"#,
            "null",
            "7",
            "\"x\"",
        ] {
            let token = auth.then_some(token.as_str());
            let (status, err) = h
                .call(raw_req(
                    method.clone(),
                    uri,
                    token,
                    "application/json",
                    body.into(),
                ))
                .await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{method} {uri} {body}: {err}"
            );
            let message = err["error"]["message"].as_str().expect("message");
            assert!(
                message.contains("request body must be a JSON object"),
                "{method} {uri} {body}: {message}"
            );
        }
    }
    let (_, tokens) = h.call(get("/api/join-tokens", Some(&token))).await;
    assert_eq!(
        tokens.as_array().map(Vec::len),
        Some(0),
        "nothing created: {tokens}"
    );
    // Nested structs too: a header given as ["name","value"] is refused, naming it.
    let (status, err) = h
        .call(json_req(
            Method::POST,
            "/api/services",
            Some(&token),
            json!({"name": "svc1", "domains": ["a.example.com"],
                   "request_headers": [["X-Env", "prod"]]}),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["field"], "request_headers[0]", "{err}");
    let (status, body) = h
        .call(json_req(
            Method::POST,
            "/api/services",
            Some(&token),
            json!({"name": "svc1", "domains": ["a.example.com"],
                   "request_headers": [{"name": "X-Env", "value": "prod"}]}),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "the object form works: {body}");
}

#[tokio::test]
async fn a_spray_of_source_addresses_does_not_lock_out_a_fresh_client() {
    let h = harness_with(Config {
        trusted_proxies: vec!["127.0.0.1".parse().expect("ip")],
        ..Config::default()
    });
    let router = h.router([127, 0, 0, 1]);
    // More distinct sources than the limiter tracks (10,000), each spending one attempt
    // (an empty username is refused, 422, after the limiter and without a password hash).
    for i in 0..10_050u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        let mut req = json_req(
            Method::POST,
            "/api/auth/login",
            None,
            json!({"username": "", "password": "x"}),
        );
        req.headers_mut()
            .insert("x-forwarded-for", ip.to_string().parse().expect("value"));
        let resp = router.clone().oneshot(req).await.expect("infallible");
        assert_eq!(
            resp.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sprayer {i}"
        );
    }
    let mut req = json_req(
        Method::POST,
        "/api/auth/login",
        None,
        json!({"username": "admin", "password": PASSWORD}),
    );
    req.headers_mut()
        .insert("x-forwarded-for", "192.0.2.77".parse().expect("value"));
    let resp = router.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK, "a fresh client logs in");
    // IPv6 sources of one /64 share a bucket: a host rotating its interface ID gains nothing.
    let limited = harness_with(Config {
        trusted_proxies: vec!["127.0.0.1".parse().expect("ip")],
        login_burst: 2,
        login_per_minute: 1,
        ..Config::default()
    });
    let router = limited.router([127, 0, 0, 1]);
    let mut statuses = Vec::new();
    for suffix in 1..=3 {
        let mut req = json_req(
            Method::POST,
            "/api/auth/login",
            None,
            json!({"username": "", "password": "x"}),
        );
        req.headers_mut().insert(
            "x-forwarded-for",
            format!("2001:db8:5:6::{suffix}").parse().expect("value"),
        );
        statuses.push(
            router
                .clone()
                .oneshot(req)
                .await
                .expect("infallible")
                .status(),
        );
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}
