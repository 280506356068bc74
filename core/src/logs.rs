//! Live logs on demand. Nothing streams until someone looks: a poll registers a *watch*
//! on (node, source); while watched, every heartbeat reply to that node lists it in
//! `desired.logs`, the agent follows the source and posts new lines as they come; the
//! lines land in a bounded buffer here with consecutive sequence numbers. Pollers read
//! from their cursor (the next sequence number they want), so they get every line once,
//! in order. A watch nobody polled for `WATCH_TTL` ends, and the agent stops following.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_proto::{LogBatch, LogRequest};
use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;

/// Lines kept per watched source.
pub const BUFFER_LINES: usize = 5000;
/// Most lines and bytes in one poll response.
pub const MAX_LINES_PER_POLL: usize = 1000;
pub const MAX_BYTES_PER_POLL: usize = 512 * 1024;
/// A line longer than this is cut, with a marker saying how much.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// A watch ends this long after its last poll.
pub const WATCH_TTL: Duration = Duration::from_secs(30);
/// History requested when a watch starts.
pub const DEFAULT_TAIL: u32 = 200;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Line {
    pub seq: u64,
    pub ts: String,
    /// `stdout`, `stderr` or `file`.
    pub stream: String,
    pub text: String,
}

struct Watch {
    lines: VecDeque<Line>,
    next_seq: u64,
    last_poll: Instant,
    tail: u32,
    error: Option<String>,
    /// True once the agent answered at least once (lines or error).
    answered: bool,
    /// Lines the agent reported as skipped, with the sequence number they precede.
    gaps: Vec<(u64, u64)>,
    /// Woken when the agent posts for this source (long-polls wait on it).
    notify: Arc<Notify>,
}

#[derive(Default)]
pub struct LogHub {
    watches: Mutex<HashMap<(String, String), Watch>>,
}

/// What a poll returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct PollResult {
    pub lines: Vec<Line>,
    /// Pass this back as `cursor` on the next poll.
    pub cursor: u64,
    /// Lines that existed but are not returned (dropped for rate or buffer size, or
    /// already gone from the buffer); the UI shows "N lines skipped".
    pub skipped: u64,
    /// More lines are waiting beyond this response's cap: poll again at once.
    pub more: bool,
    /// The agent has not answered yet (first poll, or node slow).
    pub pending: bool,
    /// Why the source cannot be read (e.g. no such container).
    pub error: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PollError {
    /// The cursor is ahead of anything that exists.
    CursorAhead { latest: u64 },
}

impl LogHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Watch>> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads from `cursor` (None: from the start of the buffer), registering or renewing
    /// the watch.
    pub fn poll(
        &self,
        node: &str,
        source: &str,
        cursor: Option<u64>,
        tail: u32,
    ) -> Result<PollResult, PollError> {
        self.poll_watch(node, source, cursor, tail).map(|(r, _)| r)
    }

    /// As [`LogHub::poll`], also saying whether this poll started the watch (the node's
    /// held agent watch is then woken, so following starts without waiting for a beat).
    pub fn poll_watch(
        &self,
        node: &str,
        source: &str,
        cursor: Option<u64>,
        tail: u32,
    ) -> Result<(PollResult, bool), PollError> {
        let mut map = self.lock();
        let key = (node.to_string(), source.to_string());
        let started = !map.contains_key(&key);
        let w = map.entry(key).or_insert_with(|| Watch {
            lines: VecDeque::new(),
            next_seq: 0,
            last_poll: Instant::now(),
            tail,
            error: None,
            answered: false,
            gaps: Vec::new(),
            notify: Arc::new(Notify::new()),
        });
        w.last_poll = Instant::now();
        let oldest = w.lines.front().map(|l| l.seq).unwrap_or(w.next_seq);
        let from = cursor.unwrap_or(oldest);
        if from > w.next_seq {
            return Err(PollError::CursorAhead { latest: w.next_seq });
        }
        let start = from.max(oldest);
        let mut lines = Vec::new();
        let mut bytes = 0;
        let mut next = start;
        let mut more = false;
        let skip = usize::try_from(start - oldest).unwrap_or(usize::MAX);
        for l in w.lines.iter().skip(skip) {
            if lines.len() >= MAX_LINES_PER_POLL || bytes + l.text.len() > MAX_BYTES_PER_POLL {
                more = true;
                break;
            }
            bytes += l.text.len();
            next = l.seq + 1;
            lines.push(l.clone());
        }
        // Lines already gone from the buffer, plus the agent's drops just before the
        // lines returned now (a gap at seq X precedes line X, so it is reported exactly
        // once: to the poll that returns line X).
        let skipped = oldest.saturating_sub(from)
            + w.gaps
                .iter()
                .filter(|(at, _)| (start..next).contains(at))
                .map(|(_, n)| *n)
                .sum::<u64>();
        Ok((
            PollResult {
                lines,
                cursor: next,
                skipped,
                more,
                pending: !w.answered,
                error: w.error.clone(),
            },
            started,
        ))
    }

    /// What a long-poll on (node, source) waits on; None when nobody watches it.
    pub fn waiter(&self, node: &str, source: &str) -> Option<Arc<Notify>> {
        self.lock()
            .get(&(node.to_string(), source.to_string()))
            .map(|w| w.notify.clone())
    }

    /// Adds what an agent posted. Batches for sources nobody watches are dropped.
    pub fn ingest(&self, node: &str, batches: Vec<LogBatch>) {
        let mut map = self.lock();
        for b in batches {
            let Some(w) = map.get_mut(&(node.to_string(), b.source.clone())) else {
                continue;
            };
            w.answered = true;
            w.error = b.error.clone();
            if b.skipped > 0 {
                w.gaps.push((w.next_seq, b.skipped));
            }
            for l in b.lines {
                let line = Line {
                    seq: w.next_seq,
                    ts: l.ts,
                    stream: l.stream,
                    text: clean(&l.text),
                };
                w.next_seq += 1;
                w.lines.push_back(line);
                if w.lines.len() > BUFFER_LINES {
                    w.lines.pop_front();
                }
            }
            let oldest = w.lines.front().map(|l| l.seq).unwrap_or(w.next_seq);
            w.gaps.retain(|(at, _)| *at >= oldest);
            w.notify.notify_waiters();
        }
    }

    /// The log requests (`desired.logs`) for a node's live watches; drops expired watches.
    pub fn requests_for(&self, node: &str) -> Vec<LogRequest> {
        let mut map = self.lock();
        map.retain(|_, w| w.last_poll.elapsed() < WATCH_TTL);
        let mut out: Vec<LogRequest> = map
            .iter()
            .filter(|((n, _), _)| n == node)
            .map(|((_, source), w)| LogRequest {
                source: source.clone(),
                tail: w.tail,
            })
            .collect();
        out.sort_by(|a, b| a.source.cmp(&b.source));
        out
    }

    pub fn forget_node(&self, node: &str) {
        self.lock().retain(|(n, _), _| n != node);
    }
}

/// Makes agent text safe to show: valid UTF-8 already (serde); string escape sequences
/// (OSC such as a window title `ESC ] 0 ; title BEL`, and DCS, SOS, PM, APC) removed
/// whole, whether ended by BEL or ST; the remaining control characters other than tab
/// and ESC (kept for ANSI colours, which the UI renders or strips) replaced; over-long
/// lines cut with a marker.
///
/// String sequences go first, so a BEL that ends one is not mistaken for a stray control
/// character: replacing it would leave the sequence unterminated, and the viewer would
/// hide the rest of the line as part of it. A sequence never terminated on its line is
/// shown as text (its ESC replaced), for the same reason.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\u{1b}'
            && chars
                .peek()
                .is_some_and(|(_, n)| matches!(n, ']' | 'P' | 'X' | '^' | '_'))
        {
            match string_sequence_end(&text[i + 2..]) {
                Some(len) => {
                    // Skip the introducer and the body with its terminator.
                    chars.next();
                    let end = i + 2 + len;
                    while chars.peek().is_some_and(|(j, _)| *j < end) {
                        chars.next();
                    }
                }
                None => out.push('\u{fffd}'),
            }
            continue;
        }
        out.push(if c.is_control() && c != '\t' && c != '\u{1b}' {
            '\u{fffd}'
        } else {
            c
        });
    }
    if out.len() > MAX_LINE_BYTES {
        let total = out.len();
        let mut cut = MAX_LINE_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str(&format!(" … [line truncated, {} more bytes]", total - cut));
    }
    out
}

/// Length in bytes of a string sequence's body up to and including its terminator: BEL,
/// ST (`ESC \\` or the C1 `U+009C`). Another ESC ends it too (terminals cancel the
/// sequence there), without being part of it. None when the line ends first.
fn string_sequence_end(body: &str) -> Option<usize> {
    let mut it = body.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        match c {
            '\u{7}' | '\u{9c}' => return Some(i + c.len_utf8()),
            '\u{1b}' => {
                return Some(match it.peek() {
                    Some((_, '\\')) => i + 2,
                    _ => i,
                });
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_proto::LogLine;

    fn batch(source: &str, texts: &[&str], skipped: u64) -> LogBatch {
        LogBatch {
            source: source.into(),
            restart: false,
            lines: texts
                .iter()
                .map(|t| LogLine {
                    ts: "2026-01-01T00:00:00Z".into(),
                    stream: "stdout".into(),
                    text: t.to_string(),
                })
                .collect(),
            skipped,
            error: None,
        }
    }

    #[test]
    fn every_line_once_in_order_across_polls() {
        let hub = LogHub::default();
        let first = hub.poll("n", "web", None, 10).expect("poll");
        assert!(first.pending && first.lines.is_empty());
        assert_eq!(hub.requests_for("n")[0].source, "web");
        hub.ingest("n", vec![batch("web", &["a", "b"], 0)]);
        let p = hub.poll("n", "web", Some(first.cursor), 10).expect("poll");
        assert_eq!(
            p.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        hub.ingest(
            "n",
            vec![batch("web", &["c"], 0), batch("unwatched", &["x"], 0)],
        );
        let q = hub.poll("n", "web", Some(p.cursor), 10).expect("poll");
        assert_eq!(q.lines.len(), 1);
        assert_eq!(q.lines[0].text, "c");
        assert_eq!(q.lines[0].seq, 2);
        let r = hub.poll("n", "web", Some(q.cursor), 10).expect("poll");
        assert!(r.lines.is_empty() && !r.pending);
        assert_eq!(
            hub.poll("n", "web", Some(99), 10).err(),
            Some(PollError::CursorAhead { latest: 3 })
        );
    }

    #[test]
    fn overflow_is_reported_as_skipped_and_responses_are_capped() {
        let hub = LogHub::default();
        hub.poll("n", "flood", None, 0).expect("poll");
        let many: Vec<String> = (0..BUFFER_LINES + 500).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        hub.ingest("n", vec![batch("flood", &refs, 0)]);
        let p = hub.poll("n", "flood", Some(0), 0).expect("poll");
        assert_eq!(p.skipped, 500, "fell off the buffer");
        assert_eq!(p.lines.len(), MAX_LINES_PER_POLL);
        assert!(p.more);
        assert_eq!(p.lines[0].text, "500");
    }

    #[test]
    fn agent_side_drops_show_up_once() {
        let hub = LogHub::default();
        let c0 = hub.poll("n", "s", None, 0).expect("poll").cursor;
        hub.ingest("n", vec![batch("s", &["a"], 0)]);
        let p = hub.poll("n", "s", Some(c0), 0).expect("poll");
        hub.ingest("n", vec![batch("s", &["z"], 40)]);
        let q = hub.poll("n", "s", Some(p.cursor), 0).expect("poll");
        assert_eq!(q.skipped, 40);
        assert_eq!(q.lines[0].text, "z");
        hub.ingest("n", vec![batch("s", &["y"], 0)]);
        let r = hub.poll("n", "s", Some(q.cursor), 0).expect("poll");
        assert_eq!(r.skipped, 0, "reported once");
    }

    #[test]
    fn string_sequences_go_whole_and_the_rest_of_the_line_stays() {
        // A window title ended by BEL (the reported case), and by ST.
        assert_eq!(clean("\x1b]0;title\x07after the title"), "after the title");
        assert_eq!(clean("a\x1b]0;title\x1b\\b"), "ab");
        assert_eq!(clean("a\x1b]2;t\u{9c}b"), "ab");
        // A hyperlink keeps its text; colours around it stay for the UI.
        assert_eq!(
            clean("see \x1b]8;;https://x.test/\x07\x1b[1mdocs\x1b[0m\x1b]8;;\x07 now"),
            "see \x1b[1mdocs\x1b[0m now"
        );
        // Another ESC cancels the sequence and starts its own.
        assert_eq!(clean("\x1b]0;t\x1b[31mred"), "\x1b[31mred");
        // DCS, APC: same shape, same treatment; a BEL outside any sequence is replaced.
        assert_eq!(clean("\x1bPq#0\x1b\\x\x1b_apc\x07y\x07"), "xy\u{fffd}");
        // Never terminated on the line: shown as text rather than hiding the rest.
        assert_eq!(clean("\x1b]0;no end"), "\u{fffd}]0;no end");
        assert_eq!(clean("end\x1b]"), "end\u{fffd}]");
        assert_eq!(clean("\x1b"), "\x1b");
        assert_eq!(clean("é\x1b]0;ü\x07ß"), "éß");
    }

    #[test]
    fn lines_are_made_safe() {
        assert_eq!(
            clean("a\u{0}b\u{7}c\x1b[31mred"),
            "a\u{fffd}b\u{fffd}c\x1b[31mred"
        );
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        assert!(clean(&long).ends_with("[line truncated, 10 more bytes]"));
    }
}
