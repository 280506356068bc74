//! Custom service metrics: a container labelled `capstan.metrics.port` (and optionally
//! `capstan.metrics.path`, default `/metrics`) serves a JSON object of numbers, which
//! lands in its sample as `custom.<flattened path>` series.
//!
//! Each labelled container gets its own poller task (about once a second, [`TIMEOUT`]
//! per request, bodies capped at [`MAX_BODY`]) that stores its latest result; the
//! collector copies that result without awaiting anything, so a slow or dead endpoint
//! can only make its own figures stale, never delay a sample or a beat. Pollers stop
//! when their container goes away or its address changes.
//!
//! Label values come from whoever runs containers on the host and end up in a URL the
//! agent requests, so both are checked against strict grammars and the URL is rebuilt
//! and compared before use; a bad label is reported in `custom.error` and never polled.
//! Redirects and proxies are off: the agent only ever talks to the container itself.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use capstan_proto::CustomMetricsStatus;
use capstan_proto::metric_limits::MAX_CUSTOM_SERIES;
use capstan_proto::metric_names::CUSTOM_PREFIX;
use serde_json::Value;

use crate::docker::stats::ContainerMeta;

pub const PORT_LABEL: &str = "capstan.metrics.port";
pub const PATH_LABEL: &str = "capstan.metrics.path";
pub const DEFAULT_PATH: &str = "/metrics";
/// Whole request, connect to last body byte.
pub const TIMEOUT: Duration = Duration::from_millis(800);
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Response bodies larger than this are refused (a metrics object is a few KiB).
pub const MAX_BODY: usize = 256 * 1024;
const MAX_PATH: usize = 200;
/// The core accepts status texts up to 512 bytes.
const MAX_ERROR: usize = 300;

/// Where a container's endpoint is, or why it cannot be polled.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Url(String),
    Invalid(String),
}

/// The latest outcome of a poller, shared with the collector.
#[derive(Debug, Clone, Default, PartialEq)]
struct Outcome {
    /// `custom.*` series of the last successful poll, already capped.
    values: BTreeMap<String, f64>,
    /// Empty after a successful poll.
    error: String,
    dropped: u32,
    last_ok: u64,
}

struct Poller {
    target: Target,
    outcome: Arc<Mutex<Outcome>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

pub struct CustomMetrics {
    http: reqwest::Client,
    /// By full container ID.
    pollers: HashMap<String, Poller>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the custom metrics HTTP client: {0}")]
pub struct SetupError(String);

impl CustomMetrics {
    pub fn new() -> Result<CustomMetrics, SetupError> {
        // The same rustls setup as the core client (reqwest's platform verifier panics
        // without a CA bundle, even for plain HTTP), with tight limits of its own.
        let tls = crate::client::tls_config(None).map_err(|e| SetupError(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(1)
            .user_agent(concat!("capstan-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SetupError(e.to_string()))?;
        Ok(CustomMetrics {
            http,
            pollers: HashMap::new(),
        })
    }

    /// Starts pollers for newly labelled containers, restarts those whose address
    /// changed and stops those whose container is gone.
    pub fn sync(&mut self, containers: &[&ContainerMeta]) {
        let mut keep = HashMap::with_capacity(self.pollers.len());
        for c in containers {
            let Some(target) = target(c) else { continue };
            let poller = match self.pollers.remove(&c.id) {
                Some(p) if p.target == target => p,
                // Dropping the old poller aborts its task.
                _ => self.start(target),
            };
            keep.insert(c.id.clone(), poller);
        }
        self.pollers = keep;
    }

    fn start(&self, target: Target) -> Poller {
        let outcome = Arc::new(Mutex::new(Outcome {
            error: match &target {
                Target::Url(_) => "not polled yet".into(),
                Target::Invalid(e) => e.clone(),
            },
            ..Outcome::default()
        }));
        let task = match &target {
            Target::Url(url) => Some(tokio::spawn(poll_loop(
                self.http.clone(),
                url.clone(),
                outcome.clone(),
            ))),
            Target::Invalid(_) => None,
        };
        Poller {
            target,
            outcome,
            task,
        }
    }

    /// The container's latest custom series and status, `None` when it is not labelled.
    pub fn latest(&self, id: &str) -> Option<(BTreeMap<String, f64>, CustomMetricsStatus)> {
        let p = self.pollers.get(id)?;
        let o = p.outcome.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let url = match &p.target {
            Target::Url(u) => u.clone(),
            Target::Invalid(_) => String::new(),
        };
        Some((
            if o.error.is_empty() {
                o.values.clone()
            } else {
                BTreeMap::new()
            },
            CustomMetricsStatus {
                url,
                series: if o.error.is_empty() {
                    u32::try_from(o.values.len()).unwrap_or(u32::MAX)
                } else {
                    0
                },
                dropped: o.dropped,
                last_ok: o.last_ok,
                error: o.error,
            },
        ))
    }
}

async fn poll_loop(http: reqwest::Client, url: String, outcome: Arc<Mutex<Outcome>>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = poll(&http, &url).await;
        let mut o = outcome.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok((values, dropped)) => {
                o.values = values;
                o.dropped = dropped;
                o.error.clear();
                o.last_ok = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
            }
            Err(e) => {
                o.values.clear();
                o.dropped = 0;
                o.error = printable(&e);
            }
        }
    }
}

/// One request: status, size cap, JSON object of numbers.
async fn poll(http: &reqwest::Client, url: &str) -> Result<(BTreeMap<String, f64>, u32), String> {
    let mut response = http.get(url).send().await.map_err(|e| describe(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(format!("response larger than {} KiB", MAX_BODY / 1024));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("response larger than {} KiB", MAX_BODY / 1024));
        }
        body.extend_from_slice(&chunk);
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    flatten(&value)
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", TIMEOUT.as_millis());
    }
    let out = if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    crate::client::with_causes(out, e)
}

/// Flattens a JSON object into `custom.<a.b.c>` series: numbers as they are, booleans as
/// 0/1, strings, arrays and nulls ignored. Keeps the first [`MAX_CUSTOM_SERIES`] names in
/// sorted order and counts the rest.
pub fn flatten(value: &Value) -> Result<(BTreeMap<String, f64>, u32), String> {
    let Value::Object(map) = value else {
        return Err("not a JSON object".into());
    };
    let mut all = BTreeMap::new();
    let mut path = String::new();
    walk(map, &mut path, &mut all);
    let total = all.len();
    let kept: BTreeMap<String, f64> = all.into_iter().take(MAX_CUSTOM_SERIES).collect();
    let dropped = u32::try_from(total - kept.len()).unwrap_or(u32::MAX);
    Ok((kept, dropped))
}

fn walk(map: &serde_json::Map<String, Value>, path: &mut String, out: &mut BTreeMap<String, f64>) {
    for (key, v) in map {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        match v {
            Value::Number(n) => {
                if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                    out.entry(series_name(path)).or_insert(f);
                }
            }
            Value::Bool(b) => {
                out.entry(series_name(path))
                    .or_insert(if *b { 1.0 } else { 0.0 });
            }
            Value::Object(inner) => walk(inner, path, out),
            Value::String(_) | Value::Array(_) | Value::Null => {}
        }
        path.truncate(len);
    }
}

/// `custom.` + the path in the core's grammar (`[A-Za-z0-9._-/:@]`, ≤ 160 bytes).
fn series_name(path: &str) -> String {
    let mut name = String::with_capacity(CUSTOM_PREFIX.len() + path.len());
    name.push_str(CUSTOM_PREFIX);
    name.extend(path.chars().map(|c| {
        if c.is_ascii_alphanumeric() || "._-/:@".contains(c) {
            c
        } else {
            '_'
        }
    }));
    // Every character is ASCII now, so any byte length is a character boundary.
    name.truncate(160);
    name
}

/// The container's endpoint from its labels and addresses; `None` when it has no
/// `capstan.metrics.port` label.
pub fn target(c: &ContainerMeta) -> Option<Target> {
    let port = c.labels.get(PORT_LABEL)?;
    let path = c
        .labels
        .get(PATH_LABEL)
        .map_or(DEFAULT_PATH, String::as_str);
    Some(match build_url(port, path, c) {
        Ok(url) => Target::Url(url),
        Err(e) => Target::Invalid(e),
    })
}

fn build_url(port: &str, path: &str, c: &ContainerMeta) -> Result<String, String> {
    let port = parse_port(port)
        .ok_or_else(|| format!("label {PORT_LABEL}={} is not a port (1-65535)", quote(port)))?;
    if !valid_path(path) {
        return Err(format!(
            "label {PATH_LABEL}={} is not a URL path (/ then up to {MAX_PATH} of [A-Za-z0-9._~/-], optional ?query of [A-Za-z0-9._~=&-])",
            quote(path)
        ));
    }
    let ip: IpAddr = if c.host_network {
        IpAddr::from([127, 0, 0, 1])
    } else {
        // Prefer IPv4: Docker's default bridge has no IPv6.
        c.ips
            .iter()
            .find(|ip| ip.is_ipv4())
            .or(c.ips.first())
            .copied()
            .ok_or("the container has no IP address (network none?)")?
    };
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let text = format!("http://{host}:{port}{path}");
    // Belt and braces: the parsed URL must point where we meant, and nowhere else.
    let url = reqwest::Url::parse(&text).map_err(|e| format!("bad metrics URL: {e}"))?;
    let same = url.scheme() == "http"
        && url.host_str() == Some(host.as_str())
        && url.port_or_known_default() == Some(port)
        && url.username().is_empty()
        && url.fragment().is_none();
    if !same {
        return Err("bad metrics URL".into());
    }
    Ok(text)
}

/// Digits only, 1-65535 (no sign, no spaces, no leading zeros).
pub fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0') {
        return None;
    }
    s.parse::<u16>().ok().filter(|p| *p > 0)
}

/// `/` then path characters (unreserved and `/`, no `..` segment, no `//`), optionally
/// `?` and a query of unreserved characters, `=` and `&`. No percent-escapes, spaces,
/// `#`, `@` or `\`: nothing that could change where the request goes.
pub fn valid_path(p: &str) -> bool {
    if p.len() > MAX_PATH || !p.starts_with('/') || p.contains("//") {
        return false;
    }
    let (path, query) = match p.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (p, None),
    };
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    path.bytes().all(|b| unreserved(b) || b == b'/')
        && !path.split('/').any(|seg| seg == ".." || seg == ".")
        && query.is_none_or(|q| q.bytes().all(|b| unreserved(b) || b == b'=' || b == b'&'))
}

/// A label value shown in an error: escaped (no control characters reach the core or
/// the UI) and shortened.
fn quote(s: &str) -> String {
    let short: String = s.chars().take(40).collect();
    let mut q = format!("{short:?}");
    if s.chars().count() > 40 {
        q.push('…');
    }
    q
}

/// An error as the core accepts it: printable, bounded.
fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(labels: &[(&str, &str)], ips: &[&str], host_network: bool) -> ContainerMeta {
        ContainerMeta {
            id: "abc".into(),
            name: "web".into(),
            image: "img".into(),
            state: "running".into(),
            status: "Up".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ips: ips.iter().map(|s| s.parse().expect("ip")).collect(),
            host_network,
        }
    }

    #[test]
    fn nested_objects_flatten_with_dots_and_non_numbers_are_ignored() {
        let v = json!({
            "requests": 12,
            "latency": {"p50": 0.5, "p99": {"ms": 9}},
            "up": true,
            "down": false,
            "version": "1.2",
            "list": [1, 2],
            "nothing": null,
            "weird key/ü": 3,
        });
        let (m, dropped) = flatten(&v).expect("object");
        assert_eq!(dropped, 0);
        let expected: BTreeMap<String, f64> = [
            ("custom.down", 0.0),
            ("custom.latency.p50", 0.5),
            ("custom.latency.p99.ms", 9.0),
            ("custom.requests", 12.0),
            ("custom.up", 1.0),
            ("custom.weird_key/_", 3.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(m, expected);
    }

    #[test]
    fn only_objects_are_accepted() {
        for v in [json!([1, 2]), json!(3), json!("x"), json!(null)] {
            assert!(flatten(&v).is_err(), "{v}");
        }
    }

    #[test]
    fn series_are_capped_and_the_rest_counted() {
        let obj: serde_json::Map<String, Value> = (0..MAX_CUSTOM_SERIES + 7)
            .map(|i| (format!("m{i:03}"), json!(i)))
            .collect();
        let (m, dropped) = flatten(&Value::Object(obj)).expect("object");
        assert_eq!(m.len(), MAX_CUSTOM_SERIES);
        assert_eq!(dropped, 7);
        assert!(m.contains_key("custom.m000"));
    }

    #[test]
    fn long_names_are_cut_to_the_core_limit() {
        let key = "k".repeat(300);
        let (m, _) = flatten(&json!({ key: 1 })).expect("object");
        let name = m.keys().next().expect("one");
        assert_eq!(name.len(), 160);
        assert!(name.starts_with(CUSTOM_PREFIX));
    }

    #[test]
    fn ports_are_strict() {
        assert_eq!(parse_port("9100"), Some(9100));
        assert_eq!(parse_port("65535"), Some(65535));
        for bad in [
            "", "0", "65536", "-1", "+80", " 80", "80 ", "0080", "8o", "99999999",
        ] {
            assert_eq!(parse_port(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn paths_are_strict() {
        for ok in [
            "/",
            "/metrics",
            "/api/v1/stats.json",
            "/m?format=json&x=1",
            "/a-b_c~d",
        ] {
            assert!(valid_path(ok), "{ok}");
        }
        let long = format!("/{}", "a".repeat(200));
        for bad in [
            "",
            "metrics",
            "//evil.example/x",
            "/a/../b",
            "/./b",
            "/a b",
            "/a#frag",
            "/a%2e",
            "/@evil",
            "/a\\b",
            "/a\nb",
            "/a?b c",
            long.as_str(),
        ] {
            assert!(!valid_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn url_uses_the_bridge_address_or_loopback_for_host_network() {
        let c = meta(&[(PORT_LABEL, "9100")], &["172.17.0.5"], false);
        assert_eq!(
            target(&c),
            Some(Target::Url("http://172.17.0.5:9100/metrics".into()))
        );
        let c = meta(&[(PORT_LABEL, "8080"), (PATH_LABEL, "/stats")], &[], true);
        assert_eq!(
            target(&c),
            Some(Target::Url("http://127.0.0.1:8080/stats".into()))
        );
        let c = meta(&[(PORT_LABEL, "80")], &["fd00::5"], false);
        assert_eq!(
            target(&c),
            Some(Target::Url("http://[fd00::5]:80/metrics".into()))
        );
        assert_eq!(target(&meta(&[], &["172.17.0.5"], false)), None);
    }

    #[test]
    fn bad_labels_are_reported_escaped_and_never_become_urls() {
        let c = meta(&[(PORT_LABEL, "80\n; rm")], &["172.17.0.5"], false);
        let Some(Target::Invalid(e)) = target(&c) else {
            panic!("accepted a bad port");
        };
        assert!(e.contains(PORT_LABEL) && !e.contains('\n'), "{e}");
        let c = meta(
            &[(PORT_LABEL, "80"), (PATH_LABEL, "@evil.example/")],
            &["172.17.0.5"],
            false,
        );
        assert!(matches!(target(&c), Some(Target::Invalid(_))));
        let c = meta(&[(PORT_LABEL, "80")], &[], false);
        assert!(matches!(target(&c), Some(Target::Invalid(_))));
    }

    #[test]
    fn errors_are_printable_and_bounded() {
        let e = printable(&format!("a\u{7}b{}", "é".repeat(400)));
        assert!(e.len() <= MAX_ERROR && !e.chars().any(char::is_control));
        assert!(e.starts_with("a b"));
    }

    /// A real HTTP server on loopback answering by path, for the poller's limits.
    async fn server() -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (status, body) = match path.as_str() {
                        "/ok" => ("200 OK", r#"{"a":{"b":2},"up":true}"#.to_string()),
                        "/list" => ("200 OK", "[1,2]".to_string()),
                        "/big" => ("200 OK", format!(r#"{{"x":"{}"}}"#, "y".repeat(MAX_BODY))),
                        "/slow" => {
                            tokio::time::sleep(TIMEOUT * 4).await;
                            ("200 OK", "{}".to_string())
                        }
                        _ => ("500 Internal Server Error", String::new()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(body.as_bytes()).await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn polls_a_real_endpoint_and_refuses_what_breaks_the_rules() {
        let port = server().await;
        let m = CustomMetrics::new().expect("client");
        let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
        let (values, dropped) = poll(&m.http, &url("/ok")).await.expect("ok");
        assert_eq!(dropped, 0);
        assert_eq!(values.get("custom.a.b"), Some(&2.0));
        assert_eq!(values.get("custom.up"), Some(&1.0));
        let e = poll(&m.http, &url("/list")).await.expect_err("array");
        assert!(e.contains("not a JSON object"), "{e}");
        let e = poll(&m.http, &url("/big")).await.expect_err("big");
        assert!(e.contains("larger than 256 KiB"), "{e}");
        let e = poll(&m.http, &url("/missing")).await.expect_err("500");
        assert!(e.contains("500"), "{e}");
        let e = poll(&m.http, &url("/slow")).await.expect_err("slow");
        assert!(e.contains("timed out"), "{e}");
    }

    #[tokio::test]
    async fn pollers_start_with_their_container_and_stop_when_it_goes() {
        let port = server().await;
        let mut m = CustomMetrics::new().expect("client");
        let port_label = port.to_string();
        let c = meta(
            &[(PORT_LABEL, port_label.as_str()), (PATH_LABEL, "/ok")],
            &[],
            true,
        );
        m.sync(&[&c]);
        let (values, status) = loop {
            let (values, status) = m.latest("abc").expect("labelled");
            if status.error.is_empty() {
                break (values, status);
            }
            assert_eq!(status.error, "not polled yet");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(values.len(), 2);
        assert_eq!(status.series, 2);
        assert_eq!(status.url, format!("http://127.0.0.1:{port}/ok"));
        assert!(status.last_ok > 0);

        // The container goes: its poller task ends (and with it the last reference to
        // the shared outcome besides ours).
        let outcome = m.pollers.get("abc").expect("poller").outcome.clone();
        m.sync(&[]);
        assert!(m.latest("abc").is_none());
        while Arc::strong_count(&outcome) > 1 {
            tokio::task::yield_now().await;
        }
    }
}
