// One uPlot time-series chart. The plot is created once per series layout and fed new data on
// every poll (setData), so a 2 s refresh redraws without rebuilding the canvas. `data-points`
// on the section counts the non-null values handed to uPlot, for tests and for the empty state.

import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface ChartLine {
  label: string;
  values: (number | null)[];
}

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2"];

interface ChartProps {
  title: string;
  t: number[];
  lines: ChartLine[];
  unit: (v: number) => string;
  /** Plot height in pixels (180 by default; small custom-metric charts use less). */
  height?: number;
  /** The first answer has not come yet: say so instead of "no data". */
  pending?: boolean;
  /** Bytes or bytes/s: ticks at powers of two, so the KiB/MiB/GiB labels come out round. */
  binary?: boolean;
}

const BINARY_INCRS = Array.from({ length: 51 }, (_, i) => 2 ** i);

/**
 * A gap of one or two buckets (a sample the live feed skipped, a late second) is bridged; longer
 * ones (the agent was down) stay breaks in the line.
 */
function bridgeShortGaps(u: uPlot, _series: number, _i0: number, _i1: number, gaps: uPlot.Series.Gaps): uPlot.Series.Gaps {
  const buckets = u.data[0].length;
  const bucketPx = buckets > 1 ? u.bbox.width / (buckets - 1) : Infinity;
  return gaps.filter(([from, to]) => to - from > 3 * bucketPx);
}

function yRange(min: number | null, max: number | null): uPlot.Range.MinMax {
  const lo = Math.min(0, min ?? 0);
  const hi = Math.max(max ?? 0, lo);
  return hi === lo ? [lo, lo + 100] : uPlot.rangeNum(lo, hi, 0.1, true);
}

/** Width of the y axis: its longest label (about 7 px a character at uPlot's 12 px font) plus the ticks. */
function axisWidth(_u: uPlot, values: string[] | null): number {
  const longest = (values ?? []).reduce((n, v) => Math.max(n, String(v).length), 0);
  return Math.max(40, 16 + 7 * longest);
}

export function Chart({ title, t, lines, unit, height = 180, pending = false, binary = false }: ChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const layout = lines.map((l) => l.label).join("|");
  const unitRef = useRef(unit);
  unitRef.current = unit;
  const points = lines.reduce((sum, l) => sum + l.values.reduce<number>((n, v) => (v === null ? n : n + 1), 0), 0);

  useEffect(() => {
    const el = host.current;
    if (el === null || layout === "") return;
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 240),
      height,
      series: [
        {},
        ...layout.split("|").map((label, i) => ({
          label,
          stroke: COLORS[i % COLORS.length] ?? "#2563eb",
          width: 1.5,
          value: (_u: uPlot, v: number | null) => (v === null ? "—" : unitRef.current(v)),
          gaps: bridgeShortGaps,
        })),
      ],
      // Every figure charted is a level or a rate from zero, so zero stays in view: a flat
      // 12.9 % line then reads as 12.9 %, not as a zoomed wiggle with identical tick labels.
      scales: { y: { range: (_u: uPlot, min: number | null, max: number | null) => yRange(min, max) } },
      axes: [
        {},
        {
          size: axisWidth,
          values: (_u: uPlot, vals: number[]) => vals.map((v) => unitRef.current(v)),
          ...(binary ? { incrs: BINARY_INCRS } : {}),
        },
      ],
      // A 1 h range has 3600 buckets across a few hundred pixels, most of them null after a
      // restart: hovering snaps to the nearest real point within a few pixels instead of "—".
      cursor: { hover: { skip: [null, undefined], prox: 8 } },
    };
    const p = new uPlot(opts, [[]], el);
    plot.current = p;
    const resize = new ResizeObserver(() => p.setSize({ width: Math.max(el.clientWidth, 240), height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      p.destroy();
      plot.current = null;
    };
  }, [layout, height, binary]);

  useEffect(() => {
    plot.current?.setData([t, ...lines.map((l) => l.values)] as uPlot.AlignedData);
  }, [t, lines, layout]);

  return (
    <section className="chart" data-testid="metrics-chart" data-chart={title} data-points={points}>
      <h3>{title}</h3>
      {layout === "" && (
        <p className="chart-empty muted" style={{ height }}>
          {pending ? "Loading…" : "No data in this range."}
        </p>
      )}
      <div ref={host} />
    </section>
  );
}
