// A metrics history that stays live without refetching it: the 1 h range has 3600 one-second
// buckets per series (avg, min and max each), a megabyte or more for a node's charts, so it is
// fetched in full only every 30 s, and in between the node's newest sample (polled every 2 s
// anyway, for the tables) is appended as the next bucket. Longer ranges have buckets of a minute
// or more and are simply refetched at their own pace.

import { useEffect, useState } from "react";
import type { MetricsRange, MetricsView, SeriesView } from "../../api/metrics";
import type { ApiError } from "../../api/error";
import { usePoll } from "../../hooks/usePoll";
import { historyPollMs } from "./RangePicker";

/** Full refetch of the 1 h range; the newest sample fills the buckets in between. */
const FULL_RELOAD_1H_MS = 30_000;

export interface LiveSample {
  /** Unix seconds. */
  t: number;
  values: Record<string, number>;
}

export interface LiveHistory {
  data: MetricsView | null;
  error: ApiError | null;
  reload: () => void;
}

export function useLiveHistory(
  load: (signal: AbortSignal) => Promise<MetricsView>,
  range: MetricsRange,
  key: string,
  sample: LiveSample | null,
): LiveHistory {
  const live = range === "1h";
  const full = usePoll(load, live ? FULL_RELOAD_1H_MS : historyPollMs(range), { key: `${key}:${range}` });
  // The fetched view the live one grew from: until the effect below has caught up with a new
  // fetch (or another range), the fetch itself is shown, never a view of the previous one.
  const [grown, setGrown] = useState<{ base: MetricsView | null; view: MetricsView | null }>({ base: null, view: null });

  useEffect(() => setGrown({ base: full.data, view: full.data }), [full.data]);
  const t = sample?.t;
  const values = sample?.values;
  useEffect(() => {
    if (!live || t === undefined || values === undefined) return;
    setGrown((prev) => (prev.view === null ? prev : { base: prev.base, view: appendSample(prev.view, t, values) }));
  }, [live, t, values]);

  return { data: grown.base === full.data ? grown.view : full.data, error: full.error, reload: full.reload };
}

/**
 * The view moved on to the bucket of `t` (1 s buckets): older buckets drop off the front, any
 * skipped seconds are gaps, and the series the view has take the sample's values. A sample for a
 * bucket the view already has fills it where it is still empty (the full fetch may have been
 * answered before that second was stored).
 */
export function appendSample(view: MetricsView, t: number, values: Record<string, number>): MetricsView {
  const last = view.t.at(-1);
  if (view.resolution_s !== 1 || last === undefined) return view;
  if (t <= last) return fillSample(view, view.t.length - 1 - (last - t), values);
  const add = Math.min(t - last, view.t.length);
  const times = Array.from({ length: add }, (_, i) => t - add + 1 + i);
  const grow = (col: (number | null)[], v: number | null) => [...col.slice(add), ...Array<null>(add - 1).fill(null), v];
  const series: Record<string, SeriesView> = {};
  for (const [name, s] of Object.entries(view.series)) {
    const v = values[name] ?? null;
    series[name] = { avg: grow(s.avg, v), min: grow(s.min, v), max: grow(s.max, v) };
  }
  return { ...view, t: [...view.t.slice(add), ...times], series };
}

function fillSample(view: MetricsView, i: number, values: Record<string, number>): MetricsView {
  if (i < 0) return view;
  let changed = false;
  const series: Record<string, SeriesView> = {};
  for (const [name, s] of Object.entries(view.series)) {
    const v = values[name];
    if (v === undefined || s.avg[i] !== null) {
      series[name] = s;
      continue;
    }
    const set = (col: (number | null)[]) => col.map((x, j) => (j === i ? v : x));
    series[name] = { avg: set(s.avg), min: set(s.min), max: set(s.max) };
    changed = true;
  }
  return changed ? { ...view, series } : view;
}

/** How often the pages poll the node's newest sample: every second while it feeds a live chart. */
export function latestPollMs(range: MetricsRange): number {
  return range === "1h" ? 1000 : 2000;
}
