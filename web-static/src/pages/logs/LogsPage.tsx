// Live logs of one node (`/nodes/{id}/logs?source=a&source=b`): one or more sources (containers,
// `nginx:access`, `nginx:error`) side by side in columns or merged by timestamp, following the end
// unless paused (polling goes on while paused; the view shows how many lines arrived), filtered by
// text or /regex/, with stderr and log levels coloured, ANSI colours rendered or stripped, and a
// download of everything loaded.

import { useEffect, useLayoutEffect, useMemo, useRef, useState, type FormEvent, type UIEvent } from "react";
import { agentsApi } from "../../api/endpoints";
import { metricsApi } from "../../api/metrics";
import { Link, navigate, useLocation } from "../../app/router";
import { usePoll } from "../../hooks/usePoll";
import { LogFeed, MAX_LINES, type Entry, type FeedStatus } from "./feed";
import { LogLineRow, type LineOptions } from "./LogLineRow";

const NGINX_SOURCES = ["nginx:access", "nginx:error"];
/** Lines rendered per pane at first; older loaded lines show on demand (and are in the download). */
const RENDER_STEP = 1000;

type Matcher = { test: (text: string) => boolean } | null;

function useMatcher(filter: string, regex: boolean): { matcher: Matcher; error: string | null } {
  return useMemo(() => {
    if (filter === "") return { matcher: null, error: null };
    if (!regex) {
      const needle = filter.toLowerCase();
      return { matcher: { test: (text: string) => text.toLowerCase().includes(needle) }, error: null };
    }
    try {
      const re = new RegExp(filter, "i");
      return { matcher: { test: (text: string) => re.test(text) }, error: null };
    } catch (err) {
      return { matcher: null, error: err instanceof Error ? err.message : String(err) };
    }
  }, [filter, regex]);
}

function logsPath(nodeId: string, sources: string[]): string {
  const query = new URLSearchParams(sources.map((s) => ["source", s])).toString();
  return `/nodes/${encodeURIComponent(nodeId)}/logs${query === "" ? "" : `?${query}`}`;
}

export function LogsPage({ nodeId }: { nodeId: string }) {
  const { search } = useLocation();
  const sources = useMemo(() => [...new Set(new URLSearchParams(search).getAll("source").filter((s) => s !== ""))], [search]);
  const sourcesKey = sources.join("\n");

  const [nodeName, setNodeName] = useState<string | null>(null);
  const [draft, setDraft] = useState("");
  const [merge, setMerge] = useState(false);
  const [paused, setPaused] = useState<Map<string, number> | null>(null);
  const [timestamps, setTimestamps] = useState(true);
  const [strip, setStrip] = useState(false);
  const [filter, setFilter] = useState("");
  const [regex, setRegex] = useState(false);
  const [limit, setLimit] = useState(RENDER_STEP);
  const { matcher, error: filterError } = useMatcher(filter, regex);

  useEffect(() => {
    const controller = new AbortController();
    agentsApi
      .get(nodeId)
      .then((agent) => {
        if (!controller.signal.aborted) setNodeName(agent.name);
      })
      .catch(() => undefined);
    return () => controller.abort();
  }, [nodeId]);

  // Containers to offer, from the node's newest metrics sample (when the core has metrics).
  const latest = usePoll((signal) => metricsApi.latest(nodeId, signal), 5000, { key: nodeId, stopOn: (e) => e.status === 404 || e.status === 405 });
  const containers = useMemo(() => (latest.data?.sample?.containers ?? []).map((c) => c.name).sort((a, b) => a.localeCompare(b)), [latest.data]);

  // One feed per source, started while the view shows it and stopped when it closes.
  const feedsRef = useRef(new Map<string, LogFeed>());
  const [feeds, setFeeds] = useState<LogFeed[]>([]);
  useEffect(() => {
    const map = feedsRef.current;
    const wanted = sourcesKey === "" ? [] : sourcesKey.split("\n");
    for (const source of wanted) {
      if (!map.has(source)) {
        const feed = new LogFeed(nodeId, source);
        map.set(source, feed);
        feed.start();
      }
    }
    for (const [source, feed] of map) {
      if (!wanted.includes(source)) {
        feed.stop();
        map.delete(source);
      }
    }
    setFeeds(wanted.map((s) => map.get(s)).filter((f): f is LogFeed => f !== undefined));
  }, [nodeId, sourcesKey]);
  useEffect(() => {
    const map = feedsRef.current;
    return () => {
      for (const feed of map.values()) feed.stop();
      map.clear();
    };
  }, []);

  const [, setTick] = useState(0);
  useEffect(() => {
    const unsubscribe = feeds.map((feed) => feed.subscribe(() => setTick((t) => t + 1)));
    return () => unsubscribe.forEach((u) => u());
  }, [feeds]);

  const setSources = (next: string[]) => navigate(logsPath(nodeId, next), { replace: true });
  const addSource = (source: string) => {
    const name = source.trim();
    if (name === "" || sources.includes(name)) return;
    setSources([...sources, name]);
  };
  const onAdd = (event: FormEvent) => {
    event.preventDefault();
    addSource(draft);
    setDraft("");
  };

  const togglePause = () => setPaused((current) => (current === null ? new Map(feeds.map((f) => [f.source, f.total])) : null));

  // What each feed shows: up to the pause point, matching the filter (markers always).
  const visible = (feed: LogFeed): Entry[] => {
    const mark = paused?.get(feed.source);
    const entries = mark === undefined ? feed.entries : feed.entries.filter((e) => e.n < mark);
    if (matcher === null) return entries;
    return entries.filter((e) => e.kind !== "line" || matcher.test(e.plain));
  };
  const perFeed = feeds.map((feed) => ({ feed, entries: visible(feed) }));
  const newLines = paused === null ? 0 : feeds.reduce((sum, f) => sum + Math.max(0, f.total - (paused.get(f.source) ?? f.total)), 0);
  const indexOf = new Map(feeds.map((f, i) => [f.source, i]));
  const merged = merge && feeds.length > 0 ? interleave(perFeed.map((p) => p.entries)) : [];

  // Follow the end unless paused; scrolling up (away from the end) pauses, as reading back means.
  const panesRef = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    if (paused !== null) return;
    for (const pane of panesRef.current?.querySelectorAll<HTMLElement>(".logs-pane-body") ?? []) pane.scrollTop = pane.scrollHeight;
  });
  const onPaneScroll = (event: UIEvent<HTMLDivElement>) => {
    const pane = event.currentTarget;
    if (paused === null && pane.scrollHeight - pane.scrollTop - pane.clientHeight > 80) togglePause();
  };

  const download = () => {
    const all = interleave(feeds.map((f) => f.entries));
    const tagged = feeds.length > 1;
    const text = all
      .map((e) => {
        const tag = tagged ? `[${e.source}] ` : "";
        if (e.kind === "skipped") return `${tag}-- ${e.count} lines skipped --`;
        return `${e.ts === "" ? "" : `${e.ts} `}${tag}${e.stream === "stderr" ? "stderr " : ""}${e.plain}`;
      })
      .join("\n");
    const blob = new Blob([text + (text === "" ? "" : "\n")], { type: "text/plain;charset=utf-8" });
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
    a.download = `${(nodeName ?? nodeId).replace(/[^\w.-]+/g, "_")}-${sources.map((s) => s.replace(/[^\w.-]+/g, "_")).join("+") || "logs"}-${stamp}.log`;
    document.body.append(a);
    a.click();
    a.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };

  // Stable option objects, so unchanged lines do not re-render.
  const lineOptions = useMemo(() => {
    const make = (showSource: boolean) =>
      Array.from({ length: Math.max(1, feeds.length) }, (_, i): LineOptions => ({ timestamps, stripAnsi: strip, showSource, sourceIndex: i }));
    return { columns: make(false), merged: make(true) };
  }, [feeds.length, timestamps, strip]);
  const fallbackOptions: LineOptions = { timestamps, stripAnsi: strip, showSource: false, sourceIndex: 0 };
  const offered = [...containers, ...NGINX_SOURCES].filter((s) => !sources.includes(s));

  return (
    <div className="page logs-page" data-testid="logs-view">
      <div className="page-header">
        <div>
          <h1>Logs</h1>
          <p className="muted">
            <Link to="/nodes">Nodes</Link> / <Link to={`/nodes/${encodeURIComponent(nodeId)}`}>{nodeName ?? nodeId}</Link>
          </p>
        </div>
      </div>

      <form className="logs-add" onSubmit={onAdd}>
        <input
          data-testid="logs-source-input"
          list="logs-source-options"
          placeholder="Container, nginx:access, nginx:error"
          aria-label="Log source"
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
        />
        <datalist id="logs-source-options">
          {offered.map((s) => (
            <option key={s} value={s} />
          ))}
        </datalist>
        <button type="submit" className="btn btn-primary btn-small" data-testid="logs-add-source" disabled={draft.trim() === ""}>
          Add source
        </button>
        {offered.length > 0 && (
          <span className="logs-offers">
            {offered.slice(0, 12).map((s) => (
              <button key={s} type="button" className="chip-button" data-testid="logs-offer" data-source={s} onClick={() => addSource(s)}>
                + {s}
              </button>
            ))}
          </span>
        )}
      </form>

      <div className="logs-toolbar" role="toolbar" aria-label="Log view">
        <span className="logs-filter">
          <input
            data-testid="logs-filter"
            type="search"
            placeholder={regex ? "Regular expression" : "Filter"}
            aria-label="Filter lines"
            aria-invalid={filterError !== null ? true : undefined}
            value={filter}
            onChange={(e) => setFilter(e.target.value)}
          />
          <button
            type="button"
            className={`btn btn-small ${regex ? "btn-primary" : "btn-secondary"}`}
            data-testid="logs-regex-toggle"
            aria-pressed={regex}
            title="Treat the filter as a regular expression (case-insensitive)"
            onClick={() => setRegex((r) => !r)}
          >
            /regex/
          </button>
        </span>
        <button
          type="button"
          className={`btn btn-small ${paused === null ? "btn-secondary" : "btn-primary"}`}
          data-testid="logs-pause"
          aria-pressed={paused !== null}
          onClick={togglePause}
        >
          {paused === null ? "Pause" : newLines > 0 ? `Resume (${newLines.toLocaleString()} new ${newLines === 1 ? "line" : "lines"})` : "Resume"}
        </button>
        <label className="logs-check">
          <input type="checkbox" data-testid="logs-timestamps-toggle" checked={timestamps} onChange={(e) => setTimestamps(e.target.checked)} />
          Timestamps
        </label>
        <label className="logs-check">
          <input type="checkbox" data-testid="logs-strip-ansi" checked={strip} onChange={(e) => setStrip(e.target.checked)} />
          Strip ANSI
        </label>
        <label className="logs-check">
          <input type="checkbox" data-testid="logs-merge-toggle" checked={merge} onChange={(e) => setMerge(e.target.checked)} />
          Merge
        </label>
        <button type="button" className="btn btn-secondary btn-small" data-testid="logs-download" onClick={download} disabled={feeds.length === 0}>
          Download
        </button>
      </div>
      {filterError !== null && (
        <p className="form-error" data-testid="logs-filter-error" role="alert">
          Invalid regular expression: {filterError}
        </p>
      )}
      {paused !== null && (
        <p className="notice logs-paused" data-testid="logs-new-lines">
          Paused{newLines > 0 ? `: ${newLines.toLocaleString()} new ${newLines === 1 ? "line" : "lines"}` : ""}. Lines keep arriving and show when you resume.
        </p>
      )}

      {feeds.length === 0 ? (
        <section className="empty-state">
          <h2>No source yet</h2>
          <p className="muted">Type a container name (or pick one above), or add the node's NGINX logs.</p>
        </section>
      ) : merge ? (
        <div className="logs-panes" ref={panesRef}>
          <section className="logs-pane">
            <header className="logs-pane-header">
              {feeds.map((feed, i) => (
                <SourceHeader key={feed.source} feed={feed} index={i} onRemove={() => setSources(sources.filter((s) => s !== feed.source))} />
              ))}
            </header>
            <PaneBody entries={merged} limit={limit} onMore={() => setLimit((l) => l + RENDER_STEP)} options={(e) => lineOptions.merged[indexOf.get(e.source) ?? 0] ?? fallbackOptions} dropped={feeds.reduce((s, f) => s + f.dropped, 0)} onScroll={onPaneScroll} />
          </section>
        </div>
      ) : (
        <div className="logs-panes" ref={panesRef} style={{ gridTemplateColumns: `repeat(${feeds.length}, minmax(0, 1fr))` }}>
          {perFeed.map(({ feed, entries }, i) => (
            <section className="logs-pane" key={feed.source} data-testid="logs-pane" data-source={feed.source}>
              <header className="logs-pane-header">
                <SourceHeader feed={feed} index={i} onRemove={() => setSources(sources.filter((s) => s !== feed.source))} />
              </header>
              <PaneBody entries={entries} limit={limit} onMore={() => setLimit((l) => l + RENDER_STEP)} options={() => lineOptions.columns[i] ?? fallbackOptions} dropped={feed.dropped} onScroll={onPaneScroll} />
            </section>
          ))}
        </div>
      )}
    </div>
  );
}

function SourceHeader({ feed, index, onRemove }: { feed: LogFeed; index: number; onRemove: () => void }) {
  return (
    <span className="logs-source-header" data-testid="logs-source" data-source={feed.source} data-status={feed.status.kind}>
      <span className={`log-source log-source-${index % 6}`}>{feed.source}</span>
      <StatusText status={feed.status} sourceError={feed.sourceError} lines={feed.total} />
      <button type="button" className="icon-button" aria-label={`Close ${feed.source}`} title="Close this source" onClick={onRemove}>
        ×
      </button>
    </span>
  );
}

function StatusText({ status, sourceError, lines }: { status: FeedStatus; sourceError: string | null; lines: number }) {
  switch (status.kind) {
    case "starting":
      return <span className="muted small">connecting…</span>;
    case "pending":
      return <span className="muted small">waiting for the agent…</span>;
    case "not-found":
      return (
        <span className="logs-status-error small" data-testid="logs-source-error">
          no such container
        </span>
      );
    case "error":
      return (
        <span className="logs-status-error small" data-testid="logs-source-error">
          {status.message}
        </span>
      );
    case "live":
      return sourceError !== null ? (
        <span className="logs-status-error small" data-testid="logs-source-error">
          {sourceError}
        </span>
      ) : (
        <span className="muted small">
          live · {lines.toLocaleString()} {lines === 1 ? "line" : "lines"}
        </span>
      );
  }
}

function PaneBody({
  entries,
  limit,
  onMore,
  options,
  dropped,
  onScroll,
}: {
  onScroll: (event: UIEvent<HTMLDivElement>) => void;
  entries: Entry[];
  limit: number;
  onMore: () => void;
  options: (entry: Entry) => LineOptions;
  dropped: number;
}) {
  const hidden = Math.max(0, entries.length - limit);
  const shown = hidden > 0 ? entries.slice(hidden) : entries;
  return (
    <div className="logs-pane-body" role="log" aria-live="off" onScroll={onScroll}>
      {dropped > 0 && (
        <div className="log-marker" data-testid="logs-dropped-marker">
          {dropped.toLocaleString()} older lines dropped (the browser keeps {MAX_LINES.toLocaleString()} per source)
        </div>
      )}
      {hidden > 0 && (
        <button type="button" className="log-more" onClick={onMore}>
          {hidden.toLocaleString()} earlier lines loaded — show more
        </button>
      )}
      {shown.map((entry) => (
        <LogLineRow key={entry.key} entry={entry} options={options(entry)} />
      ))}
      {entries.length === 0 && <div className="log-empty muted">No lines{dropped > 0 ? " left" : " yet"}.</div>}
    </div>
  );
}

/**
 * Interleaves per-source entries by timestamp. Each source keeps its own order (its stdout and
 * stderr timestamps can disagree slightly with the order the lines came in); ties go to the
 * source listed first.
 */
function interleave(lists: Entry[][]): Entry[] {
  if (lists.length === 1) return lists[0] ?? [];
  const heads = lists.map(() => 0);
  const total = lists.reduce((sum, list) => sum + list.length, 0);
  const out: Entry[] = [];
  while (out.length < total) {
    let best = -1;
    let bestEntry: Entry | undefined;
    for (let i = 0; i < lists.length; i++) {
      const entry = lists[i]?.[heads[i] ?? 0];
      if (entry === undefined) continue;
      if (bestEntry === undefined || entry.order < bestEntry.order) {
        best = i;
        bestEntry = entry;
      }
    }
    if (bestEntry === undefined) break;
    out.push(bestEntry);
    heads[best] = (heads[best] ?? 0) + 1;
  }
  return out;
}
