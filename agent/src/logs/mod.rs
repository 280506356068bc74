//! Log following on demand. A source (container or the node's NGINX log file) is
//! followed only while the core keeps asking (`desired.logs` in beat replies, i.e. while
//! someone watches it in the UI); a follower not asked for `IDLE_STOP` is stopped. New
//! lines are posted to the core right away by one uploader task, batched every
//! `FLUSH_EVERY`, so write → visible does not wait for the next beat.
//!
//! Flood control: each source may send `RATE_PER_SEC` lines a second (burst
//! `RATE_BURST`); beyond that lines are counted, not sent, and the count travels as
//! `skipped` so the UI shows "N lines skipped".

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use capstan_proto::{LogBatch, LogLine, LogRequest, LogUpload, NGINX_ACCESS_LOG, NGINX_ERROR_LOG};
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::client::CoreClient;
use crate::credentials::Credentials;
use crate::docker::DockerSource;

const IDLE_STOP: Duration = Duration::from_secs(10);
const RESTART_AFTER: Duration = Duration::from_secs(2);
const FLUSH_EVERY: Duration = Duration::from_millis(20);
const RATE_PER_SEC: f64 = 1000.0;
const RATE_BURST: f64 = 2000.0;
/// Lines waiting per source; more are counted as skipped (core unreachable).
const PENDING_CAP: usize = 5000;
/// Bytes of line text per upload.
const UPLOAD_BYTES: usize = 1024 * 1024;
const LINE_CAP: usize = 16 * 1024;

#[derive(Default)]
struct Pending {
    lines: Vec<LogLine>,
    skipped: u64,
    error: Option<String>,
    restart: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<String, Pending>>,
    /// Timestamp of the last line taken per source, to resume without duplicates.
    last_ts: Mutex<HashMap<String, String>>,
    notify: Notify,
}

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Pending>) -> T) -> T {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut map)
    }

    fn set_error(&self, source: &str, error: String) {
        self.with(|m| m.entry(source.to_string()).or_default().error = Some(error));
        self.notify.notify_one();
    }
}

struct Follower {
    last_requested: Instant,
    task: JoinHandle<()>,
    ended_at: Option<Instant>,
}

pub struct LogFollowers {
    docker: Arc<DockerSource>,
    nginx_logs: Option<PathBuf>,
    followers: HashMap<String, Follower>,
    shared: Arc<Shared>,
}

impl LogFollowers {
    pub fn new(docker_socket: &str, nginx_logs: Option<PathBuf>) -> LogFollowers {
        LogFollowers {
            docker: Arc::new(DockerSource::new(docker_socket)),
            nginx_logs,
            followers: HashMap::new(),
            shared: Arc::new(Shared::default()),
        }
    }

    /// The core asked for `req` (again): follow it if not already.
    pub fn request(&mut self, req: &LogRequest) {
        let now = Instant::now();
        if let Some(f) = self.followers.get_mut(&req.source) {
            f.last_requested = now;
            if !f.task.is_finished() {
                return;
            }
            let ended = *f.ended_at.get_or_insert(now);
            if now.duration_since(ended) < RESTART_AFTER {
                return;
            }
        }
        let task = self.spawn(req);
        self.followers.insert(
            req.source.clone(),
            Follower {
                last_requested: now,
                task,
                ended_at: None,
            },
        );
    }

    /// Stops followers nobody asked for lately.
    pub fn sweep(&mut self) {
        self.followers.retain(|source, f| {
            let keep = f.last_requested.elapsed() < IDLE_STOP;
            if !keep {
                f.task.abort();
                tracing::debug!(%source, "stopped following logs");
            }
            keep
        });
    }

    fn spawn(&self, req: &LogRequest) -> JoinHandle<()> {
        let shared = self.shared.clone();
        let source = req.source.clone();
        let tail = req.tail;
        let file = match (source.as_str(), &self.nginx_logs) {
            (NGINX_ACCESS_LOG, Some(dir)) => Some(dir.join("access.log")),
            (NGINX_ERROR_LOG, Some(dir)) => Some(dir.join("error.log")),
            (NGINX_ACCESS_LOG | NGINX_ERROR_LOG, None) => {
                shared.set_error(&source, "this node does not manage NGINX".into());
                return tokio::spawn(async {});
            }
            _ => None,
        };
        match file {
            Some(path) => tokio::spawn(follow_file(shared, source, path, tail)),
            None => tokio::spawn(follow_container(self.docker.clone(), shared, source, tail)),
        }
    }

    /// The uploader: posts pending lines as they come. Runs for the agent's lifetime.
    pub fn start_uploader(&self, client: Arc<CoreClient>, creds: Credentials) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shared.notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                // Gather what arrives together into one post.
                tokio::time::sleep(FLUSH_EVERY).await;
                let batches = take_batches(&shared);
                if batches.is_empty() {
                    continue;
                }
                let upload = LogUpload { batches };
                if let Err(e) = client.upload_logs(&creds, &upload).await {
                    tracing::debug!(error = %e, "log upload failed; lines counted as skipped");
                    shared.with(|m| {
                        for b in upload.batches {
                            let p = m.entry(b.source).or_default();
                            p.skipped += b.skipped + b.lines.len() as u64;
                        }
                    });
                }
            }
        });
    }
}

/// Takes pending lines, at most `UPLOAD_BYTES` of text; the rest waits for the next post.
fn take_batches(shared: &Shared) -> Vec<LogBatch> {
    shared.with(|m| {
        let mut budget = UPLOAD_BYTES;
        let mut out = Vec::new();
        for (source, p) in m.iter_mut() {
            // A follow that just started is announced even without lines: the viewer
            // then knows the agent is on it (not `pending`).
            if p.lines.is_empty() && p.error.is_none() && p.skipped == 0 && !p.restart {
                continue;
            }
            let mut n = 0;
            for l in &p.lines {
                if l.text.len() > budget {
                    break;
                }
                budget -= l.text.len();
                n += 1;
            }
            let lines: Vec<LogLine> = p.lines.drain(..n).collect();
            out.push(LogBatch {
                source: source.clone(),
                restart: std::mem::take(&mut p.restart),
                lines,
                skipped: std::mem::take(&mut p.skipped),
                error: p.error.take(),
            });
        }
        if m.values().any(|p| !p.lines.is_empty()) {
            // More than one upload's worth: come back at once.
            shared.notify.notify_one();
        }
        out
    })
}

/// Per-source line budget (token bucket).
struct Rate {
    tokens: f64,
    at: Instant,
}

impl Rate {
    fn new() -> Rate {
        Rate {
            tokens: RATE_BURST,
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * RATE_PER_SEC)
            .min(RATE_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn push(shared: &Shared, rate: &mut Rate, source: &str, line: LogLine) {
    let allowed = rate.take();
    shared.with(|m| {
        let p = m.entry(source.to_string()).or_default();
        if allowed && p.lines.len() < PENDING_CAP {
            p.lines.push(line);
        } else {
            p.skipped += 1;
        }
    });
}

fn text_of(bytes: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(bytes)
        .trim_end_matches('\r')
        .to_string();
    if s.len() > LINE_CAP {
        let mut cut = LINE_CAP;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

async fn follow_container(
    docker: Arc<DockerSource>,
    shared: Arc<Shared>,
    source: String,
    tail: u32,
) {
    let last = shared
        .last_ts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&source)
        .cloned();
    // Resuming: ask from the last line's second and drop what we already sent.
    let since = last.as_deref().and_then(unix_seconds);
    let stream = match docker.follow_logs(&source, tail, since).await {
        Ok(s) => s,
        Err(e) => {
            shared.set_error(&source, e.to_string());
            return;
        }
    };
    if last.is_none() {
        shared.with(|m| m.entry(source.clone()).or_default().restart = true);
        shared.notify.notify_one();
    }
    let mut rate = Rate::new();
    let mut last_key = last.as_deref().map(sort_key);
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let (kind, bytes) = match chunk {
            Ok(c) => c,
            Err(e) => {
                shared.set_error(&source, e.to_string());
                return;
            }
        };
        for raw in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let text = text_of(raw);
            let (ts, body) = match text.split_once(' ') {
                Some((ts, body)) if ts.len() >= 20 && ts.as_bytes()[4] == b'-' => {
                    (ts.to_string(), body.to_string())
                }
                _ => (String::new(), text.clone()),
            };
            if !ts.is_empty() {
                let key = sort_key(&ts);
                if last_key.as_ref().is_some_and(|k| key <= *k) {
                    continue;
                }
                last_key = Some(key);
                shared
                    .last_ts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(source.clone(), ts.clone());
            }
            push(
                &shared,
                &mut rate,
                &source,
                LogLine {
                    ts,
                    stream: kind.to_string(),
                    text: body,
                },
            );
        }
        shared.notify.notify_one();
    }
}

async fn follow_file(shared: Arc<Shared>, source: String, path: PathBuf, tail: u32) {
    use std::io::{Read, Seek, SeekFrom};
    let mut offset = match std::fs::metadata(&path) {
        Ok(m) => tail_offset(&path, m.len(), tail),
        Err(e) => {
            shared.set_error(&source, format!("{}: {e}", path.display()));
            return;
        }
    };
    shared.with(|m| m.entry(source.clone()).or_default().restart = true);
    shared.notify.notify_one();
    let mut rate = Rate::new();
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len < offset {
            // Rotated or truncated: start over at the beginning of the new file.
            offset = 0;
            carry.clear();
        }
        if len > offset {
            let mut buf = Vec::new();
            let read = std::fs::File::open(&path).and_then(|mut f| {
                f.seek(SeekFrom::Start(offset))?;
                f.take(4 * 1024 * 1024).read_to_end(&mut buf)
            });
            if let Ok(n) = read {
                offset += n as u64;
                carry.extend_from_slice(&buf);
                let now = rfc3339(SystemTime::now());
                while let Some(pos) = carry.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = carry.drain(..=pos).collect();
                    let text = text_of(&line[..line.len() - 1]);
                    push(
                        &shared,
                        &mut rate,
                        &source,
                        LogLine {
                            ts: now.clone(),
                            stream: "file".into(),
                            text,
                        },
                    );
                }
                shared.notify.notify_one();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Offset where the last `tail` lines of the file start.
fn tail_offset(path: &std::path::Path, len: u64, tail: u32) -> u64 {
    use std::io::{Read, Seek, SeekFrom};
    if tail == 0 {
        return len;
    }
    let window = len.min(256 * 1024);
    let mut buf = Vec::new();
    let ok = std::fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(len - window))?;
        f.read_to_end(&mut buf)
    });
    if ok.is_err() {
        return len;
    }
    let mut newlines = 0;
    for (i, b) in buf.iter().enumerate().rev().skip(1) {
        if *b == b'\n' {
            newlines += 1;
            if newlines == tail {
                return len - window + i as u64 + 1;
            }
        }
    }
    len - window
}

/// Docker timestamps (`2026-11-21T22:18:27.1343Z`, fraction of varying length) as a key
/// that sorts like time: the fraction padded to nanoseconds.
fn sort_key(ts: &str) -> String {
    let body = ts.trim_end_matches('Z');
    match body.split_once('.') {
        Some((secs, frac)) => format!("{secs}.{frac:0<9}"),
        None => format!("{body}.000000000"),
    }
}

/// Unix seconds of an RFC 3339 timestamp (for Docker's `since`).
fn unix_seconds(ts: &str) -> Option<i32> {
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    i32::try_from(t.unix_timestamp()).ok()
}

/// RFC 3339 UTC with nanoseconds, the shape of Docker's timestamps.
fn rfc3339(t: SystemTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    time::OffsetDateTime::from(t)
        .format(&format)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_and_convert() {
        assert!(sort_key("2026-01-01T00:00:00.5Z") > sort_key("2026-01-01T00:00:00.45Z"));
        assert!(sort_key("2026-01-01T00:00:00.5Z") < sort_key("2026-01-01T00:00:00.50001Z"));
        assert_eq!(unix_seconds("1970-01-02T00:00:01.9Z"), Some(86_401));
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let s = rfc3339(t);
        assert_eq!(s, "2023-11-14T22:13:20.000000000Z");
        assert_eq!(unix_seconds(&s), Some(1_700_000_000));
    }

    #[test]
    fn flood_is_counted_not_sent() {
        let shared = Shared::default();
        let mut rate = Rate::new();
        for i in 0..5000 {
            push(
                &shared,
                &mut rate,
                "s",
                LogLine {
                    ts: String::new(),
                    stream: "stdout".into(),
                    text: i.to_string(),
                },
            );
        }
        let batches = take_batches(&shared);
        let b = &batches[0];
        assert!(
            b.lines.len() as f64 <= RATE_BURST + 50.0,
            "{}",
            b.lines.len()
        );
        assert_eq!(b.lines.len() as u64 + b.skipped, 5000);
        assert!(take_batches(&shared).is_empty());
    }

    #[test]
    fn tail_offset_finds_the_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f.log");
        std::fs::write(&p, "a\nb\nc\nd\n").expect("write");
        let off = tail_offset(&p, 8, 2);
        assert_eq!(
            &std::fs::read_to_string(&p).expect("read")[off as usize..],
            "c\nd\n"
        );
    }
}
