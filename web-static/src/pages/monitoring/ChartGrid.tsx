// The chart grid of a monitoring page (node, container, VM), with the refresh error above it.

import { Chart, type ChartLine } from "./Chart";
import { formatBytes, formatRate } from "./format";

export interface ChartSpec {
  title: string;
  lines: ChartLine[];
  unit: (v: number) => string;
}

interface ChartGridProps {
  charts: ChartSpec[];
  t: number[];
  /** The first answer has not come yet. */
  pending: boolean;
  error: Error | null;
}

export function ChartGrid({ charts, t, pending, error }: ChartGridProps) {
  return (
    <>
      {error !== null && (
        <div className="banner banner-error" role="status">
          Could not refresh the metrics: {error.message} Retrying…
        </div>
      )}
      <div className="charts">
        {charts.map((c) => (
          // Bytes and byte rates get power-of-two ticks (round KiB/MiB/GiB labels).
          <Chart key={c.title} title={c.title} t={t} lines={c.lines} unit={c.unit} binary={c.unit === formatBytes || c.unit === formatRate} pending={pending} />
        ))}
      </div>
    </>
  );
}
