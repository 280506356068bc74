// Metrics endpoints: history as columnar arrays (GET /api/agents/{id}/metrics, per container and
// per VM), the node's newest sample (GET /api/agents/{id}/metrics/latest) and every node at a
// glance (GET /api/metrics/overview).

import { call } from "./client";

export type MetricsRange = "1h" | "24h" | "7d" | "30d" | "1y";
export const METRICS_RANGES: readonly MetricsRange[] = ["1h", "24h", "7d", "30d", "1y"];

/** Explicit series per history query the core accepts (`MAX_SERIES` in core/src/api/metrics.rs). */
export const MAX_SERIES_PER_QUERY = 64;

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

/**
 * How the last poll of a container's custom metrics endpoint went (containers labelled
 * `capstan.metrics.port`). `series` and `dropped` are always written by the core.
 * @openapi-response CustomMetricsStatus
 * @openapi-narrows dropped,last_ok
 */
export interface CustomMetricsStatus {
  url: string;
  /** Absent or "" when the last poll succeeded. */
  error?: string;
  /** Series reported (at most the per-container cap). */
  series: number;
  /** Series left out because the endpoint offered more than the cap. */
  dropped: number;
  /** Unix seconds of the last successful poll (0: never). */
  last_ok: number;
}

/**
 * One running container. The core always writes `restarts` and `values` (serde defaults only
 * matter to older agents), so the client narrows them.
 * @openapi-response ContainerSample
 * @openapi-narrows restarts,values
 */
export interface ContainerSample {
  name: string;
  id: string;
  image: string;
  state: string;
  status: string;
  /** `starting`, `healthy`, `unhealthy`; absent or "" without a health check. */
  health?: string;
  restarts: number;
  values: Record<string, number>;
  custom?: CustomMetricsStatus | null;
}

/**
 * One QEMU/KVM guest. @openapi-response VmSample
 * @openapi-narrows vcpus,values
 */
export interface VmSample {
  name: string;
  /** `qemu` (process) or `libvirt`. */
  source: string;
  state: string;
  /** 0 when unknown. */
  vcpus: number;
  values: Record<string, number>;
}

/**
 * The core always writes `host` and `containers`; `vms` is left out when there are none.
 * @openapi-response MetricsSample
 * @openapi-narrows host,containers
 */
export interface MetricsSample {
  t: number;
  host: Record<string, number>;
  containers: ContainerSample[];
  vms?: VmSample[];
}

/** @openapi-response LatestView */
export interface LatestView {
  sample: MetricsSample | null;
}

/** One node at a glance; the live figures are null before its first sample. @openapi-response OverviewNode */
export interface OverviewNode {
  id: string;
  name: string;
  online: boolean;
  edge: boolean;
  /** RFC 3339 UTC of the node's last beat; null until its first. */
  last_seen_at: string | null;
  /** Unix seconds of the newest sample. */
  t: number | null;
  cpu_pct: number | null;
  mem_pct: number | null;
  /** The fullest filesystem's used %. */
  disk_pct: number | null;
  load1: number | null;
  /** rx + tx over every interface but loopback, bytes/s. */
  net_bps: number | null;
  containers: number;
  unhealthy: number;
  vms: number;
  /** Last half hour, 1 min buckets; null is a gap. */
  spark_t: number[];
  spark_cpu: (number | null)[];
  spark_mem: (number | null)[];
}

/** @openapi-response OverviewView */
export interface OverviewView {
  nodes: OverviewNode[];
}

function query(range: MetricsRange, series: readonly string[]): Record<string, string> {
  return series.length > 0 ? { range, series: series.join(",") } : { range };
}

const withSignal = (signal?: AbortSignal) => (signal ? { signal } : {});

export const metricsApi = {
  node: (id: string, range: MetricsRange, series: readonly string[], signal?: AbortSignal): Promise<MetricsView> =>
    call<MetricsView>("GET", "/api/agents/{id}/metrics", { path: { id }, query: query(range, series), ...withSignal(signal) }),
  container: (id: string, name: string, range: MetricsRange, series: readonly string[], signal?: AbortSignal): Promise<MetricsView> =>
    call<MetricsView>("GET", "/api/agents/{id}/containers/{name}/metrics", {
      path: { id, name },
      query: query(range, series),
      ...withSignal(signal),
    }),
  vm: (id: string, name: string, range: MetricsRange, series: readonly string[], signal?: AbortSignal): Promise<MetricsView> =>
    call<MetricsView>("GET", "/api/agents/{id}/vms/{name}/metrics", {
      path: { id, name },
      query: query(range, series),
      ...withSignal(signal),
    }),
  latest: (id: string, signal?: AbortSignal): Promise<LatestView> =>
    call<LatestView>("GET", "/api/agents/{id}/metrics/latest", { path: { id }, ...withSignal(signal) }),
  overview: (signal?: AbortSignal): Promise<OverviewView> => call<OverviewView>("GET", "/api/metrics/overview", withSignal(signal)),
};

/**
 * A node's history for many named series: the core takes at most MAX_SERIES_PER_QUERY names per
 * query, so larger lists go out as parallel queries merged into one view.
 */
export async function nodeHistory(id: string, range: MetricsRange, series: readonly string[], signal?: AbortSignal): Promise<MetricsView> {
  if (series.length <= MAX_SERIES_PER_QUERY) return metricsApi.node(id, range, series, signal);
  const chunks: string[][] = [];
  for (let i = 0; i < series.length; i += MAX_SERIES_PER_QUERY) chunks.push(series.slice(i, i + MAX_SERIES_PER_QUERY));
  const views = await Promise.all(chunks.map((chunk) => metricsApi.node(id, range, chunk, signal)));
  // The queries may straddle a bucket boundary; keep the newest timeline and align the others
  // to it by bucket start.
  const newest = views.reduce((a, b) => ((b.t.at(-1) ?? 0) > (a.t.at(-1) ?? 0) ? b : a));
  const merged: Record<string, SeriesView> = {};
  for (const view of views) {
    if (view === newest) {
      Object.assign(merged, view.series);
      continue;
    }
    const index = new Map(view.t.map((t, i) => [t, i]));
    const pick = (col: (number | null)[]) => newest.t.map((t) => {
      const i = index.get(t);
      return i === undefined ? null : (col[i] ?? null);
    });
    for (const [name, s] of Object.entries(view.series)) merged[name] = { avg: pick(s.avg), min: pick(s.min), max: pick(s.max) };
  }
  return { ...newest, series: merged };
}
