// Metrics endpoints: history as columnar arrays (GET /api/agents/{id}/metrics and per container)
// and the node's newest sample (GET /api/agents/{id}/metrics/latest).

import { call } from "./client";

export type MetricsRange = "1h" | "24h" | "7d" | "30d" | "1y";
export const METRICS_RANGES: readonly MetricsRange[] = ["1h", "24h", "7d", "30d", "1y"];

/** One series: one entry per bucket of `t`, null where no data. @openapi-response SeriesView */
export interface SeriesView {
  avg: (number | null)[];
  min: (number | null)[];
  max: (number | null)[];
}

/** @openapi-response MetricsView */
export interface MetricsView {
  range: string;
  resolution_s: number;
  t: number[];
  series: Record<string, SeriesView>;
}

/** @openapi-response ContainerSample */
export interface ContainerSample {
  name: string;
  id: string;
  image: string;
  state: string;
  status: string;
  values: Record<string, number>;
}

/** @openapi-response MetricsSample */
export interface MetricsSample {
  t: number;
  host: Record<string, number>;
  containers: ContainerSample[];
}

/** @openapi-response LatestView */
export interface LatestView {
  sample: MetricsSample | null;
}

function query(range: MetricsRange, series: readonly string[]): Record<string, string> {
  return series.length > 0 ? { range, series: series.join(",") } : { range };
}

export const metricsApi = {
  node: (id: string, range: MetricsRange, series: readonly string[], signal?: AbortSignal): Promise<MetricsView> =>
    call<MetricsView>("GET", "/api/agents/{id}/metrics", { path: { id }, query: query(range, series), ...(signal ? { signal } : {}) }),
  container: (id: string, name: string, range: MetricsRange, series: readonly string[], signal?: AbortSignal): Promise<MetricsView> =>
    call<MetricsView>("GET", "/api/agents/{id}/containers/{name}/metrics", {
      path: { id, name },
      query: query(range, series),
      ...(signal ? { signal } : {}),
    }),
  latest: (id: string, signal?: AbortSignal): Promise<LatestView> =>
    call<LatestView>("GET", "/api/agents/{id}/metrics/latest", { path: { id }, ...(signal ? { signal } : {}) }),
};
