//! One agent per state directory. Two agents on one state dir would fight over one NGINX
//! (each rendering its own desired state into the same generations and reloading the
//! same master), so the second refuses to start.
//!
//! The lock is an advisory `flock` on `<state_dir>/agent.lock`, held by the open file for
//! the life of the process: the kernel releases it when the process exits however it
//! exits (kill -9 included), so a stale file never blocks a restart. The file holds the
//! holder's PID, only to name it in the refusal.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const FILE: &str = "agent.lock";

/// Held while the agent runs; dropping it (process exit) releases the directory.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another capstan-agent ({holder}) is running on state dir {dir}: two agents on one state dir fight over one NGINX. Stop it, or give this agent its own CAPSTAN_AGENT_STATE_DIR (and NGINX ports)"
    )]
    Held { dir: PathBuf, holder: String },
    #[error("cannot lock state dir {dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Takes the state dir for this process (creating it), or says who holds it.
pub fn acquire(state_dir: &Path) -> Result<StateLock, LockError> {
    let io = |source| LockError::Io {
        dir: state_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(state_dir).map_err(io)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(state_dir.join(FILE))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!("PID {pid}"),
                Err(_) => "PID unknown, just starting".to_string(),
            };
            return Err(LockError::Held {
                dir: std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf()),
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .map_err(io)?;
    Ok(StateLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_pid_until_the_first_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let first = acquire(&state).expect("first");
        let pid = std::process::id().to_string();
        assert_eq!(
            std::fs::read_to_string(state.join(FILE))
                .expect("read")
                .trim(),
            pid
        );
        // flock locks belong to the open file description: a second open in this
        // process conflicts just as another process would.
        let err = acquire(&state).expect_err("second must be refused");
        let text = err.to_string();
        assert!(text.contains(&format!("PID {pid}")), "{text}");
        assert!(text.contains(&state.display().to_string()), "{text}");
        drop(first);
        let again = acquire(&state).expect("free again once the first is gone");
        drop(again);
    }
}
