// Node page: live host charts (CPU, memory, disk, network) from the metric rings, polled every
// 2 s, with a range picker; below them the node's running containers from its newest sample.

import { useMemo, useState } from "react";
import { METRICS_RANGES, metricsApi, type ContainerSample, type MetricsRange, type MetricsView } from "../../api/metrics";
import { Link } from "../../app/router";
import { usePoll } from "../../hooks/usePoll";
import { Chart, type ChartLine } from "./Chart";
import { formatBytes, formatPct, formatRate } from "./format";

type SortKey = "name" | "cpu" | "mem" | "net";

function lines(view: MetricsView | null, pick: (name: string) => string | null): ChartLine[] {
  if (view === null) return [];
  return Object.entries(view.series)
    .map(([name, s]) => ({ label: pick(name), values: s.avg }))
    .filter((l): l is ChartLine => l.label !== null)
    .sort((a, b) => a.label.localeCompare(b.label));
}

/** Sum of several series (e.g. rx over all interfaces), null where all are null. */
function summed(view: MetricsView | null, match: (name: string) => boolean, label: string): ChartLine[] {
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

export function NodeMetricsPage({ nodeId }: { nodeId: string }) {
  const [range, setRange] = useState<MetricsRange>("1h");
  const [sort, setSort] = useState<SortKey>("name");
  const history = usePoll((signal) => metricsApi.node(nodeId, range, [], signal), 2000, { key: `${nodeId}:${range}` });
  const latest = usePoll((signal) => metricsApi.latest(nodeId, signal), 2000, { key: nodeId });
  const view = history.data;
  const t = view?.t ?? [];

  const charts = useMemo(
    () => [
      {
        title: "CPU",
        unit: formatPct,
        lines: lines(view, (n) => (["cpu.busy", "cpu.user", "cpu.system", "cpu.iowait", "cpu.steal"].includes(n) ? n.slice(4) : null)),
      },
      {
        title: "Memory",
        unit: formatBytes,
        lines: lines(view, (n) => (["mem.used", "mem.cached", "swap.used"].includes(n) ? n : null)),
      },
      {
        title: "Disk space",
        unit: formatPct,
        lines: lines(view, (n) => (n.startsWith("fs.") && n.endsWith(".used_pct") ? n.slice(3, -9) : null)),
      },
      {
        title: "Disk I/O",
        unit: formatRate,
        lines: [
          ...summed(view, (n) => n.startsWith("disk.") && n.endsWith(".read_bps"), "read"),
          ...summed(view, (n) => n.startsWith("disk.") && n.endsWith(".write_bps"), "write"),
        ],
      },
      {
        title: "Network",
        unit: formatRate,
        lines: [
          ...summed(view, (n) => n.startsWith("net.") && n.endsWith(".rx_bps"), "received"),
          ...summed(view, (n) => n.startsWith("net.") && n.endsWith(".tx_bps"), "sent"),
        ],
      },
    ],
    [view],
  );

  const containers = useMemo(() => {
    const list: ContainerSample[] = [...(latest.data?.sample?.containers ?? [])];
    const v = (c: ContainerSample, k: string) => c.values[k] ?? 0;
    const by: Record<SortKey, (a: ContainerSample, b: ContainerSample) => number> = {
      name: (a, b) => a.name.localeCompare(b.name),
      cpu: (a, b) => v(b, "cpu.pct") - v(a, "cpu.pct"),
      mem: (a, b) => v(b, "mem.used") - v(a, "mem.used"),
      net: (a, b) => v(b, "net.rx_bps") + v(b, "net.tx_bps") - v(a, "net.rx_bps") - v(a, "net.tx_bps"),
    };
    return list.sort(by[sort]);
  }, [latest.data, sort]);

  return (
    <div className="page" data-testid="node-metrics-page">
      <div className="page-header">
        <h1>
          <Link to="/nodes">Nodes</Link> / Monitoring
        </h1>
        <div className="range-picker" role="group" aria-label="Time range">
          {METRICS_RANGES.map((r) => (
            <button
              key={r}
              className={`btn ${r === range ? "btn-primary" : ""}`}
              data-testid="metrics-range"
              data-range={r}
              aria-pressed={r === range}
              onClick={() => setRange(r)}
            >
              {r}
            </button>
          ))}
        </div>
      </div>
      {history.error !== null && <p className="error">{history.error.message}</p>}
      <div className="charts">
        {charts.map((c) => (
          <Chart key={c.title} title={c.title} t={t} lines={c.lines} unit={c.unit} />
        ))}
      </div>
      <h2>Containers</h2>
      {containers.length === 0 ? (
        <p className="muted">No running containers reported.</p>
      ) : (
        <table className="table" data-testid="containers-table">
          <thead>
            <tr>
              {(["name", "cpu", "mem", "net"] as const).map((k) => (
                <th key={k}>
                  <button className="link" onClick={() => setSort(k)} aria-pressed={sort === k}>
                    {{ name: "Name", cpu: "CPU", mem: "Memory", net: "Network" }[k]}
                  </button>
                </th>
              ))}
              <th>State</th>
            </tr>
          </thead>
          <tbody>
            {containers.map((c) => (
              <tr key={c.id} data-testid="container-row" data-container-name={c.name}>
                <td>
                  {c.name} <span className="muted">{c.image}</span>
                </td>
                <td>{c.values["cpu.pct"] === undefined ? "—" : formatPct(c.values["cpu.pct"])}</td>
                <td>
                  {c.values["mem.used"] === undefined ? "—" : formatBytes(c.values["mem.used"])}
                  {(c.values["mem.limit"] ?? 0) > 0 && <span className="muted"> / {formatBytes(c.values["mem.limit"] ?? 0)}</span>}
                </td>
                <td>
                  ↓ {formatRate(c.values["net.rx_bps"] ?? 0)} ↑ {formatRate(c.values["net.tx_bps"] ?? 0)}
                </td>
                <td title={c.status}>{c.status || c.state}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
