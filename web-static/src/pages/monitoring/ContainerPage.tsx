// Container page: one container's live charts (CPU, memory against its limit, network, block
// I/O) with a range picker, its state, health and restarts from the node's newest sample, and its
// custom metrics (series `custom.*` read by the agent from the container's own endpoint) with the
// endpoint's status. The container's whole history comes in one query: a container has a handful
// of series, plus at most 100 custom ones.

import { useMemo, useState } from "react";
import { metricsApi, type ContainerSample, type CustomMetricsStatus, type MetricsRange, type MetricsView } from "../../api/metrics";
import { Link } from "../../app/router";
import { usePoll } from "../../hooks/usePoll";
import { Chart, type ChartLine } from "./Chart";
import { ChartGrid } from "./ChartGrid";
import { formatBytes, formatNumber, formatPct, formatRate, formatUnixTime } from "./format";
import { containerHealth, HealthBadge } from "./health";
import { RangePicker } from "./RangePicker";
import { named } from "./series";
import { latestPollMs, useLiveHistory } from "./useLiveHistory";
import { useNodeName } from "./useNodeName";

const CUSTOM_PREFIX = "custom.";
/** Up to this many custom series get a chart each; beyond it a table picks which to chart. */
const CUSTOM_CHARTS_MAX = 12;
/** Charted by default when there are more than CUSTOM_CHARTS_MAX. */
const CUSTOM_DEFAULT_PICKED = 6;

export function ContainerPage({ nodeId, name }: { nodeId: string; name: string }) {
  const [range, setRange] = useState<MetricsRange>("1h");
  const nodeName = useNodeName(nodeId);
  const latest = usePoll((signal) => metricsApi.latest(nodeId, signal), latestPollMs(range), { key: nodeId });
  const sample = latest.data?.sample ?? null;
  const container = sample?.containers.find((c) => c.name === name) ?? null;
  const live = useMemo(() => (sample === null || container === null ? null : { t: sample.t, values: container.values }), [sample, container]);
  const history = useLiveHistory((signal) => metricsApi.container(nodeId, name, range, [], signal), range, `${nodeId}:${name}`, live);
  const view = history.data;
  const t = view?.t ?? [];

  const charts = useMemo(() => {
    const limit = view?.series["mem.limit"];
    const limited = limit?.avg.some((v) => v !== null && v > 0) ?? false;
    return [
      { title: "CPU", unit: formatPct, lines: named(view, [["cpu.pct", "% of one core"]]) },
      {
        title: "Memory",
        unit: formatBytes,
        lines: named(view, limited ? [["mem.used", "used"], ["mem.limit", "limit"]] : [["mem.used", "used"]]),
      },
      { title: "Network", unit: formatRate, lines: named(view, [["net.rx_bps", "received"], ["net.tx_bps", "sent"]]) },
      { title: "Block I/O", unit: formatRate, lines: named(view, [["blk.read_bps", "read"], ["blk.write_bps", "write"]]) },
    ];
  }, [view]);

  const nodeHref = `/nodes/${encodeURIComponent(nodeId)}`;
  const error = history.error ?? latest.error;
  return (
    <div className="page monitoring-page" data-testid="container-page" data-container-name={name}>
      <div className="page-header">
        <div>
          <h1>
            <Link to="/overview">Overview</Link> / <Link to={nodeHref}>{nodeName}</Link> / <span data-testid="container-title">{name}</span>
          </h1>
          <ContainerHeader container={container} loaded={latest.data !== null} nodeId={nodeId} name={name} />
        </div>
        <RangePicker range={range} onChange={setRange} />
      </div>
      <ChartGrid charts={charts} t={t} pending={view === null} error={error} />
      <CustomMetrics view={view} container={container} />
    </div>
  );
}

function ContainerHeader({ container, loaded, nodeId, name }: { container: ContainerSample | null; loaded: boolean; nodeId: string; name: string }) {
  if (!loaded) return <p className="muted">Loading…</p>;
  if (container === null) {
    return (
      <p className="muted" data-testid="container-status">
        Not in the node's newest sample (stopped or removed); its history is below.
      </p>
    );
  }
  return (
    <p className="container-facts" data-testid="container-status">
      <span className={`badge badge-${container.state === "running" ? "online" : "offline"}`} data-testid="container-state" title={container.status}>
        {container.state}
      </span>
      <HealthBadge health={containerHealth(container)} />
      <span data-testid="container-restarts" className={container.restarts > 0 ? "cell-alert" : "muted"}>
        {container.restarts} restart{container.restarts === 1 ? "" : "s"}
      </span>
      <span className="muted">{container.status}</span>
      <span className="muted">
        {container.image} · <code>{container.id}</code>
      </span>
      <Link to={`/nodes/${encodeURIComponent(nodeId)}/logs?source=${encodeURIComponent(name)}`} data-testid="container-logs-link">
        Logs
      </Link>
    </p>
  );
}

function CustomMetrics({ view, container }: { view: MetricsView | null; container: ContainerSample | null }) {
  const [picked, setPicked] = useState<ReadonlySet<string> | null>(null);
  const names = useMemo(() => {
    const all = new Set<string>();
    for (const n of Object.keys(view?.series ?? {})) if (n.startsWith(CUSTOM_PREFIX)) all.add(n);
    for (const n of Object.keys(container?.values ?? {})) if (n.startsWith(CUSTOM_PREFIX)) all.add(n);
    return [...all].sort();
  }, [view, container]);
  const status = container?.custom ?? null;
  if (names.length === 0 && status === null) {
    return (
      <section className="monitoring-section" data-testid="custom-metrics">
        <h2>Custom metrics</h2>
        <p className="muted">
          None. Label a container <code>capstan.metrics.port=&lt;port&gt;</code> and the agent polls its JSON endpoint every second; each number
          becomes a series <code>custom.&lt;path&gt;</code>.
        </p>
      </section>
    );
  }

  const many = names.length > CUSTOM_CHARTS_MAX;
  const chosen = many ? (picked ?? new Set(names.slice(0, CUSTOM_DEFAULT_PICKED))) : new Set(names);
  const toggle = (n: string) => {
    const next = new Set(chosen);
    if (next.has(n)) next.delete(n);
    else next.add(n);
    setPicked(next);
  };
  const t = view?.t ?? [];
  return (
    <section className="monitoring-section" data-testid="custom-metrics">
      <h2>
        Custom metrics <span className="summary">{names.length}</span>
      </h2>
      {status !== null && <EndpointStatus status={status} />}
      {many && (
        <div className="table-card custom-table">
          <table className="node-table metrics-table" data-testid="custom-table">
            <thead>
              <tr>
                <th scope="col">Chart</th>
                <th scope="col">Series</th>
                <th scope="col">Now</th>
              </tr>
            </thead>
            <tbody>
              {names.map((n) => (
                <tr key={n} data-testid="custom-row" data-series={n}>
                  <td>
                    <input type="checkbox" checked={chosen.has(n)} onChange={() => toggle(n)} aria-label={`Chart ${n}`} />
                  </td>
                  <td>
                    <code>{n.slice(CUSTOM_PREFIX.length)}</code>
                  </td>
                  <td>{container?.values[n] === undefined ? "—" : formatNumber(container.values[n])}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div className="charts charts-small">
        {names
          .filter((n) => chosen.has(n))
          .map((n) => (
            <Chart key={n} title={n.slice(CUSTOM_PREFIX.length)} t={t} lines={customLine(view, n)} unit={formatNumber} height={110} />
          ))}
      </div>
    </section>
  );
}

function customLine(view: MetricsView | null, name: string): ChartLine[] {
  return named(view, [[name, name.slice(CUSTOM_PREFIX.length)]]);
}

function EndpointStatus({ status }: { status: CustomMetricsStatus }) {
  const failing = status.error !== undefined && status.error !== "";
  return (
    <dl className={`endpoint-status ${failing ? "is-failing" : ""}`} data-testid="custom-endpoint">
      <dt>Endpoint</dt>
      <dd>
        <code data-testid="custom-endpoint-url">{status.url}</code>
      </dd>
      <dt>Last poll</dt>
      <dd data-testid="custom-endpoint-error">{failing ? <span className="cell-alert">{status.error}</span> : "ok"}</dd>
      <dt>Last success</dt>
      <dd>{status.last_ok > 0 ? formatUnixTime(status.last_ok) : "never"}</dd>
      <dt>Series</dt>
      <dd>
        {status.series}
        {status.dropped > 0 && (
          <span className="cell-alert" data-testid="custom-endpoint-dropped">
            {" "}
            ({status.dropped} more left out: the endpoint offers more series than the cap)
          </span>
        )}
      </dd>
    </dl>
  );
}
