//! Stage → validate → swap → reload, with rollback.
//!
//! Each config is written to its own generation directory `gen/<n>/` (main `nginx.conf`
//! plus `http/*.conf` and `stream/*.conf`, included relative to it) and checked with
//! `nginx -t` as a whole. The live config is the symlink `current → gen/<n>`, replaced
//! with an atomic rename; NGINX runs with `-c <dir>/current/nginx.conf`, so a reload
//! (SIGHUP through `nginx -s reload`, graceful: old workers finish their requests) reads
//! the new generation. If validation fails nothing is touched; if the reload command
//! fails the symlink goes back to the previous generation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::docker::DockerSource;

/// Generations kept on disk (current + rollback candidates).
const KEEP_GENERATIONS: usize = 3;
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ApplyFailure {
    #[error("{0}")]
    Invalid(String),
    #[error("NGINX reload failed: {0}")]
    Reload(String),
    #[error("NGINX config files: {0}")]
    Io(#[from] std::io::Error),
}

/// Where NGINX runs.
pub enum Engine {
    /// A master this agent starts (daemonised) from the `nginx` binary on the host.
    Process { binary: PathBuf },
    /// The router container of the Docker deployment, sharing `dir` at the same path;
    /// validated with `docker exec nginx -t`, reloaded with SIGHUP, never started by
    /// the agent beyond `docker start` (its command waits for `current/nginx.conf`).
    Container {
        docker: DockerSource,
        container: String,
    },
}

pub struct NginxControl {
    engine: Engine,
    dir: PathBuf,
    run_dir: PathBuf,
    log_dir: PathBuf,
}

impl NginxControl {
    /// `dir` holds `gen/`, `current`, `run/` (pid, temp files) and `logs/`.
    pub fn new(engine: Engine, dir: PathBuf) -> std::io::Result<NginxControl> {
        let run_dir = dir.join("run");
        let log_dir = dir.join("logs");
        for d in [dir.join("gen"), run_dir.clone(), log_dir.clone()] {
            std::fs::create_dir_all(d)?;
        }
        Ok(NginxControl {
            engine,
            dir,
            run_dir,
            log_dir,
        })
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    fn current(&self) -> PathBuf {
        self.dir.join("current")
    }

    fn error_log(&self) -> PathBuf {
        self.log_dir.join("error.log")
    }

    /// The master's PID when one runs for this config (checked against /proc so a stale
    /// pid file after a reboot never gets us to signal an unrelated process).
    pub fn master_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.run_dir.join("nginx.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains("nginx")
            .then_some(pid)
    }

    async fn is_running(&self) -> Result<bool, ApplyFailure> {
        match &self.engine {
            Engine::Process { .. } => Ok(self.master_pid().is_some()),
            Engine::Container { docker, container } => docker
                .is_running(container)
                .await
                .map_err(|e| ApplyFailure::Reload(e.to_string())),
        }
    }

    /// After a restart: if a config was applied before, make sure NGINX runs with it.
    /// Returns the running files.
    pub async fn resume(&self) -> Result<Option<BTreeMap<String, String>>, ApplyFailure> {
        let current = self.current();
        if !current.join("nginx.conf").is_file() {
            return Ok(None);
        }
        let files = read_tree(&current)?;
        if !self.is_running().await? {
            self.start().await?;
        }
        Ok(Some(files))
    }

    pub async fn apply(&self, files: &BTreeMap<String, String>) -> Result<(), ApplyFailure> {
        let gen_dir = self.new_generation()?;
        if let Err(e) = write_tree(&gen_dir, files) {
            let _ = std::fs::remove_dir_all(&gen_dir);
            return Err(e.into());
        }
        let conf = gen_dir.join("nginx.conf");
        if let Err(message) = self.test(&conf).await {
            let _ = std::fs::remove_dir_all(&gen_dir);
            return Err(ApplyFailure::Invalid(message));
        }
        let previous = std::fs::read_link(self.current()).ok();
        self.point_current_to(&gen_dir)?;
        let result = match self.is_running().await {
            Ok(true) => self.signal_reload().await,
            Ok(false) => self.start().await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            if let Some(prev) = previous {
                let _ = self.point_current_to(&prev);
            }
            return Err(e);
        }
        self.prune();
        Ok(())
    }

    fn new_generation(&self) -> std::io::Result<PathBuf> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let dir = self.dir.join("gen").join(format!("{stamp:020}"));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn point_current_to(&self, target: &Path) -> std::io::Result<()> {
        let tmp = self.dir.join(".current.tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp)?;
        std::fs::rename(&tmp, self.current())
    }

    async fn run(&self, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        let binary = match &self.engine {
            Engine::Process { binary } => binary,
            Engine::Container { docker, container } => {
                let mut cmd: Vec<String> = vec!["nginx".into()];
                cmd.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));
                let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
                let out = tokio::time::timeout(COMMAND_TIMEOUT, docker.exec(container, &refs))
                    .await
                    .map_err(|_| format!("nginx in container {container} timed out"))?
                    .map_err(|e| e.to_string())?;
                return if out.exit_code == 0 {
                    Ok(())
                } else {
                    Err(clean_output(&out.output, &self.dir))
                };
            }
        };
        let mut cmd = Command::new(binary);
        cmd.args(args).kill_on_drop(true);
        let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
            .await
            .map_err(|_| format!("{} timed out", binary.display()))?
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(clean_output(
                &String::from_utf8_lossy(&out.stderr),
                &self.dir,
            ))
        }
    }

    async fn test(&self, conf: &Path) -> Result<(), String> {
        let err = self.error_log();
        self.run(&[
            "-t".as_ref(),
            "-q".as_ref(),
            "-e".as_ref(),
            err.as_os_str(),
            "-c".as_ref(),
            conf.as_os_str(),
        ])
        .await
    }

    async fn signal_reload(&self) -> Result<(), ApplyFailure> {
        if let Engine::Container { docker, container } = &self.engine {
            // The master is the container's PID 1: SIGHUP is exactly `nginx -s reload`.
            return docker
                .signal(container, "HUP")
                .await
                .map_err(|e| ApplyFailure::Reload(e.to_string()));
        }
        let conf = self.current().join("nginx.conf");
        let err = self.error_log();
        self.run(&[
            "-e".as_ref(),
            err.as_os_str(),
            "-c".as_ref(),
            conf.as_os_str(),
            "-s".as_ref(),
            "reload".as_ref(),
        ])
        .await
        .map_err(ApplyFailure::Reload)
    }

    async fn start(&self) -> Result<(), ApplyFailure> {
        if let Engine::Container { docker, container } = &self.engine {
            docker
                .start(container)
                .await
                .map_err(|e| ApplyFailure::Reload(e.to_string()))?;
            for _ in 0..100 {
                if self.is_running().await? {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return Err(ApplyFailure::Reload(format!(
                "container {container} did not start"
            )));
        }
        let conf = self.current().join("nginx.conf");
        let err = self.error_log();
        // NGINX daemonises: the master outlives the agent, so an agent restart or crash
        // never takes traffic down.
        self.run(&[
            "-e".as_ref(),
            err.as_os_str(),
            "-c".as_ref(),
            conf.as_os_str(),
        ])
        .await
        .map_err(ApplyFailure::Reload)?;
        for _ in 0..50 {
            if self.master_pid().is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ApplyFailure::Reload(
            "NGINX started but wrote no pid file".into(),
        ))
    }

    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.join("gen")) else {
            return;
        };
        let current = std::fs::read_link(self.current()).ok();
        let mut gens: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        gens.sort();
        let excess = gens.len().saturating_sub(KEEP_GENERATIONS);
        for g in gens.into_iter().take(excess) {
            if Some(&g) != current.as_ref() {
                let _ = std::fs::remove_dir_all(g);
            }
        }
    }
}

/// NGINX's message without the staging path noise, bounded.
fn clean_output(stderr: &str, dir: &Path) -> String {
    let dir = dir.display().to_string();
    let text: String = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("test failed"))
        .map(|l| l.replace(&dir, "<nginx>"))
        .collect::<Vec<_>>()
        .join("\n");
    text.chars().take(4000).collect()
}

fn write_tree(root: &Path, files: &BTreeMap<String, String>) -> std::io::Result<()> {
    for (rel, text) in files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    // Include globs need their directories even when empty.
    std::fs::create_dir_all(root.join("http"))?;
    std::fs::create_dir_all(root.join("stream"))?;
    Ok(())
}

fn read_tree(root: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    out.insert(
        "nginx.conf".to_string(),
        std::fs::read_to_string(root.join("nginx.conf"))?,
    );
    for sub in ["http", "stream"] {
        let Ok(entries) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            out.insert(format!("{sub}/{name}"), std::fs::read_to_string(e.path())?);
        }
    }
    Ok(out)
}
