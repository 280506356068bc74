// One log line (or marker) as the view shows it. Text is rendered as React text children only:
// ANSI colours become <span> classes or an inline rgb() colour computed from numbers.

import { memo, type CSSProperties } from "react";
import { parseAnsi, type AnsiSegment } from "./ansi";
import type { Entry } from "./feed";

export interface LineOptions {
  timestamps: boolean;
  stripAnsi: boolean;
  /** Tag the line with its source (merged view). */
  showSource: boolean;
  /** Colour of the source tag, by source. */
  sourceIndex: number;
}

export const LogLineRow = memo(function LogLineRow({ entry, options }: { entry: Entry; options: LineOptions }) {
  if (entry.kind === "skipped") {
    return (
      <div className="log-marker" data-testid="logs-skipped-marker" data-source={entry.source}>
        {options.showSource && <SourceTag source={entry.source} index={options.sourceIndex} />}
        {entry.count.toLocaleString()} {entry.count === 1 ? "line" : "lines"} skipped
      </div>
    );
  }
  const className = ["log-line", `log-${entry.stream}`, entry.level ? `log-level-${entry.level}` : ""].filter(Boolean).join(" ");
  return (
    <div className={className} data-testid="logs-line" data-stream={entry.stream} data-source={entry.source} data-level={entry.level ?? undefined}>
      {options.timestamps && (
        <time className="log-ts" dateTime={entry.ts || undefined} title={entry.ts}>
          {formatTs(entry.ts)}
        </time>
      )}
      {options.showSource && <SourceTag source={entry.source} index={options.sourceIndex} />}
      <span className="log-text">{options.stripAnsi ? entry.plain : <Segments segments={parseAnsi(entry.text)} />}</span>
    </div>
  );
});

function SourceTag({ source, index }: { source: string; index: number }) {
  return (
    <span className={`log-source log-source-${index % 6}`} title={source}>
      {source}
    </span>
  );
}

function Segments({ segments }: { segments: AnsiSegment[] }) {
  return (
    <>
      {segments.map((seg, i) => {
        if (seg.style === null) return <span key={i}>{seg.text}</span>;
        const { fg, bg, bold, dim, italic, underline } = seg.style;
        const classes = [
          typeof fg === "number" ? `ansi-fg-${fg}` : "",
          typeof bg === "number" ? `ansi-bg-${bg}` : "",
          bold ? "ansi-bold" : "",
          dim ? "ansi-dim" : "",
          italic ? "ansi-italic" : "",
          underline ? "ansi-underline" : "",
        ].filter(Boolean);
        const style: CSSProperties = {};
        if (typeof fg === "string") style.color = fg;
        if (typeof bg === "string") style.backgroundColor = bg;
        return (
          <span key={i} className={classes.join(" ") || undefined} style={typeof fg === "string" || typeof bg === "string" ? style : undefined}>
            {seg.text}
          </span>
        );
      })}
    </>
  );
}

/** `HH:MM:SS.mmm` in local time, with the date when it is not today; the raw value if unparsable. */
export function formatTs(ts: string): string {
  if (ts === "") return "—";
  const date = new Date(ts.replace(/(\.\d{3})\d+/, "$1"));
  if (Number.isNaN(date.getTime())) return ts;
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
  const now = new Date();
  const sameDay = date.getFullYear() === now.getFullYear() && date.getMonth() === now.getMonth() && date.getDate() === now.getDate();
  return sameDay ? time : `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time}`;
}
