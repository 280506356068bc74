//! Stage → validate → swap → reload, with rollback.
//!
//! Each config is written to its own generation directory `gen/<n>/` (main `nginx.conf`
//! plus `http/*.conf` and `stream/*.conf`, included relative to it) and checked with
//! `nginx -t` as a whole. The live config is the symlink `current → gen/<n>`, replaced
//! with an atomic rename; NGINX runs with `-c <dir>/current/nginx.conf`, so a reload
//! (SIGHUP through `nginx -s reload`, graceful: old workers finish their requests) reads
//! the new generation. If validation fails nothing is touched; if the reload command
//! fails the symlink goes back to the previous generation.
//!
//! Every file is written inside its generation directory and nowhere else: names must be
//! plain relative paths, each directory is checked after resolution (symlinks followed)
//! to still be under the generation, and files are created new (never through an
//! existing link). See [`confined_write`].

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
    let root = std::fs::canonicalize(root)?;
    for (rel, text) in files {
        confined_write(&root, rel, text)?;
    }
    // Include globs need their directories even when empty.
    confined_dir(&root, Path::new("http"))?;
    confined_dir(&root, Path::new("stream"))?;
    Ok(())
}

fn outside(rel: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("refusing to write {rel:?}: outside the config directory"),
    )
}

/// Creates (if needed) the directory `rel` under the canonical `root`, one component at a
/// time, checking after each that the resolved path is still under `root`: a component
/// that is a symlink to elsewhere is refused before anything is created through it.
fn confined_dir(root: &Path, rel: &Path) -> std::io::Result<PathBuf> {
    let shown = rel.display().to_string();
    let mut dir = root.to_path_buf();
    for c in rel.components() {
        let std::path::Component::Normal(name) = c else {
            return Err(outside(&shown));
        };
        let next = dir.join(name);
        match std::fs::create_dir(&next) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let resolved = std::fs::canonicalize(&next)?;
        if !resolved.starts_with(root) || !resolved.is_dir() {
            return Err(outside(&shown));
        }
        dir = resolved;
    }
    Ok(dir)
}

/// Writes `text` to `root/rel`, where `root` is canonical. `rel` must be a plain relative
/// path (no `..`, no root, no `.`); its directory must resolve inside `root`; the file is
/// created new, so an existing symlink at its place is never followed.
pub(crate) fn confined_write(root: &Path, rel: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let path = Path::new(rel);
    let plain = !rel.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(outside(rel));
    };
    if !plain {
        return Err(outside(rel));
    }
    let dir = confined_dir(root, parent)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(name))?;
    file.write_all(text.as_bytes())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("gen");
        std::fs::create_dir_all(&root).expect("mkdir");
        let root = std::fs::canonicalize(&root).expect("canonical");
        (tmp, root)
    }

    #[test]
    fn plain_relative_names_are_written_inside() {
        let (_tmp, root) = root();
        confined_write(&root, "nginx.conf", "a").expect("top level");
        confined_write(&root, "http/5f2c.conf", "b").expect("nested");
        assert_eq!(
            std::fs::read_to_string(root.join("http/5f2c.conf")).expect("read"),
            "b"
        );
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        let (tmp, root) = root();
        for rel in [
            "",
            "/etc/x.conf",
            "../x.conf",
            "http/../../x.conf",
            "http/../../../../tmp/x/demo.service.d/override.conf",
            "./x.conf",
        ] {
            let err = confined_write(&root, rel, "x").expect_err(rel);
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{rel}: {err}"
            );
        }
        assert!(!tmp.path().join("x.conf").exists());
        assert!(!tmp.path().join("tmp").exists());
    }

    #[test]
    fn a_symlinked_directory_pointing_outside_is_refused_after_resolution() {
        let (tmp, root) = root();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).expect("mkdir");
        std::os::unix::fs::symlink(&elsewhere, root.join("http")).expect("symlink");
        let err = confined_write(&root, "http/a.conf", "x").expect_err("through a link");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        let err = confined_write(&root, "http/sub/a.conf", "x").expect_err("below a link");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        assert_eq!(
            std::fs::read_dir(&elsewhere).expect("read").count(),
            0,
            "nothing written or created outside"
        );
    }

    #[test]
    fn an_existing_symlink_in_place_of_the_file_is_not_followed() {
        let (tmp, root) = root();
        let target = tmp.path().join("victim");
        std::fs::write(&target, "original").expect("write");
        std::os::unix::fs::symlink(&target, root.join("nginx.conf")).expect("symlink");
        assert!(confined_write(&root, "nginx.conf", "x").is_err());
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "original");
    }

    #[test]
    fn write_tree_refuses_the_whole_tree_on_a_bad_name() {
        let (tmp, root) = root();
        let mut files = BTreeMap::new();
        files.insert("nginx.conf".to_string(), "x".to_string());
        files.insert("http/../../escape.conf".to_string(), "x".to_string());
        assert!(write_tree(&root, &files).is_err());
        assert!(!tmp.path().join("escape.conf").exists());
    }
}
