//! Log following on demand. A source (container or the node's NGINX log file) is
//! followed only while the core keeps asking (`desired.logs` in beat replies, i.e. while
//! someone watches it in the UI); a follower not asked for `IDLE_STOP` is stopped. New
//! lines are posted to the core right away by one uploader task, batched every
//! `FLUSH_EVERY`, so write → visible does not wait for the next beat.
//!
//! Flood control: each source may send `RATE_PER_SEC` lines a second (burst
//! `RATE_BURST`); beyond that lines are counted, not sent, and the count travels as
//! `skipped` so the UI shows "N lines skipped".
//!
//! Exactly once across a resume: Docker stamps stdout and stderr in separate goroutines,
//! so its log order is not timestamp order and no "newer than the last line" rule can
//! tell old lines from new. A follower that starts again (the container restarted, the
//! stream broke, the core came back) asks Docker for the lines since the whole second of
//! the newest timestamp seen, and drops exactly the replayed lines it had already taken:
//! [`Resume`] keeps a fingerprint (timestamp, stream, text) of every line seen in or
//! after that second, and the next follower skips each once. Nothing else is filtered.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
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
/// How long a stopped follower's resume point is kept: a follower asked for again within
/// this (the core was unreachable for a while) continues where it stopped; later it
/// starts afresh from the tail the core asks for, instead of replaying everything since.
const RESUME_KEEP: Duration = Duration::from_secs(60);
/// Fingerprints kept for one second of output; a source writing more than this in one
/// second may see the excess twice after a resume (it is far above the rate cap).
const RESUME_CAP: usize = 100_000;

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
    /// Where each container source's follower left off, to resume without duplicates.
    resume: Mutex<HashMap<String, Arc<Mutex<Resume>>>>,
    notify: Notify,
}

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Pending>) -> T) -> T {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut map)
    }

    fn resume_point(&self, source: &str) -> Arc<Mutex<Resume>> {
        let mut map = self.resume.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(source.to_string()).or_default().clone()
    }

    /// Marks the resume points of stopped followers, and forgets those stopped long ago.
    fn idle(&self, stopped: &[String]) {
        let now = Instant::now();
        let mut map = self.resume.lock().unwrap_or_else(|p| p.into_inner());
        for source in stopped {
            if let Some(r) = map.get(source) {
                r.lock().unwrap_or_else(|p| p.into_inner()).idle_since = Some(now);
            }
        }
        map.retain(|_, r| {
            r.lock()
                .unwrap_or_else(|p| p.into_inner())
                .idle_since
                .is_none_or(|at| now.duration_since(at) < RESUME_KEEP)
        });
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
        let mut stopped = Vec::new();
        self.followers.retain(|source, f| {
            let keep = f.last_requested.elapsed() < IDLE_STOP;
            if !keep {
                f.task.abort();
                tracing::debug!(%source, "stopped following logs");
                stopped.push(source.clone());
            }
            keep
        });
        self.shared.idle(&stopped);
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

/// What a container follower has taken, so the next follower of the same source
/// continues after it: Docker's `since` has whole-second resolution, so the next one
/// replays the lines of that second (and, as stdout and stderr are stamped separately,
/// its order is not timestamp order); this records which of them were already taken.
#[derive(Default)]
struct Resume {
    /// The whole second (Unix) of the newest timestamp seen; None until a line came.
    since: Option<i64>,
    /// Fingerprints of the lines seen whose timestamp is in or after `since`, with that
    /// second, in the order Docker gave them.
    seen: VecDeque<(i64, u64)>,
    /// Set when the follower was stopped for lack of interest.
    idle_since: Option<Instant>,
}

impl Resume {
    /// Starts a follower: Docker's `since` and the replay to skip, or None to start
    /// from the tail.
    fn begin(&mut self) -> Option<(i64, Replay)> {
        if self
            .idle_since
            .take()
            .is_some_and(|at| at.elapsed() >= RESUME_KEEP)
        {
            *self = Resume::default();
        }
        let since = self.since?;
        let mut left: HashMap<u64, u32> = HashMap::new();
        for (_, fp) in &self.seen {
            *left.entry(*fp).or_default() += 1;
        }
        Some((since, Replay { left }))
    }

    /// Records a line taken (sent or counted as skipped).
    fn record(&mut self, second: i64, fp: u64) {
        match self.since {
            Some(s) if second < s => return, // before `since`: never replayed
            Some(s) if second == s => {}
            _ => {
                self.since = Some(second);
                self.seen.retain(|(sec, _)| *sec >= second);
            }
        }
        if self.seen.len() >= RESUME_CAP {
            self.seen.pop_front();
        }
        self.seen.push_back((second, fp));
    }
}

/// The lines a resumed follower will see again, as fingerprint → how many times.
#[derive(Default)]
struct Replay {
    left: HashMap<u64, u32>,
}

impl Replay {
    /// True (once per recorded occurrence) when the line was taken by an earlier follower.
    fn seen_before(&mut self, fp: u64) -> bool {
        if self.left.is_empty() {
            return false;
        }
        match self.left.get_mut(&fp) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    self.left.remove(&fp);
                }
                true
            }
            None => false,
        }
    }
}

/// Whether a line is new (then records it), or one an earlier follower already took.
fn take(resume: &Mutex<Resume>, replay: &mut Replay, ts: &str, stream: &str, text: &str) -> bool {
    let Some(second) = unix_seconds(ts) else {
        return true;
    };
    let fp = fingerprint(ts, stream, text);
    if replay.seen_before(fp) {
        return false;
    }
    resume
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .record(second, fp);
    true
}

/// A line's identity across followers: its Docker timestamp (nanoseconds), stream and text.
fn fingerprint(ts: &str, stream: &str, text: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    (ts, stream, text).hash(&mut h);
    h.finish()
}

/// Splits Docker's `<RFC 3339 timestamp> <text>` line.
fn split_timestamp(text: String) -> (String, String) {
    match text.split_once(' ') {
        Some((ts, body)) if ts.len() >= 20 && ts.as_bytes()[4] == b'-' => {
            (ts.to_string(), body.to_string())
        }
        _ => (String::new(), text),
    }
}

async fn follow_container(
    docker: Arc<DockerSource>,
    shared: Arc<Shared>,
    source: String,
    tail: u32,
) {
    let resume = shared.resume_point(&source);
    let start = resume.lock().unwrap_or_else(|p| p.into_inner()).begin();
    let since = start.as_ref().and_then(|(s, _)| i32::try_from(*s).ok());
    let mut replay = start.map(|(_, r)| r).unwrap_or_default();
    let stream = match docker.follow_logs(&source, tail, since).await {
        Ok(s) => s,
        Err(e) => {
            shared.set_error(&source, e.to_string());
            return;
        }
    };
    if since.is_none() {
        shared.with(|m| m.entry(source.clone()).or_default().restart = true);
        shared.notify.notify_one();
    }
    let mut rate = Rate::new();
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
            let (ts, body) = split_timestamp(text_of(raw));
            if !take(&resume, &mut replay, &ts, kind, &body) {
                continue;
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

/// Unix seconds of an RFC 3339 timestamp (for Docker's `since`).
fn unix_seconds(ts: &str) -> Option<i64> {
    if ts.is_empty() {
        return None;
    }
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp())
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
    fn timestamps_convert() {
        assert_eq!(unix_seconds("1970-01-02T00:00:01.9Z"), Some(86_401));
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let s = rfc3339(t);
        assert_eq!(s, "2023-11-14T22:13:20.000000000Z");
        assert_eq!(unix_seconds(&s), Some(1_700_000_000));
    }

    /// Docker's view of a container's log: (timestamp, stream, text) in file order,
    /// stdout and stderr interleaved with timestamps out of order across the streams.
    fn docker_log() -> Vec<(String, &'static str, String)> {
        let mut lines = Vec::new();
        for i in 0..60u32 {
            let second = 10 + i / 20;
            // stderr lines are stamped a little earlier than the stdout line before them.
            let nanos = (i % 20) * 1000 + if i % 2 == 1 { 0 } else { 1500 };
            let stream = if i % 2 == 0 { "stdout" } else { "stderr" };
            lines.push((
                format!("2026-01-01T00:00:{second:02}.{nanos:09}Z"),
                stream,
                format!("line-{i}"),
            ));
        }
        // Two identical lines in the same nanosecond still count twice.
        lines.push((
            "2026-01-01T00:00:12.999999999Z".into(),
            "stdout",
            "same".into(),
        ));
        lines.push((
            "2026-01-01T00:00:12.999999999Z".into(),
            "stdout",
            "same".into(),
        ));
        lines
    }

    /// What `docker logs --since <second>` replays: the lines at or after that second,
    /// in file order.
    fn replay_since(log: &[(String, &'static str, String)], since: i64) -> Vec<usize> {
        (0..log.len())
            .filter(|i| unix_seconds(&log[*i].0).is_some_and(|s| s >= since))
            .collect()
    }

    #[test]
    fn resumed_followers_take_every_interleaved_line_once() {
        let log = docker_log();
        // Stop points anywhere in the log, including mid-second and between the twins.
        for stops in [
            vec![7],
            vec![25, 26, 40],
            vec![1, 2, 3, 61],
            vec![39, 40, 60],
        ] {
            let resume = Mutex::new(Resume::default());
            let mut taken: Vec<usize> = Vec::new();
            let mut read_to = 0;
            for (n, stop) in stops.iter().chain([&log.len()]).enumerate() {
                let (since, mut replay) = match resume.lock().expect("lock").begin() {
                    Some((since, r)) => (since, r),
                    None => {
                        assert_eq!(n, 0, "only the first follower starts fresh");
                        (i64::MIN, Replay::default())
                    }
                };
                // Docker replays from `since`, then the log grows to `stop`.
                for i in replay_since(&log[..*stop], since) {
                    let (ts, stream, text) = &log[i];
                    if take(&resume, &mut replay, ts, stream, text) {
                        taken.push(i);
                    }
                }
                read_to = *stop;
            }
            assert_eq!(read_to, log.len());
            assert_eq!(
                taken,
                (0..log.len()).collect::<Vec<_>>(),
                "every line once, in Docker's order (stops {stops:?})"
            );
        }
    }

    #[test]
    fn an_idle_resume_point_is_forgotten() {
        let mut r = Resume::default();
        assert!(r.begin().is_none(), "nothing seen: start from the tail");
        r.record(100, 1);
        r.record(101, 2);
        r.record(100, 3); // late line of an earlier second: never replayed
        let (since, replay) = r.begin().expect("resume");
        assert_eq!(since, 101);
        assert_eq!(replay.left.len(), 1);
        r.idle_since = Some(Instant::now());
        assert!(r.begin().is_some(), "asked for again soon: resume");
        r.idle_since = Instant::now().checked_sub(RESUME_KEEP);
        assert!(r.begin().is_none(), "long idle: start afresh");
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
