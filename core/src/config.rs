//! The core's one typed configuration: defaults → TOML file → `CAPSTAN_*` environment.
//!
//! Every key has a documented default (see `packaging/core.toml`, which ships every key
//! commented out). Unknown keys in the file are an error rather than a silent typo, and
//! `validate()` runs at start so a bad value stops the daemon with the key named.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Path read when `--config` is not given and the file exists (installed packages).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/capstan/core.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server (UI, API, agent endpoints) binds. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Directory for the store and generated files. Default `./data`.
    pub data_dir: PathBuf,
    /// The redb file. Default `<data_dir>/capstan.redb`.
    pub database: Option<PathBuf>,
    /// URL agents and browsers use to reach the core, shown in "add node" commands.
    /// Default: none (the UI uses the address it was opened at).
    pub public_url: Option<String>,
    /// Domain under which edge nodes route to this core's UI and API. Default: none.
    pub ui_domain: Option<String>,
    /// A node is offline once this many of its beats are missing. Default 3.
    pub offline_after_missed_beats: u32,
    /// Lifetime of an access token (JWT), seconds. Default 900.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token, seconds. Default 30 days.
    pub refresh_token_ttl_secs: u64,
    /// Login attempts allowed per source IP in a burst. Default 10.
    pub login_burst: u32,
    /// Sustained login attempts per source IP per minute. Default 10.
    pub login_per_minute: u32,
    /// Reverse proxies whose `X-Forwarded-For` is believed. Default none.
    pub trusted_proxies: Vec<IpAddr>,
    /// How often node presence (last seen, version) is written to the store, seconds.
    /// Default 5: a kill -9 loses at most this much of "last seen", nothing else.
    pub presence_flush_secs: u64,
    /// How often buffered metrics are written to the store, seconds. Default 1. Agents
    /// keep samples until written, so a kill -9 loses none; longer means fewer, larger
    /// write transactions.
    pub metrics_flush_secs: u64,
    /// Metric series stored per node at most. Default 5000 (a busy host: ~60 host series
    /// plus ~100 containers × ~20 series, with room for custom metrics). New series beyond
    /// it are dropped (the agent is told, the node page shows it); expired or deleted
    /// series free their place. Each series takes ≈ 370 KB of store pages, so the pages
    /// in use are bounded by nodes × this × 370 KB and the file by twice that (README,
    /// "Disk use").
    pub max_series_per_node: u32,
    /// redb's page cache (pages read and pages a write transaction dirties), MB. Default
    /// 64: the write path reads and rewrites about 1/60 of the blocks each second, so a
    /// larger cache saves little I/O, while redb's own default (1 GiB) would fill and stay
    /// resident. Part of the RSS formula in the README ("Memory").
    pub store_cache_mb: u32,
    /// glibc malloc arenas at most (`M_ARENA_MAX`, set at start; the environment's
    /// `MALLOC_ARENA_MAX` wins when set). Default 16 (glibc's own on 2 cores, 8 per core;
    /// a cap on larger machines): fewer made threads queue on the arena locks, and 2,000
    /// nodes no longer held 1 Hz (README, "Memory"). Freed pages go back every 10 s.
    pub malloc_arena_max: u32,
    /// Log filter, `RUST_LOG` syntax. Default `info`. `RUST_LOG` wins when set.
    pub log: String,
    /// Seconds a client has to send a complete request head, counted from the moment the
    /// connection is ready for one (on a keep-alive connection, from the end of the
    /// previous response: so this also closes idle keep-alive connections). Default 10.
    pub http_header_timeout_secs: u64,
    /// Seconds a connection may stay open with no byte moving either way, whatever its
    /// request's state (a stalled upload, a client that stops reading). Default 60.
    pub http_idle_timeout_secs: u64,
    /// Open client connections at most (lowered at start to fit the open-files limit).
    /// Over it, the quietest connection with no request in progress (or one stalled for a
    /// header timeout) is closed to make room. Default 16384: each agent holds two (its beat
    /// and its watch), so about 8,000 agents plus the UI; the packaged unit allows 65,536
    /// open files.
    pub http_max_connections: usize,
    /// Longest an agent's watch (`GET /api/agent/watch`) or a UI log long-poll is held
    /// open with nothing to say, seconds. Default 25: under the common 30 s (and 60 s)
    /// proxy read timeouts, and under `http_idle_timeout_secs`.
    pub watch_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database: None,
            public_url: None,
            ui_domain: None,
            offline_after_missed_beats: 3,
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            login_burst: 10,
            login_per_minute: 10,
            trusted_proxies: Vec::new(),
            presence_flush_secs: 5,
            metrics_flush_secs: 1,
            max_series_per_node: 5000,
            store_cache_mb: 64,
            malloc_arena_max: 16,
            log: "info".to_string(),
            http_header_timeout_secs: 10,
            http_idle_timeout_secs: 60,
            http_max_connections: 16384,
            watch_timeout_secs: 25,
        }
    }
}

/// Keys that `CAPSTAN_<KEY>` environment variables may set.
const ENV_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database",
    "public_url",
    "ui_domain",
    "offline_after_missed_beats",
    "access_token_ttl_secs",
    "refresh_token_ttl_secs",
    "login_burst",
    "login_per_minute",
    "trusted_proxies",
    "presence_flush_secs",
    "metrics_flush_secs",
    "max_series_per_node",
    "store_cache_mb",
    "malloc_arena_max",
    "log",
    "http_header_timeout_secs",
    "http_idle_timeout_secs",
    "http_max_connections",
    "watch_timeout_secs",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config: {0}")]
    Parse(String),
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Loads defaults, then `path` (or the default path when it exists), then the environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(path, &env)
    }

    /// As [`Config::load`] with an explicit environment (testable without touching the process env).
    pub fn load_from(path: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let default_path = Path::new(DEFAULT_CONFIG_PATH);
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None if default_path.exists() => Some(default_path.to_path_buf()),
            None => None,
        };
        let mut table = match &file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse(format!("{}: {e}", p.display())))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix("CAPSTAN_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if let Some(known) = ENV_KEYS.iter().find(|k| **k == key) {
                table.insert((*known).to_string(), env_value(value));
            }
        }
        let config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.offline_after_missed_beats == 0 || self.offline_after_missed_beats > 1000 {
            return Err(ConfigError::Invalid {
                key: "offline_after_missed_beats",
                message: "must be between 1 and 1000".into(),
            });
        }
        if !(10..=86_400).contains(&self.access_token_ttl_secs) {
            return Err(ConfigError::Invalid {
                key: "access_token_ttl_secs",
                message: "must be between 10 and 86400".into(),
            });
        }
        if self.refresh_token_ttl_secs < self.access_token_ttl_secs {
            return Err(ConfigError::Invalid {
                key: "refresh_token_ttl_secs",
                message: "must not be shorter than access_token_ttl_secs".into(),
            });
        }
        if self.login_burst == 0 || self.login_per_minute == 0 {
            return Err(ConfigError::Invalid {
                key: "login_per_minute",
                message: "login_burst and login_per_minute must be at least 1".into(),
            });
        }
        if !(1..=3600).contains(&self.presence_flush_secs) {
            return Err(ConfigError::Invalid {
                key: "presence_flush_secs",
                message: "must be between 1 and 3600".into(),
            });
        }
        if !(1..=60).contains(&self.metrics_flush_secs) {
            return Err(ConfigError::Invalid {
                key: "metrics_flush_secs",
                message: "must be between 1 and 60".into(),
            });
        }
        if !(1..=300).contains(&self.http_header_timeout_secs) {
            return Err(ConfigError::Invalid {
                key: "http_header_timeout_secs",
                message: "must be between 1 and 300".into(),
            });
        }
        if !(1..=3600).contains(&self.http_idle_timeout_secs) {
            return Err(ConfigError::Invalid {
                key: "http_idle_timeout_secs",
                message: "must be between 1 and 3600".into(),
            });
        }
        if !(16..=1_000_000).contains(&self.http_max_connections) {
            return Err(ConfigError::Invalid {
                key: "http_max_connections",
                message: "must be between 16 and 1000000".into(),
            });
        }
        if !(1..=300).contains(&self.watch_timeout_secs)
            || self.watch_timeout_secs >= self.http_idle_timeout_secs
        {
            return Err(ConfigError::Invalid {
                key: "watch_timeout_secs",
                message: "must be between 1 and 300 and shorter than http_idle_timeout_secs".into(),
            });
        }
        if !(1..=1_000_000).contains(&self.max_series_per_node) {
            return Err(ConfigError::Invalid {
                key: "max_series_per_node",
                message: "must be between 1 and 1000000".into(),
            });
        }
        if !(4..=65_536).contains(&self.store_cache_mb) {
            return Err(ConfigError::Invalid {
                key: "store_cache_mb",
                message: "must be between 4 and 65536".into(),
            });
        }
        if !(1..=64).contains(&self.malloc_arena_max) {
            return Err(ConfigError::Invalid {
                key: "malloc_arena_max",
                message: "must be between 1 and 64".into(),
            });
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "public_url",
                message: "must start with http:// or https://".into(),
            });
        }
        if let Some(d) = &self.ui_domain
            && crate::validate::domain("ui_domain", d).ok().as_deref() != Some(d.as_str())
        {
            return Err(ConfigError::Invalid {
                key: "ui_domain",
                message: "must be a lower-case ASCII domain name like capstan.example.com".into(),
            });
        }
        Ok(())
    }

    /// The redb file path.
    pub fn database_path(&self) -> PathBuf {
        self.database
            .clone()
            .unwrap_or_else(|| self.data_dir.join("capstan.redb"))
    }
}

/// Environment values are typed the way TOML would read them (`3` is a number, `true` a
/// boolean, `["a"]` a list); anything else is a plain string, so paths need no quoting.
fn env_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
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
    fn defaults_without_file_or_env() {
        let c = Config::load_from(None, &[]).expect("defaults are valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_path(), PathBuf::from("./data/capstan.redb"));
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("core.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\noffline_after_missed_beats = 5\n",
        )
        .expect("write");
        let c = Config::load_from(
            Some(&path),
            &env(&[
                ("CAPSTAN_LISTEN", "127.0.0.1:7000"),
                ("CAPSTAN_DATA_DIR", "/tmp/x y"),
                ("CAPSTAN_ADMIN_PASSWORD", "not-a-config-key"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(c.offline_after_missed_beats, 5);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x y"));
    }

    #[test]
    fn unknown_key_and_bad_value_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("core.toml");
        std::fs::write(&path, "lisen = \"x\"\n").expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("typo rejected");
        assert!(err.to_string().contains("lisen"), "{err}");
        let err = Config::load_from(None, &env(&[("CAPSTAN_OFFLINE_AFTER_MISSED_BEATS", "0")]))
            .expect_err("zero rejected");
        assert!(
            err.to_string().contains("offline_after_missed_beats"),
            "{err}"
        );
    }

    #[test]
    fn memory_limits_are_validated() {
        for (key, bad) in [
            ("CAPSTAN_STORE_CACHE_MB", "1"),
            ("CAPSTAN_MALLOC_ARENA_MAX", "0"),
        ] {
            let err = Config::load_from(None, &env(&[(key, bad)])).expect_err("rejected");
            let name = key.trim_start_matches("CAPSTAN_").to_ascii_lowercase();
            assert!(err.to_string().contains(&name), "{err}");
        }
        let c = Config::load_from(None, &env(&[("CAPSTAN_STORE_CACHE_MB", "128")])).expect("valid");
        assert_eq!((c.store_cache_mb, c.malloc_arena_max), (128, 16));
    }

    #[test]
    fn listener_limits_are_validated() {
        for (key, bad) in [
            ("CAPSTAN_HTTP_HEADER_TIMEOUT_SECS", "0"),
            ("CAPSTAN_HTTP_IDLE_TIMEOUT_SECS", "0"),
            ("CAPSTAN_HTTP_MAX_CONNECTIONS", "3"),
        ] {
            let err = Config::load_from(None, &env(&[(key, bad)])).expect_err("rejected");
            let name = key.trim_start_matches("CAPSTAN_").to_ascii_lowercase();
            assert!(err.to_string().contains(&name), "{err}");
        }
        let c = Config::load_from(None, &env(&[("CAPSTAN_HTTP_MAX_CONNECTIONS", "100")]))
            .expect("valid");
        assert_eq!(c.http_max_connections, 100);
        assert_eq!(c.http_header_timeout_secs, 10);
    }

    #[test]
    fn the_watch_hold_is_bounded_and_below_the_idle_timeout() {
        let c = Config::load_from(None, &[]).expect("defaults");
        assert_eq!(c.watch_timeout_secs, 25);
        for bad in [
            vec![("CAPSTAN_WATCH_TIMEOUT_SECS", "0")],
            vec![("CAPSTAN_WATCH_TIMEOUT_SECS", "301")],
            vec![
                ("CAPSTAN_WATCH_TIMEOUT_SECS", "30"),
                ("CAPSTAN_HTTP_IDLE_TIMEOUT_SECS", "30"),
            ],
        ] {
            let err = Config::load_from(None, &env(&bad)).expect_err("rejected");
            assert!(err.to_string().contains("watch_timeout_secs"), "{err}");
        }
        let c =
            Config::load_from(None, &env(&[("CAPSTAN_WATCH_TIMEOUT_SECS", "2")])).expect("valid");
        assert_eq!(c.watch_timeout_secs, 2);
    }
}
