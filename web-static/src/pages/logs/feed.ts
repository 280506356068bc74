// One live log source of a node: long-polls GET /api/agents/{id}/logs/{source}?cursor=…&wait=…
// while started. The core answers as soon as lines after the cursor exist (else empty after
// WAIT_SECS), and the next request goes out at once, at most one every MIN_PERIOD_MS: a line shows
// a few tens of ms after the agent reads it, and an idle viewer costs one request per WAIT_SECS.
// The core stops watching 30 s after the last request. Keeps at most MAX_LINES lines in the
// browser (dropping the oldest, counted for a marker) and notifies its listeners at most once per
// frame.

import { logsApi } from "../../api/endpoints";
import { ApiError, isAbort, toApiError } from "../../api/error";
import type { LogStream } from "../../api/types";
import { stripAnsi } from "./ansi";
import { detectLevel, type Level } from "./level";

export const MAX_LINES = 20_000;
const TAIL = 200;
/** How long the core may hold a request with nothing new (the core caps it at its own limit). */
export const WAIT_SECS = 20;
/** Least time between the starts of two requests: a chatty source is read in batches. */
export const MIN_PERIOD_MS = 150;
const RETRY_MS = 3000;
const NOT_FOUND_RETRY_MS = 5000;

export interface LineEntry {
  kind: "line";
  /** Unique within the page: `${source}#${n}`. */
  key: string;
  /** Position in this feed, growing by one per entry (lines and markers). */
  n: number;
  source: string;
  ts: string;
  /** `ts`, or the ts of the line before when it has none, for interleaving. */
  order: string;
  stream: LogStream;
  text: string;
  /** The text without escape sequences (filter, level and download use it). */
  plain: string;
  level: Level | null;
}

export interface SkippedEntry {
  kind: "skipped";
  key: string;
  n: number;
  source: string;
  order: string;
  count: number;
}

export type Entry = LineEntry | SkippedEntry;

export type FeedStatus =
  | { kind: "starting" }
  | { kind: "pending" }
  | { kind: "live" }
  | { kind: "not-found" }
  | { kind: "error"; message: string };

export class LogFeed {
  readonly source: string;
  entries: Entry[] = [];
  /** Entries dropped from the front to keep the buffer at MAX_LINES. */
  dropped = 0;
  /** Entries ever appended; the next entry's `n`. */
  total = 0;
  status: FeedStatus = { kind: "starting" };
  /** The agent's error for the source (e.g. it stopped), while lines still show. */
  sourceError: string | null = null;

  private readonly nodeId: string;
  private cursor: number | null = null;
  private lastOrder = "";
  private stopped = true;
  private timer: number | undefined;
  private controller: AbortController | null = null;
  private readonly listeners = new Set<() => void>();
  private frame: number | null = null;

  constructor(nodeId: string, source: string) {
    this.nodeId = nodeId;
    this.source = source;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.poll();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
    this.controller?.abort();
    this.controller = null;
    if (this.frame !== null) window.cancelAnimationFrame(this.frame);
    this.frame = null;
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    this.controller = new AbortController();
    // After a restart (bad cursor), ask for no history: the lines already shown would repeat.
    const tail = this.total > 0 ? 0 : TAIL;
    const started = performance.now();
    let delay = MIN_PERIOD_MS;
    try {
      const res = await logsApi.poll(this.nodeId, this.source, this.cursor, tail, this.controller.signal, WAIT_SECS);
      if (this.stopped) return;
      this.cursor = res.cursor;
      if (res.skipped > 0) this.appendSkipped(res.skipped);
      for (const line of res.lines) this.appendLine(line.ts, line.stream, line.text);
      this.sourceError = res.error;
      this.status = res.pending ? { kind: "pending" } : { kind: "live" };
      if (res.more) delay = 0;
    } catch (err) {
      if (this.stopped || isAbort(err)) return;
      const error = toApiError(err);
      if (error.status === 400 && error.field === "cursor") {
        this.cursor = null;
        delay = 0;
      } else if (error.status === 404) {
        this.status = { kind: "not-found" };
        delay = NOT_FOUND_RETRY_MS;
      } else {
        this.status = { kind: "error", message: error.message };
        delay = error instanceof ApiError && error.code === "session_expired" ? -1 : RETRY_MS;
      }
    }
    this.changed();
    // The next long-poll goes out at once, but not sooner than MIN_PERIOD_MS after this one
    // started; the retry waits count from its end.
    if (delay === MIN_PERIOD_MS) delay = Math.max(0, MIN_PERIOD_MS - (performance.now() - started));
    if (!this.stopped && delay >= 0) this.timer = window.setTimeout(() => void this.poll(), delay);
  }

  private appendLine(ts: string, stream: LogStream, text: string): void {
    if (ts !== "") this.lastOrder = orderKey(ts);
    const plain = stripAnsi(text);
    const n = this.total++;
    this.entries.push({
      kind: "line",
      key: `${this.source}#${n}`,
      n,
      source: this.source,
      ts,
      order: this.lastOrder,
      stream,
      text,
      plain,
      level: detectLevel(plain),
    });
    this.trim();
  }

  private appendSkipped(count: number): void {
    const n = this.total++;
    this.entries.push({ kind: "skipped", key: `${this.source}#${n}`, n, source: this.source, order: this.lastOrder, count });
    this.trim();
  }

  private trim(): void {
    const over = this.entries.length - MAX_LINES;
    if (over <= 0) return;
    // Cut in chunks (5 %), not per line, so a busy source does not copy the array for every line.
    const cut = Math.max(over, Math.floor(MAX_LINES / 20));
    this.entries = this.entries.slice(cut);
    this.dropped += cut;
  }

  private changed(): void {
    // A new array identity per change, so views memoising on it recompute.
    this.entries = this.entries.slice();
    if (this.frame !== null) return;
    this.frame = window.requestAnimationFrame(() => {
      this.frame = null;
      for (const listener of this.listeners) listener();
    });
  }
}

/**
 * A timestamp that sorts as text: Docker trims trailing zeros of the nanoseconds
 * (`…:05.1Z` vs `…:05.123Z`), so the fraction is padded to nine digits.
 */
export function orderKey(ts: string): string {
  const m = ts.match(/^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$/);
  if (m === null) return ts;
  return `${m[1] ?? ""}.${(m[2] ?? "").padEnd(9, "0").slice(0, 9)}${m[3] ?? ""}`;
}
