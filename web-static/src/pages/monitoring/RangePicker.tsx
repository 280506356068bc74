// The time-range buttons shared by the node, container and VM pages, and how often each range
// is worth polling: the 1 h range has 1 s buckets and is live; the others have buckets of a minute
// or more, so polling them every 2 s would only fetch the same figures again.

import { METRICS_RANGES, type MetricsRange } from "../../api/metrics";

const POLL_MS: Record<MetricsRange, number> = { "1h": 2000, "24h": 15_000, "7d": 60_000, "30d": 60_000, "1y": 300_000 };

export function historyPollMs(range: MetricsRange): number {
  return POLL_MS[range];
}

export function RangePicker({ range, onChange }: { range: MetricsRange; onChange: (range: MetricsRange) => void }) {
  return (
    <div className="range-picker" role="group" aria-label="Time range">
      {METRICS_RANGES.map((r) => (
        <button
          key={r}
          type="button"
          className={`btn btn-small ${r === range ? "btn-primary" : "btn-secondary"}`}
          data-testid="metrics-range"
          data-range={r}
          aria-pressed={r === range}
          onClick={() => onChange(r)}
        >
          {r}
        </button>
      ))}
    </div>
  );
}
