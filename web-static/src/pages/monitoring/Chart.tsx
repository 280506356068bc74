// One uPlot time-series chart. The plot is created once per series layout and fed new data on
// every poll (setData), so a 2 s refresh redraws without rebuilding the canvas.

import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface ChartLine {
  label: string;
  values: (number | null)[];
}

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2"];

export function Chart({ title, t, lines, unit }: { title: string; t: number[]; lines: ChartLine[]; unit: (v: number) => string }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const layout = lines.map((l) => l.label).join("|");
  const unitRef = useRef(unit);
  unitRef.current = unit;

  useEffect(() => {
    const el = host.current;
    if (el === null) return;
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 300),
      height: 180,
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
    const resize = new ResizeObserver(() => p.setSize({ width: Math.max(el.clientWidth, 300), height: 180 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      p.destroy();
      plot.current = null;
    };
  }, [layout]);

  useEffect(() => {
    plot.current?.setData([t, ...lines.map((l) => l.values)] as uPlot.AlignedData);
  }, [t, lines]);

  return (
    <section className="chart" data-testid="metrics-chart" data-chart={title}>
      <h3>{title}</h3>
      <div ref={host} />
    </section>
  );
}
