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
}

export function Chart({ title, t, lines, unit, height = 180 }: ChartProps) {
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
        })),
      ],
      axes: [{}, { size: 70, values: (_u: uPlot, vals: number[]) => vals.map((v) => unitRef.current(v)) }],
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
  }, [layout, height]);

  useEffect(() => {
    plot.current?.setData([t, ...lines.map((l) => l.values)] as uPlot.AlignedData);
  }, [t, lines, layout]);

  return (
    <section className="chart" data-testid="metrics-chart" data-chart={title} data-points={points}>
      <h3>{title}</h3>
      {layout === "" && (
        <p className="chart-empty muted" style={{ height }}>
          No data in this range.
        </p>
      )}
      <div ref={host} />
    </section>
  );
}
