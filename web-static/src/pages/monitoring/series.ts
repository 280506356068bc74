// Turning a MetricsView (columnar history) into chart lines.

import type { MetricsView } from "../../api/metrics";
import type { ChartLine } from "./Chart";

/** The series `pick` gives a label (null: not on this chart), sorted by label. */
export function lines(view: MetricsView | null, pick: (name: string) => string | null): ChartLine[] {
  if (view === null) return [];
  return Object.entries(view.series)
    .map(([name, s]) => ({ label: pick(name), values: s.avg }))
    .filter((l): l is ChartLine => l.label !== null)
    .sort((a, b) => a.label.localeCompare(b.label));
}

/** Named series in the given order and with the given labels, skipping the ones the view lacks. */
export function named(view: MetricsView | null, wanted: readonly (readonly [string, string])[]): ChartLine[] {
  if (view === null) return [];
  return wanted.flatMap(([name, label]) => {
    const s = view.series[name];
    return s === undefined ? [] : [{ label, values: s.avg }];
  });
}

/** Sum of several series (e.g. rx over all interfaces), null where all are null. */
export function summed(view: MetricsView | null, match: (name: string) => boolean, label: string): ChartLine[] {
  if (view === null) return [];
  const picked = Object.entries(view.series).filter(([name]) => match(name));
  if (picked.length === 0) return [];
  const values = view.t.map((_, i) => {
    let total: number | null = null;
    for (const [, s] of picked) {
      const v = s.avg[i];
      if (v !== null && v !== undefined) total = (total ?? 0) + v;
    }
    return total;
  });
  return [{ label, values }];
}
