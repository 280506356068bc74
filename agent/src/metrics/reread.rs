//! A file read every second, kept open and re-read from offset 0 (`pread`) rather than
//! opened by path each time. For procfs and cgroupfs files the kernel regenerates the
//! content on every read from the start, so the figures are as fresh, and the path walk
//! and dentry revalidation of an open (most of the agent's kernel time with many
//! containers: long `/sys/fs/cgroup/.../docker/<64 hex>/...` paths) happen once.
//!
//! An open handle keeps seeing the same object: a removed cgroup's files fail (and are
//! reopened by path here), but `/proc/<pid>/net/dev` keeps showing the namespace it was
//! opened on, so callers reopen it when the process they read through changes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

pub struct Reread {
    path: PathBuf,
    file: Option<File>,
}

impl Reread {
    pub fn new(path: PathBuf) -> Reread {
        Reread { path, file: None }
    }

    /// The whole file as it is now. A handle that stopped working (the file was
    /// replaced or removed) is reopened once.
    pub fn read(&mut self) -> std::io::Result<String> {
        if let Some(f) = &self.file
            && let Ok(text) = read_from_start(f)
        {
            return Ok(text);
        }
        self.file = None;
        let f = File::open(&self.path)?;
        let text = read_from_start(&f)?;
        self.file = Some(f);
        Ok(text)
    }
}

fn read_from_start(f: &File) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = f.read_at(&mut chunk, buf.len() as u64)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_new_content_of_a_regular_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "one\n").expect("write");
        let mut r = Reread::new(path.clone());
        assert_eq!(r.read().expect("read"), "one\n");
        std::fs::write(&path, "two, longer\n").expect("write");
        assert_eq!(r.read().expect("read"), "two, longer\n");
    }

    /// procfs regenerates a file on each read from offset 0: our own `rchar` counter
    /// grows by what the previous read returned.
    #[test]
    fn procfs_content_is_regenerated_on_each_read() {
        let rchar = |text: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix("rchar:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("rchar")
        };
        let mut r = Reread::new(PathBuf::from("/proc/self/io"));
        let first = r.read().expect("read");
        let second = r.read().expect("read");
        assert!(rchar(&second) >= rchar(&first) + first.len() as u64);
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let mut r = Reread::new(PathBuf::from("/nonexistent/capstan"));
        assert!(r.read().is_err());
    }
}
