//! The only types that cross the wire between `capstan-core` and `capstan-agent`.
//!
//! Both binaries depend on this crate, so a change here is a protocol change: bump
//! [`PROTOCOL_VERSION`] when an old agent could misread a new core (or the reverse).
//! Fields added later must be `#[serde(default)]` so mixed versions keep beating.

pub mod validate;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Protocol version sent by the agent in every beat (`protocol` in the body). The core
/// answers any other version with 400 `unsupported_protocol`. 2: desired state travels
/// in typed sections of the reply (`HeartbeatResponse::desired`), tasks are run-once
/// commands only.
pub const PROTOCOL_VERSION: u32 = 2;

/// Header carrying the agent's ID on agent endpoints.
pub const HEADER_AGENT_ID: &str = "x-capstan-agent-id";
/// Header carrying the agent's secret key on agent endpoints.
pub const HEADER_AGENT_KEY: &str = "x-capstan-agent-key";

/// What the agent sends once a second.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatRequest {
    /// Wire protocol the agent speaks.
    pub protocol: u32,
    /// `capstan-agent` version (semver).
    pub agent_version: String,
    pub hostname: String,
    /// Operating system, e.g. "Debian GNU/Linux 12 (bookworm)".
    pub os: String,
    /// Host uptime in seconds.
    pub uptime_secs: u64,
    /// How often the agent beats; the core derives "offline" from it.
    pub interval_ms: u64,
    /// Per section of desired state, the version the agent has applied last.
    #[serde(default)]
    pub applied: AppliedVersions,
    /// Results of tasks finished since the last acknowledged beat.
    #[serde(default)]
    pub task_results: Vec<TaskResult>,
    /// The node's NGINX: where it listens and how the last apply went. Absent when the
    /// agent does not manage NGINX.
    #[serde(default)]
    pub nginx: Option<NginxReport>,
    /// Host and container figures since the last acknowledged beat. Absent from agents
    /// that do not collect metrics.
    #[serde(default)]
    pub metrics: Option<MetricsReport>,
}

/// What the agent says about its NGINX in every beat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NginxReport {
    /// Address other nodes (the edge) reach this NGINX on.
    pub address: String,
    pub http_port: u16,
    pub https_port: u16,
    /// The desired-state version that failed to apply last, with NGINX's message.
    #[serde(default)]
    pub error: Option<ApplyError>,
    /// Non-fatal problems of the running config (e.g. a selector matching no container),
    /// tagged with the service they concern.
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// Reloads done since the agent started (coalescing is visible from outside).
    #[serde(default)]
    pub reloads: u64,
}

/// Per section of desired state: the version applied last (0: none yet). Each module with
/// a section adds its field here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppliedVersions {
    #[serde(default)]
    pub nginx: u64,
}

/// A problem of the running config, for one service (`service_id`) or the whole node
/// (none). Reads the plain strings older agents sent as node-wide warnings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(from = "WarningWire")]
pub struct Warning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    pub message: String,
}

impl Warning {
    pub fn node(message: impl Into<String>) -> Warning {
        Warning {
            service_id: None,
            message: message.into(),
        }
    }

    pub fn service(service_id: &str, message: impl Into<String>) -> Warning {
        Warning {
            service_id: Some(service_id.to_string()),
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WarningWire {
    Text(String),
    Tagged {
        #[serde(default)]
        service_id: Option<String>,
        message: String,
    },
}

impl From<WarningWire> for Warning {
    fn from(w: WarningWire) -> Warning {
        match w {
            WarningWire::Text(message) => Warning {
                service_id: None,
                message,
            },
            WarningWire::Tagged {
                service_id,
                message,
            } => Warning {
                service_id,
                message,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApplyError {
    pub version: u64,
    pub message: String,
}

/// Metrics carried by a beat: normally one sample; after an outage the agent's backlog
/// (oldest first), so the core can fill the gap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricsReport {
    pub samples: Vec<MetricsSample>,
    /// The agent's number for this beat, increasing (Unix microseconds when sent), echoed
    /// in `MetricsAck::committed_beat` once its samples are written.
    #[serde(default)]
    pub beat: u64,
}

/// One collection (one second) on one node. Rates and percentages are computed by the
/// agent from its previous reading, so every value stands alone. Series names are
/// `group[.instance].field`; the groups and fields are the `metric_names` constants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricsSample {
    /// Collection time, Unix seconds on the agent's clock.
    pub t: u64,
    /// Host series name → value.
    #[serde(default)]
    pub host: std::collections::BTreeMap<String, f64>,
    /// Running containers.
    #[serde(default)]
    pub containers: Vec<ContainerSample>,
    /// QEMU/KVM guests running on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<VmSample>,
}

/// One container's figures in a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContainerSample {
    /// Docker name without the leading `/`; series are keyed by it, so a re-created
    /// container keeps its history.
    pub name: String,
    /// Short (12 hex) container ID.
    pub id: String,
    pub image: String,
    /// Docker's state (`running`, …) and status text (`Up 3 minutes (healthy)`).
    pub state: String,
    pub status: String,
    /// Docker health check state: `starting`, `healthy`, `unhealthy`; empty without a
    /// health check.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub health: String,
    /// Times Docker restarted the container (its restart policy).
    #[serde(default)]
    pub restarts: u64,
    /// Container series name → value. Custom metrics read from the container's own
    /// endpoint are among them, named `custom.<flattened JSON path>`.
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, f64>,
    /// State of the custom metrics endpoint, for containers labelled
    /// `capstan.metrics.port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomMetricsStatus>,
}

/// How the last poll of a container's custom metrics endpoint went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CustomMetricsStatus {
    /// The URL polled, e.g. `http://172.17.0.5:9100/metrics`.
    pub url: String,
    /// Empty when the last poll succeeded; otherwise why it failed (timeout, HTTP status,
    /// not a JSON object of numbers…). The last good values are not repeated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Series reported (at most the per-container cap).
    pub series: u32,
    /// Series left out because the endpoint offered more than the cap.
    #[serde(default)]
    pub dropped: u32,
    /// Unix seconds of the last successful poll (0: never).
    #[serde(default)]
    pub last_ok: u64,
}

/// One QEMU/KVM guest's figures in a sample, discovered from the host's processes (and
/// libvirt where present).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmSample {
    /// The guest's name (`-name guest=…`, libvirt's domain name, or `qemu-<pid>`);
    /// series are keyed by it.
    pub name: String,
    /// Where it was found: `qemu` (process) or `libvirt`.
    pub source: String,
    /// `running`, `paused`, … (libvirt) or `running` for a live process.
    pub state: String,
    /// Virtual CPUs (`-smp`), 0 when unknown.
    #[serde(default)]
    pub vcpus: u32,
    /// Series: `cpu.pct` (% of one core), `mem.used`, `mem.max` (bytes),
    /// `disk.read_bps`, `disk.write_bps`.
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, f64>,
}

/// Series names. Host: `cpu.<field>` (all cores, % of the machine), `cpu.<n>.busy` (% of
/// core n), `load.1|5|15`, `mem.*`/`swap.*` (bytes), `fs.<mountpoint>.used|size|used_pct`,
/// `disk.<device>.<field>`, `net.<interface>.<field>`, `host.uptime`, `host.procs`.
/// Containers: `cpu.pct` (% of one core), `mem.*`, `net.*_bps`, `blk.*_bps`.
pub mod metric_names {
    pub const CPU_USER: &str = "cpu.user";
    pub const CPU_SYSTEM: &str = "cpu.system";
    pub const CPU_IOWAIT: &str = "cpu.iowait";
    pub const CPU_STEAL: &str = "cpu.steal";
    /// Everything but idle and iowait.
    pub const CPU_BUSY: &str = "cpu.busy";
    /// Per core: `cpu.<n>.busy`.
    pub const CPU_CORE_BUSY: &str = "busy";
    pub const LOAD_1: &str = "load.1";
    pub const LOAD_5: &str = "load.5";
    pub const LOAD_15: &str = "load.15";
    pub const MEM_TOTAL: &str = "mem.total";
    /// Total minus available (what applications hold).
    pub const MEM_USED: &str = "mem.used";
    pub const MEM_AVAILABLE: &str = "mem.available";
    pub const MEM_CACHED: &str = "mem.cached";
    pub const MEM_BUFFERS: &str = "mem.buffers";
    pub const SWAP_TOTAL: &str = "swap.total";
    pub const SWAP_USED: &str = "swap.used";
    pub const HOST_UPTIME: &str = "host.uptime";
    /// Scheduling entities (threads) on the host, from `/proc/loadavg`.
    pub const HOST_PROCS: &str = "host.procs";
    /// `fs.<mountpoint>.<field>`.
    pub const FS_USED: &str = "used";
    pub const FS_SIZE: &str = "size";
    pub const FS_USED_PCT: &str = "used_pct";
    /// `disk.<device>.<field>`, per second.
    pub const DISK_READ_BPS: &str = "read_bps";
    pub const DISK_WRITE_BPS: &str = "write_bps";
    pub const DISK_READ_IOPS: &str = "read_iops";
    pub const DISK_WRITE_IOPS: &str = "write_iops";
    /// `net.<interface>.<field>`, per second (also container `net.<field>`).
    pub const NET_RX_BPS: &str = "rx_bps";
    pub const NET_TX_BPS: &str = "tx_bps";
    pub const NET_RX_PPS: &str = "rx_pps";
    pub const NET_TX_PPS: &str = "tx_pps";
    pub const NET_RX_ERRS: &str = "rx_errs";
    pub const NET_TX_ERRS: &str = "tx_errs";
    /// Container CPU, % of one core.
    pub const CT_CPU_PCT: &str = "cpu.pct";
    /// Container memory: usage minus inactive file cache, and the limit (0: none).
    pub const CT_MEM_USED: &str = "mem.used";
    pub const CT_MEM_LIMIT: &str = "mem.limit";
    pub const CT_NET_RX_BPS: &str = "net.rx_bps";
    pub const CT_NET_TX_BPS: &str = "net.tx_bps";
    pub const CT_BLK_READ_BPS: &str = "blk.read_bps";
    pub const CT_BLK_WRITE_BPS: &str = "blk.write_bps";
    /// Prefix of a container's custom metrics: `custom.<flattened JSON path>`.
    pub const CUSTOM_PREFIX: &str = "custom.";
    /// VM figures.
    pub const VM_CPU_PCT: &str = "cpu.pct";
    pub const VM_MEM_USED: &str = "mem.used";
    pub const VM_MEM_MAX: &str = "mem.max";
    pub const VM_DISK_READ_BPS: &str = "disk.read_bps";
    pub const VM_DISK_WRITE_BPS: &str = "disk.write_bps";
}

/// Limits on one sample, enforced by the core (a beat over them is refused) and kept by
/// the agent (so a beat is never refused for its metrics).
pub mod metric_limits {
    pub const MAX_SAMPLES: usize = 300;
    pub const MAX_HOST_SERIES: usize = 1000;
    pub const MAX_CONTAINERS: usize = 500;
    pub const MAX_CONTAINER_SERIES: usize = 200;
    /// Custom series per container; the rest are counted in `CustomMetricsStatus::dropped`.
    pub const MAX_CUSTOM_SERIES: usize = 100;
    pub const MAX_VMS: usize = 200;
    pub const MAX_VM_SERIES: usize = 50;
}

/// What the core answers to a beat: what the agent must do now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    /// What the node should converge to, one typed section per module.
    #[serde(default)]
    pub desired: DesiredState,
    /// Run-once commands (`noop`, `ping`). A task stays in every reply until its result
    /// arrives, so the agent must ignore IDs it already ran (delivery is at-least-once).
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// Server time (RFC 3339), for clock-skew diagnostics.
    pub server_time: String,
    /// How far the core holds this node's metrics. Absent from cores that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsAck>,
}

/// Desired state, in typed sections; each module adds one. A versioned section is sent
/// only while the node's applied version (`HeartbeatRequest::applied`) differs from it and
/// that version has not already failed there; absent means "keep what you have". The
/// agent checks every value with [`validate`] before acting and refuses the whole
/// section on any invalid one, reporting the error in its next beat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DesiredState {
    /// The node's NGINX: every service it must serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<Versioned<NginxDesired>>,
    /// Log sources someone is watching: the agent follows them and posts new lines to
    /// [`LOGS_PATH`] as they come. Repeated in every reply while watched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogRequest>,
}

/// A section with its version: a hash of the state, so the same state twice is the same
/// version and causes no work; never 0 (0 means "none").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Versioned<T> {
    pub version: u64,
    pub state: T,
}

/// How far the core has written a node's metrics. An accepted beat only means the core
/// *received* its samples; it writes them up to a flush interval later. An agent keeps
/// each sent sample until `committed_beat` reaches the beat that carried it, and sends
/// again the samples it sent to a previous run of the core (`boot` changed) that were not
/// yet committed. The core ignores samples it already holds, so nothing counts twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MetricsAck {
    /// Identifies this run of the core (changes on every start).
    pub boot: u64,
    /// The newest `MetricsReport::beat` of this node whose samples are all on disk.
    pub committed_beat: u64,
    /// Series the core stores for this node. 0 from cores that predate it.
    #[serde(default)]
    pub series: u64,
    /// Series the core stores per node at most (`max_series_per_node`); new series beyond
    /// it are dropped. 0 from cores that predate it.
    #[serde(default)]
    pub series_budget: u64,
    /// Distinct new series dropped for the budget in this node's latest write: how many
    /// of the series it sends are not stored.
    #[serde(default)]
    pub series_dropped: u64,
}

/// One unit of work for an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: TaskKind,
    #[serde(default)]
    pub payload: serde_json::Value,
}

/// Task types: run-once commands only. Desired state never travels as a task (it is a
/// typed section of [`DesiredState`]). Unknown types (from a newer core, or the removed
/// `update_nginx` and `get_logs`) deserialize as `Unknown` so the agent reports
/// "unsupported" instead of failing the whole beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Does nothing; proves the task path end to end.
    Noop,
    /// Answers with the agent's clock and version.
    Ping,
    #[serde(other)]
    Unknown,
}

impl TaskKind {
    /// The types a user may queue through the API: harmless ones only.
    pub const USER: [TaskKind; 2] = [TaskKind::Noop, TaskKind::Ping];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Noop => "noop",
            TaskKind::Ping => "ping",
            TaskKind::Unknown => "unknown",
        }
    }
}

/// Outcome of one task, reported in a later beat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskResult {
    pub task_id: String,
    pub ok: bool,
    /// Task-specific output when `ok`.
    #[serde(default)]
    pub output: serde_json::Value,
    /// Human-readable reason when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything one node's NGINX must serve. Computed by the core, checked with
/// [`validate::nginx_desired`] and rendered by the agent. Travels as a
/// [`Versioned`] section whose version is a hash of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NginxDesired {
    /// Virtual hosts, one config file each (named by service ID), sorted by name.
    pub services: Vec<ServiceSpec>,
    /// Addresses whose `X-Forwarded-For` this NGINX believes (the edges in front of it).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// TLS passthrough by SNI (edge only): domains → other nodes' HTTPS listeners, sent
    /// with PROXY protocol.
    #[serde(default)]
    pub tls_routes: Vec<TlsRoute>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceSpec {
    /// The service's ID ([`validate::resource_id`]): the agent names its file after it.
    pub id: String,
    /// Validated `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`: safe as an upstream name.
    pub name: String,
    /// Validated lower-case ASCII (punycode) names, `*.` wildcards allowed.
    pub domains: Vec<String>,
    pub balance: Balance,
    /// Longest-prefix routes; always contains `/`.
    pub routes: Vec<RouteSpec>,
    pub connect_timeout_secs: u32,
    pub read_timeout_secs: u32,
    pub send_timeout_secs: u32,
    /// 0 means unlimited.
    pub client_max_body_size_mb: u32,
    #[serde(default)]
    pub request_headers: Vec<HeaderSpec>,
    #[serde(default)]
    pub response_headers: Vec<HeaderSpec>,
    pub websocket: bool,
    pub max_fails: u32,
    pub fail_timeout_secs: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    RoundRobin,
    LeastConn,
    IpHash,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RouteSpec {
    /// Validated location prefix, starting with `/`.
    pub path: String,
    pub targets: Vec<TargetSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TargetSpec {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    pub weight: u32,
    pub backup: bool,
}

/// Where a target is: resolved by the agent (containers) or given (addresses, other nodes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Endpoint {
    /// Containers on this node matching a name or a `key=value` label, on a container port.
    Container {
        #[serde(default)]
        container: Option<String>,
        #[serde(default)]
        label: Option<String>,
        port: u16,
    },
    /// A fixed `host:port`.
    Address { host: String, port: u16 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeaderSpec {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TlsRoute {
    pub domains: Vec<String>,
    /// `host:port` of the nodes' HTTPS listeners.
    pub backends: Vec<String>,
}

/// Where agents post log lines (agent-authenticated), right away rather than in a beat.
pub const LOGS_PATH: &str = "/api/agent/logs";

/// Log source names that are not containers: the node's NGINX logs.
pub const NGINX_ACCESS_LOG: &str = "nginx:access";
pub const NGINX_ERROR_LOG: &str = "nginx:error";

/// A watched log source, in [`DesiredState::logs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogRequest {
    /// Container name, or [`NGINX_ACCESS_LOG`] / [`NGINX_ERROR_LOG`].
    pub source: String,
    /// Lines of history to start with when the agent is not following it yet.
    pub tail: u32,
}

/// Lines from one source, in order, since the previous batch for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogBatch {
    pub source: String,
    /// True when this batch starts a new follow (history from `tail`), so the core can
    /// tell a restart of the stream from a continuation.
    #[serde(default)]
    pub restart: bool,
    pub lines: Vec<LogLine>,
    /// Lines dropped by the agent before this batch (rate limit), shown as a marker.
    #[serde(default)]
    pub skipped: u64,
    /// Set when the source cannot be read (e.g. no such container).
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// RFC 3339 with nanoseconds, from Docker (or the agent's clock for files).
    pub ts: String,
    /// `stdout`, `stderr`, or `file`.
    pub stream: String,
    pub text: String,
}

/// Body of a post to [`LOGS_PATH`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogUpload {
    pub batches: Vec<LogBatch>,
}

/// Self-registration with a join token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub join_token: String,
    pub name: String,
    pub hostname: String,
}

/// Credentials handed to a freshly registered agent; the key is never shown again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub id: String,
    pub key: String,
}

/// The error body every core endpoint uses.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `invalid_request`, `unauthorized`.
    pub code: String,
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_removed_task_kinds_do_not_fail_the_reply() {
        let json = r#"{"tasks":[{"id":"a","type":"from_the_future"},{"id":"b","type":"update_nginx","payload":{}}],"server_time":"x"}"#;
        let reply: HeartbeatResponse = serde_json::from_str(json).expect("parses");
        assert_eq!(reply.tasks[0].kind, TaskKind::Unknown);
        assert_eq!(reply.tasks[1].kind, TaskKind::Unknown);
        assert_eq!(reply.desired, DesiredState::default());
    }

    #[test]
    fn warnings_read_plain_strings_and_tagged_objects() {
        let json = r#"{"address":"10.0.0.1","http_port":80,"https_port":443,
            "warnings":["old style",{"service_id":"s1","message":"no container"}]}"#;
        let report: NginxReport = serde_json::from_str(json).expect("parses");
        assert_eq!(
            report.warnings,
            vec![
                Warning::node("old style"),
                Warning::service("s1", "no container")
            ]
        );
        let back = serde_json::to_value(&report.warnings).expect("json");
        assert_eq!(
            back,
            serde_json::json!([{"message":"old style"},{"service_id":"s1","message":"no container"}])
        );
    }

    #[test]
    fn beat_without_optional_fields_parses() {
        let json = r#"{"protocol":1,"agent_version":"0.1.0","hostname":"h","os":"l","uptime_secs":1,"interval_ms":1000}"#;
        let beat: HeartbeatRequest = serde_json::from_str(json).expect("parses");
        assert_eq!(beat.applied, AppliedVersions::default());
        assert!(beat.task_results.is_empty());
    }
}

/// The agent's long-poll beside its beat: `GET` [`WATCH_PATH`]`?since=N&boot=B&timeout=S`.
/// The core holds it until something for this node changes (or `timeout`, capped by the
/// core's `watch_timeout_secs`), then answers with the node's change counter. The answer
/// never carries state: on a change the agent beats at once and the beat reply carries it.
pub const WATCH_PATH: &str = "/api/agent/watch";

/// Answer to a watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WatchResponse {
    /// Random per core process: a different value than the one the agent sent means the
    /// core restarted and counters started over.
    pub boot: String,
    /// The node's change counter; pass it back as `since`.
    pub counter: u64,
    /// True when the counter (or boot) differs from what the agent sent: beat now.
    pub changed: bool,
}
