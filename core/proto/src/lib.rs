//! The only types that cross the wire between `capstan-core` and `capstan-agent`.
//!
//! Both binaries depend on this crate, so a change here is a protocol change: bump
//! [`PROTOCOL_VERSION`] when an old agent could misread a new core (or the reverse).
//! Fields added later must be `#[serde(default)]` so mixed versions keep beating.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Protocol version sent by the agent in every beat (`X-Capstan-Protocol` header and body).
pub const PROTOCOL_VERSION: u32 = 1;

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
    /// The desired-config version the agent has applied last (0: none yet).
    #[serde(default)]
    pub applied_config_version: u64,
    /// Results of tasks finished since the last acknowledged beat.
    #[serde(default)]
    pub task_results: Vec<TaskResult>,
    /// The node's NGINX: where it listens and how the last apply went. Absent when the
    /// agent does not manage NGINX.
    #[serde(default)]
    pub nginx: Option<NginxReport>,
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
    /// Non-fatal problems of the running config (e.g. a selector matching no container).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Reloads done since the agent started (coalescing is visible from outside).
    #[serde(default)]
    pub reloads: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApplyError {
    pub version: u64,
    pub message: String,
}

/// What the core answers to a beat: what the agent must do now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    /// Config version the agent should converge to.
    pub desired_config_version: u64,
    /// Tasks to run. A task stays in every reply until its result arrives, so the agent
    /// must ignore IDs it already ran (delivery is at-least-once).
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// Server time (RFC 3339), for clock-skew diagnostics.
    pub server_time: String,
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

/// Task types. Unknown types from a newer core deserialize as `Unknown` so an older agent
/// can report "unsupported" instead of failing the whole beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Does nothing; proves the task path end to end.
    Noop,
    /// Answers with the agent's clock and version.
    Ping,
    /// Payload: [`NginxDesired`]. Converge the node's NGINX to it.
    UpdateNginx,
    #[serde(other)]
    Unknown,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Noop => "noop",
            TaskKind::Ping => "ping",
            TaskKind::UpdateNginx => "update_nginx",
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

/// Everything one node's NGINX must serve. Computed by the core, rendered by the agent.
/// The version is a hash of the rest, so the same state twice is the same version and
/// causes no reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NginxDesired {
    pub version: u64,
    /// Virtual hosts, one config file each, sorted by name.
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
    /// Validated `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`: safe as a file and upstream name.
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
    fn unknown_task_kind_does_not_fail_the_reply() {
        let json = r#"{"desired_config_version":3,"tasks":[{"id":"a","type":"from_the_future"}],"server_time":"x"}"#;
        let reply: HeartbeatResponse = serde_json::from_str(json).expect("parses");
        assert_eq!(reply.tasks[0].kind, TaskKind::Unknown);
    }

    #[test]
    fn beat_without_optional_fields_parses() {
        let json = r#"{"protocol":1,"agent_version":"0.1.0","hostname":"h","os":"l","uptime_secs":1,"interval_ms":1000}"#;
        let beat: HeartbeatRequest = serde_json::from_str(json).expect("parses");
        assert_eq!(beat.applied_config_version, 0);
        assert!(beat.task_results.is_empty());
    }
}
