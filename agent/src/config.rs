//! The agent's one typed configuration: defaults → TOML file → `.env` → environment.
//!
//! Environment names are the ones users paste from the UI (`CORE_URL`, `AGENT_ID`,
//! `AGENT_KEY`, `JOIN_TOKEN`); the TOML file uses the same names in lower case.
//! `packaging/agent.toml` documents every key with its default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/capstan/agent.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Base URL of the core, e.g. `https://capstan.example.com`. Required.
    pub core_url: String,
    /// This node's ID, from the UI. Empty: use the saved credentials or `join_token`.
    pub agent_id: String,
    /// This node's key, from the UI.
    pub agent_key: String,
    /// Join token to self-register when there are no credentials yet.
    pub join_token: String,
    /// Node name used when registering with a join token. Default: the host name.
    pub name: String,
    /// Where the agent keeps credentials obtained by registering; locked while the agent
    /// runs (`state_lock`), one agent per dir.
    /// Default `/var/lib/capstan-agent` when installed, `./agent-state` otherwise.
    pub state_dir: PathBuf,
    /// Beat period, milliseconds. Default 1000.
    pub heartbeat_interval_ms: u64,
    /// Ceiling of the retry backoff while the core is unreachable, milliseconds. Default
    /// 30000. Reached only after the first minute of an outage, during which retries
    /// come every 1.5 s or less (`backoff::SHORT_CEILING`).
    pub backoff_max_ms: u64,
    /// Wait after the core rejects our key before asking again, seconds. Default 60.
    pub auth_retry_secs: u64,
    /// Per-request timeout towards the core, milliseconds. Default 10000.
    pub request_timeout_ms: u64,
    /// How long the long-poll beside the beat (`/api/agent/watch`) asks the core to hold,
    /// seconds (the core caps it). 0 turns the watch off: changes then wait for the next
    /// beat. Default 25 (under common proxy read timeouts).
    pub watch_timeout_secs: u64,
    /// Extra PEM CA bundle trusted for the core's HTTPS (self-signed cores). Default none.
    pub ca_file: Option<PathBuf>,
    /// Root of the host's filesystem (`/host` in the privileged container). Default `/`.
    pub host_root: PathBuf,
    /// Log filter, `RUST_LOG` syntax. Default `info`.
    pub log: String,
    /// Manage this host's NGINX (reverse proxy). Default true; off when no NGINX binary.
    pub nginx: bool,
    /// The NGINX binary. Default `nginx` (from PATH).
    pub nginx_binary: PathBuf,
    /// Where generated configs, pid and logs live. Default `<state_dir>/nginx`.
    pub nginx_dir: Option<PathBuf>,
    /// Address NGINX listens on. Default `0.0.0.0`.
    pub nginx_listen: String,
    /// HTTP port. Default 80.
    pub nginx_http_port: u16,
    /// HTTPS port (TLS passthrough on edges). Default 443.
    pub nginx_https_port: u16,
    /// Address the edge reaches this NGINX on. Default: the host's primary address.
    pub advertise_address: String,
    /// NGINX's stream module, loaded for TLS passthrough when the file exists.
    /// Default `/usr/lib/nginx/modules/ngx_stream_module.so` (Debian's libnginx-mod-stream).
    pub nginx_stream_module: PathBuf,
    /// Docker's socket. Default `/var/run/docker.sock`.
    pub docker_socket: String,
    /// Docker deployment: name of the NGINX router container to drive (validate with
    /// `docker exec`, reload with SIGHUP) instead of a local NGINX process. It must mount
    /// `nginx_dir` at the same path. Default: none (local process).
    pub nginx_container: String,
}

impl Default for AgentConfig {
    fn default() -> Self {
        let installed = Path::new(DEFAULT_CONFIG_PATH).exists();
        AgentConfig {
            core_url: String::new(),
            agent_id: String::new(),
            agent_key: String::new(),
            join_token: String::new(),
            name: String::new(),
            state_dir: PathBuf::from(if installed {
                "/var/lib/capstan-agent"
            } else {
                "./agent-state"
            }),
            heartbeat_interval_ms: 1000,
            backoff_max_ms: 30_000,
            auth_retry_secs: 60,
            request_timeout_ms: 10_000,
            watch_timeout_secs: 25,
            ca_file: None,
            host_root: PathBuf::from("/"),
            log: "info".into(),
            nginx: true,
            nginx_binary: PathBuf::from("nginx"),
            nginx_dir: None,
            nginx_listen: "0.0.0.0".into(),
            nginx_http_port: 80,
            nginx_https_port: 443,
            advertise_address: String::new(),
            nginx_stream_module: PathBuf::from("/usr/lib/nginx/modules/ngx_stream_module.so"),
            docker_socket: "/var/run/docker.sock".into(),
            nginx_container: String::new(),
        }
    }
}

/// Environment variable → config key. `CAPSTAN_AGENT_<KEY>` works for every key as well.
const ENV_NAMES: &[(&str, &str)] = &[
    ("CORE_URL", "core_url"),
    ("AGENT_ID", "agent_id"),
    ("AGENT_KEY", "agent_key"),
    ("JOIN_TOKEN", "join_token"),
    ("AGENT_NAME", "name"),
    ("HOST_ROOT", "host_root"),
    ("HEARTBEAT_INTERVAL_MS", "heartbeat_interval_ms"),
    ("ADVERTISE_ADDRESS", "advertise_address"),
];

const KEYS: &[&str] = &[
    "core_url",
    "agent_id",
    "agent_key",
    "join_token",
    "name",
    "state_dir",
    "heartbeat_interval_ms",
    "backoff_max_ms",
    "auth_retry_secs",
    "request_timeout_ms",
    "watch_timeout_secs",
    "ca_file",
    "host_root",
    "log",
    "nginx",
    "nginx_binary",
    "nginx_dir",
    "nginx_listen",
    "nginx_http_port",
    "nginx_https_port",
    "advertise_address",
    "nginx_stream_module",
    "docker_socket",
    "nginx_container",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config: {0}")]
    Parse(String),
    #[error("config `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl AgentConfig {
    pub fn load(path: Option<&Path>) -> Result<AgentConfig, ConfigError> {
        let mut env: Vec<(String, String)> = Vec::new();
        // `.env` first so real environment variables override it.
        if let Ok(text) = std::fs::read_to_string(".env") {
            env.extend(parse_dotenv(&text));
        }
        env.extend(std::env::vars());
        Self::load_from(path, &env)
    }

    pub fn load_from(
        path: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<AgentConfig, ConfigError> {
        let default_path = Path::new(DEFAULT_CONFIG_PATH);
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None if default_path.exists() => Some(default_path.to_path_buf()),
            None => None,
        };
        let mut table = match &file {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse(format!("{}: {e}", p.display())))?,
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let key = ENV_NAMES
                .iter()
                .find(|(env_name, _)| env_name == name)
                .map(|(_, key)| *key)
                .or_else(|| {
                    let lower = name.strip_prefix("CAPSTAN_AGENT_")?.to_ascii_lowercase();
                    KEYS.iter().find(|k| **k == lower).copied()
                });
            if let Some(key) = key {
                table.insert(key.to_string(), typed(key, value));
            }
        }
        let config: AgentConfig = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.core_url.is_empty() {
            return Err(ConfigError::Invalid {
                key: "core_url",
                message: "required (env CORE_URL), e.g. http://core.example.com:8080".into(),
            });
        }
        if !(self.core_url.starts_with("http://") || self.core_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                key: "core_url",
                message: "must start with http:// or https://".into(),
            });
        }
        if self.agent_id.is_empty() != self.agent_key.is_empty() {
            return Err(ConfigError::Invalid {
                key: "agent_key",
                message: "AGENT_ID and AGENT_KEY go together: set both or neither".into(),
            });
        }
        if !(100..=600_000).contains(&self.heartbeat_interval_ms) {
            return Err(ConfigError::Invalid {
                key: "heartbeat_interval_ms",
                message: "must be between 100 and 600000".into(),
            });
        }
        if self.backoff_max_ms < self.heartbeat_interval_ms {
            return Err(ConfigError::Invalid {
                key: "backoff_max_ms",
                message: "must not be below heartbeat_interval_ms".into(),
            });
        }
        if self.nginx_listen.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::Invalid {
                key: "nginx_listen",
                message: "must be an IP address such as 0.0.0.0 or 127.0.0.1".into(),
            });
        }
        if self.nginx_http_port == 0 || self.nginx_https_port == 0 {
            return Err(ConfigError::Invalid {
                key: "nginx_http_port",
                message: "ports must be 1-65535".into(),
            });
        }
        if self.watch_timeout_secs > 300 {
            return Err(ConfigError::Invalid {
                key: "watch_timeout_secs",
                message: "must be between 0 (off) and 300".into(),
            });
        }
        if self.auth_retry_secs == 0 || self.request_timeout_ms < 100 {
            return Err(ConfigError::Invalid {
                key: "auth_retry_secs",
                message: "auth_retry_secs must be ≥ 1 and request_timeout_ms ≥ 100".into(),
            });
        }
        Ok(())
    }

    pub fn nginx_dir(&self) -> PathBuf {
        self.nginx_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("nginx"))
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }
}

/// Numbers for numeric keys, strings otherwise (IDs and keys stay strings even if digits).
fn typed(key: &str, value: &str) -> toml::Value {
    let numeric = matches!(
        key,
        "heartbeat_interval_ms"
            | "backoff_max_ms"
            | "auth_retry_secs"
            | "request_timeout_ms"
            | "watch_timeout_secs"
            | "nginx_http_port"
            | "nginx_https_port"
    );
    match value.trim() {
        "true" if key == "nginx" => return toml::Value::Boolean(true),
        "false" if key == "nginx" => return toml::Value::Boolean(false),
        _ => {}
    }
    match value.trim().parse::<i64>() {
        Ok(n) if numeric => toml::Value::Integer(n),
        _ => toml::Value::String(value.to_string()),
    }
}

/// `KEY=VALUE` lines; `#` comments, blank lines and optional quotes around the value.
pub fn parse_dotenv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_names_from_the_ui_work() {
        let c = AgentConfig::load_from(
            None,
            &env(&[
                ("CORE_URL", "http://127.0.0.1:8080"),
                ("AGENT_ID", "123"),
                ("AGENT_KEY", "abc"),
                ("CAPSTAN_AGENT_HEARTBEAT_INTERVAL_MS", "500"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.agent_id, "123");
        assert_eq!(c.heartbeat_interval_ms, 500);
    }

    #[test]
    fn missing_core_url_and_half_credentials_are_named() {
        let e = AgentConfig::load_from(None, &[]).expect_err("core_url required");
        assert!(e.to_string().contains("core_url"), "{e}");
        let e = AgentConfig::load_from(None, &env(&[("CORE_URL", "http://x"), ("AGENT_ID", "1")]))
            .expect_err("half credentials");
        assert!(e.to_string().contains("agent_key"), "{e}");
    }

    #[test]
    fn the_watch_is_configurable_from_the_environment() {
        let base = [("CORE_URL", "http://127.0.0.1:8080")];
        let c = AgentConfig::load_from(None, &env(&base)).expect("valid");
        assert_eq!(c.watch_timeout_secs, 25);
        for (value, want) in [("0", 0), ("10", 10)] {
            let c = AgentConfig::load_from(
                None,
                &env(&[base[0], ("CAPSTAN_AGENT_WATCH_TIMEOUT_SECS", value)]),
            )
            .expect("valid");
            assert_eq!(c.watch_timeout_secs, want);
        }
        let e = AgentConfig::load_from(
            None,
            &env(&[base[0], ("CAPSTAN_AGENT_WATCH_TIMEOUT_SECS", "301")]),
        )
        .expect_err("too long");
        assert!(e.to_string().contains("watch_timeout_secs"), "{e}");
    }

    #[test]
    fn dotenv_lines() {
        let parsed = parse_dotenv("# c\nCORE_URL=\"http://a\"\n\nexport AGENT_ID='x'\nBAD\n");
        assert_eq!(
            parsed,
            vec![
                ("CORE_URL".to_string(), "http://a".to_string()),
                ("AGENT_ID".to_string(), "x".to_string())
            ]
        );
    }
}
