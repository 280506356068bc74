// Node page: live host charts (CPU, load, memory, disk, network) from the metric rings with a
// range picker, and below them the node's running containers (health, restarts; sortable, each
// opening its container page) and VMs, from its newest sample (polled every second on the 1 h
// range, which also feeds the charts: see useLiveHistory). Above them, the node's own state
// (polled every 2 s, see NodeState): offline (the figures, then greyed, are its last ones),
// protocol error, series against its budget.
//
// The history query names only the series the charts draw, taken from the newest sample: a
// Docker host reports six series per veth interface, and fetching all of them at 1 s resolution
// would move megabytes for nothing.

import { useEffect, useMemo, useState } from "react";
import { nodeHistory, metricsApi, type ContainerSample, type MetricsRange, type MetricsView, type VmSample } from "../../api/metrics";
import { Link } from "../../app/router";
import { usePoll } from "../../hooks/usePoll";
import { ChartGrid } from "./ChartGrid";
import { formatBytes, formatPct, formatRate } from "./format";
import { containerHealth, HealthBadge, healthRank } from "./health";
import { RangePicker } from "./RangePicker";
import { lines, summed } from "./series";
import { latestPollMs, useLiveHistory } from "./useLiveHistory";
import { formatTimestamp, useNow } from "../nodes/lastSeen";
import { isStale, NodeState } from "./NodeState";
import { useNode } from "./useNodeName";

type SortKey = "name" | "health" | "restarts" | "cpu" | "mem" | "net";

const SORT_LABEL: Record<SortKey, string> = {
  name: "Name",
  health: "Health",
  restarts: "Restarts",
  cpu: "CPU",
  mem: "Memory",
  net: "Network",
};

const CPU_SERIES = ["cpu.busy", "cpu.user", "cpu.system", "cpu.iowait", "cpu.steal"];
const LOAD_SERIES = ["load.1", "load.5", "load.15"];
const MEM_SERIES = ["mem.used", "mem.cached", "swap.used"];

const isFsPct = (n: string) => n.startsWith("fs.") && n.endsWith(".used_pct");
const isDisk = (n: string, field: string) => n.startsWith("disk.") && n.endsWith(`.${field}`);
/** Loopback carries no traffic of the host's, and a veth's is also counted on its bridge. */
const isNet = (n: string, field: string) => n.startsWith("net.") && n.endsWith(`.${field}`) && !n.startsWith("net.lo.") && !n.startsWith("net.veth");

/** The host series the charts draw, among those the newest sample has. */
function chartedSeries(host: Record<string, number>): string[] {
  return Object.keys(host)
    .filter(
      (n) =>
        CPU_SERIES.includes(n) ||
        LOAD_SERIES.includes(n) ||
        MEM_SERIES.includes(n) ||
        isFsPct(n) ||
        isDisk(n, "read_bps") ||
        isDisk(n, "write_bps") ||
        isNet(n, "rx_bps") ||
        isNet(n, "tx_bps"),
    )
    .sort();
}

/** The node's own state (online, last seen) is polled like the node list. */
const NODE_POLL_MS = 2000;

const EMPTY_VIEW = (range: MetricsRange): MetricsView => ({ range, resolution_s: 0, t: [], series: {} });

export function NodeMetricsPage({ nodeId }: { nodeId: string }) {
  const [range, setRange] = useState<MetricsRange>("1h");
  const [sort, setSort] = useState<SortKey>("name");
  const node = useNode(nodeId, NODE_POLL_MS);
  const name = node?.name ?? nodeId.slice(0, 8);
  const stale = isStale(node);
  const now = useNow(1000);
  const latest = usePoll((signal) => metricsApi.latest(nodeId, signal), latestPollMs(range), { key: nodeId });
  const sample = latest.data?.sample ?? null;
  const wanted = useMemo(() => (sample === null ? "" : chartedSeries(sample.host).join(",")), [sample]);
  // The poll reads the current series list through its (refreshed every render) load function,
  // so a new interface does not restart the poll and blank the charts.
  const live = useMemo(() => (sample === null ? null : { t: sample.t, values: sample.host }), [sample]);
  const history = useLiveHistory(
    (signal) => (wanted === "" ? Promise.resolve(EMPTY_VIEW(range)) : nodeHistory(nodeId, range, wanted.split(","), signal)),
    range,
    nodeId,
    live,
  );
  const haveSeries = wanted !== "";
  const { reload } = history;
  // Fetch again whenever the charted set changes, not only on the first: an appended sample
  // fills only the series the fetched view has, and some appear later (the CPU figures come
  // with the agent's second sample, a new filesystem or interface any time). Without this a
  // page opened on a node's first sample drew no CPU until the 30 s refetch.
  useEffect(() => {
    if (wanted !== "") reload();
  }, [wanted, reload]);

  const view = history.data;
  const t = view?.t ?? [];
  const charts = useMemo(
    () => [
      { title: "CPU", unit: formatPct, lines: lines(view, (n) => (CPU_SERIES.includes(n) ? n.slice(4) : null)) },
      { title: "Load", unit: (v: number) => v.toFixed(2), lines: lines(view, (n) => (LOAD_SERIES.includes(n) ? n : null)) },
      { title: "Memory", unit: formatBytes, lines: lines(view, (n) => (MEM_SERIES.includes(n) ? n : null)) },
      { title: "Disk space", unit: formatPct, lines: lines(view, (n) => (isFsPct(n) ? n.slice(3, -9) : null)) },
      {
        title: "Disk I/O",
        unit: formatRate,
        lines: [...summed(view, (n) => isDisk(n, "read_bps"), "read"), ...summed(view, (n) => isDisk(n, "write_bps"), "write")],
      },
      {
        title: "Network",
        unit: formatRate,
        lines: [...summed(view, (n) => isNet(n, "rx_bps"), "received"), ...summed(view, (n) => isNet(n, "tx_bps"), "sent")],
      },
    ],
    [view],
  );

  return (
    <div className="page monitoring-page" data-testid="node-metrics-page" data-node-id={nodeId}>
      <div className="page-header">
        <div>
          <h1>
            <Link to="/overview">Overview</Link> / <span data-testid="node-title">{name}</span>
          </h1>
          <p className="muted">
            {stale && node?.last_seen_at ? `Host figures as of ${formatTimestamp(node.last_seen_at)}.` : "Host figures, live."}{" "}
            <Link to={`/nodes/${encodeURIComponent(nodeId)}/logs`} data-testid="node-logs-link">
              Logs
            </Link>
          </p>
        </div>
        <RangePicker range={range} onChange={setRange} />
      </div>
      <NodeState agent={node} now={now} />
      {latest.data !== null && sample === null && <p className="muted">No metrics from this node yet: is its agent running?</p>}
      <div className={stale ? "is-stale" : undefined} data-testid="node-figures" data-stale={stale ? "true" : "false"}>
        <ChartGrid charts={charts} t={t} pending={view === null || !haveSeries} error={history.error ?? latest.error} />
        <ContainersTable nodeId={nodeId} containers={sample?.containers ?? []} sort={sort} onSort={setSort} />
        <VmsTable nodeId={nodeId} vms={sample?.vms ?? []} />
      </div>
    </div>
  );
}

function ContainersTable({
  nodeId,
  containers,
  sort,
  onSort,
}: {
  nodeId: string;
  containers: ContainerSample[];
  sort: SortKey;
  onSort: (key: SortKey) => void;
}) {
  const sorted = useMemo(() => {
    const v = (c: ContainerSample, k: string) => c.values[k] ?? 0;
    const by: Record<SortKey, (a: ContainerSample, b: ContainerSample) => number> = {
      name: () => 0,
      health: (a, b) => healthRank(containerHealth(a)) - healthRank(containerHealth(b)),
      restarts: (a, b) => b.restarts - a.restarts,
      cpu: (a, b) => v(b, "cpu.pct") - v(a, "cpu.pct"),
      mem: (a, b) => v(b, "mem.used") - v(a, "mem.used"),
      net: (a, b) => v(b, "net.rx_bps") + v(b, "net.tx_bps") - v(a, "net.rx_bps") - v(a, "net.tx_bps"),
    };
    // Ties (and the name sort) fall back to the name, so rows do not jump between polls.
    return [...containers].sort((a, b) => by[sort](a, b) || a.name.localeCompare(b.name));
  }, [containers, sort]);

  return (
    <section className="monitoring-section">
      <h2>
        Containers <span className="summary">{containers.length}</span>
      </h2>
      {sorted.length === 0 ? (
        <p className="muted">No running containers reported.</p>
      ) : (
        <div className="table-card">
          <table className="node-table metrics-table" data-testid="containers-table">
            <thead>
              <tr>
                {(Object.keys(SORT_LABEL) as SortKey[]).map((k) => (
                  <th key={k} scope="col" aria-sort={sort === k ? (k === "name" ? "ascending" : "descending") : undefined}>
                    <button type="button" className="link-button sort-button" data-testid="containers-sort" data-sort={k} onClick={() => onSort(k)} aria-pressed={sort === k}>
                      {SORT_LABEL[k]}
                      {sort === k && <span aria-hidden="true"> ▾</span>}
                    </button>
                  </th>
                ))}
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {sorted.map((c) => (
                <tr key={c.id} data-testid="container-row" data-container-name={c.name} className={containerHealth(c) === "unhealthy" ? "is-unhealthy" : ""}>
                  <td data-label="Name" className="cell-name">
                    <Link className="node-name" to={`/nodes/${encodeURIComponent(nodeId)}/containers/${encodeURIComponent(c.name)}`} data-testid="container-link">
                      {c.name}
                    </Link>
                    <span className="node-details">{c.image}</span>
                  </td>
                  <td data-label="Health">
                    <HealthBadge health={containerHealth(c)} />
                  </td>
                  <td data-label="Restarts" data-testid="container-restarts" className={c.restarts > 0 ? "cell-alert" : ""}>
                    {c.restarts}
                  </td>
                  <td data-label="CPU">{c.values["cpu.pct"] === undefined ? "—" : formatPct(c.values["cpu.pct"])}</td>
                  <td data-label="Memory">
                    {c.values["mem.used"] === undefined ? "—" : formatBytes(c.values["mem.used"])}
                    {(c.values["mem.limit"] ?? 0) > 0 && <span className="muted"> / {formatBytes(c.values["mem.limit"] ?? 0)}</span>}
                  </td>
                  <td data-label="Network">
                    ↓ {formatRate(c.values["net.rx_bps"] ?? 0)} ↑ {formatRate(c.values["net.tx_bps"] ?? 0)}
                  </td>
                  <td data-label="State" title={c.status}>
                    {c.status || c.state}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function VmsTable({ nodeId, vms }: { nodeId: string; vms: VmSample[] }) {
  if (vms.length === 0) return null;
  const sorted = [...vms].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <section className="monitoring-section">
      <h2>
        Virtual machines <span className="summary">{vms.length}</span>
      </h2>
      <div className="table-card">
        <table className="node-table metrics-table" data-testid="vms-table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Source</th>
              <th scope="col">State</th>
              <th scope="col">vCPUs</th>
              <th scope="col" title="% of one core">CPU</th>
              <th scope="col">Memory</th>
            </tr>
          </thead>
          <tbody>
            {sorted.map((vm) => (
              <tr key={vm.name} data-testid="vm-row" data-vm-name={vm.name}>
                <td data-label="Name" className="cell-name">
                  <Link className="node-name" to={`/nodes/${encodeURIComponent(nodeId)}/vms/${encodeURIComponent(vm.name)}`} data-testid="vm-link">
                    {vm.name}
                  </Link>
                </td>
                <td data-label="Source">{vm.source}</td>
                <td data-label="State">{vm.state}</td>
                <td data-label="vCPUs">{vm.vcpus > 0 ? vm.vcpus : "—"}</td>
                <td data-label="CPU">{vm.values["cpu.pct"] === undefined ? "—" : formatPct(vm.values["cpu.pct"])}</td>
                <td data-label="Memory">
                  {vm.values["mem.used"] === undefined ? "—" : formatBytes(vm.values["mem.used"])}
                  {(vm.values["mem.max"] ?? 0) > 0 && <span className="muted"> / {formatBytes(vm.values["mem.max"] ?? 0)}</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
