//! The node's ID and key: from config, or saved after registering with a join token.
//! Saved atomically (temp file + rename, mode 0600) so a crash never leaves half a file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    pub id: String,
    pub key: String,
}

const FILE: &str = "credentials.json";

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

pub fn load(state_dir: &Path) -> std::io::Result<Option<Credentials>> {
    match std::fs::read(path(state_dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn save(state_dir: &Path, creds: &Credentials) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let tmp = state_dir.join(format!(".{FILE}.tmp"));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // A temp file left by a crash keeps its mode through `open`: set it.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        f.write_all(&serde_json::to_vec_pretty(creds).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path(state_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(dir.path()).expect("load"), None);
        let c = Credentials {
            id: "i".into(),
            key: "k".into(),
        };
        save(dir.path(), &c).expect("save");
        assert_eq!(load(dir.path()).expect("load"), Some(c));
        let mode = std::fs::metadata(path(dir.path()))
            .expect("meta")
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
}
