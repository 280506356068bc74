// Overview: every node at a glance (GET /api/metrics/overview every 2 s): online state, CPU and
// memory sparklines over the last half hour, fullest disk, load, network, containers (unhealthy
// ones highlighted) and VMs. Each row opens the node's page. An offline node's figures are the
// last it sent: they are greyed out, with when it was last seen.

import { useMemo } from "react";
import { metricsApi, type OverviewNode } from "../../api/metrics";
import { Link } from "../../app/router";
import { usePoll } from "../../hooks/usePoll";
import { formatAge, formatTimestamp, useNow } from "../nodes/lastSeen";
import { formatPct, formatRate } from "./format";
import { Sparkline } from "./Sparkline";

const POLL_MS = 2000;

/** Above this a disk reads as nearly full. */
const DISK_WARN_PCT = 90;

export function OverviewPage() {
  const overview = usePoll((signal) => metricsApi.overview(signal), POLL_MS);
  const nodes = useMemo(
    () => [...(overview.data?.nodes ?? [])].sort((a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name)),
    [overview.data],
  );
  const now = useNow(1000);
  const online = nodes.filter((n) => n.online).length;
  const unhealthy = nodes.reduce((sum, n) => sum + n.unhealthy, 0);

  return (
    <div className="page" data-testid="overview-page">
      <div className="page-header">
        <div>
          <h1>Overview</h1>
          <p className="muted">
            Every node at a glance, live.
            {nodes.length > 0 && (
              <span className="summary" data-testid="overview-summary">
                {online} of {nodes.length} online{unhealthy > 0 && `, ${unhealthy} unhealthy container${unhealthy === 1 ? "" : "s"}`}
              </span>
            )}
          </p>
        </div>
      </div>
      {overview.error !== null && (
        <div className="banner banner-error" role="status">
          Could not refresh the overview: {overview.error.message} Retrying…
        </div>
      )}
      {overview.data === null ? (
        overview.error === null && <div className="table-card loading">Loading…</div>
      ) : nodes.length === 0 ? (
        <div className="table-card loading">
          No nodes yet. <Link to="/nodes">Add one on the Nodes page.</Link>
        </div>
      ) : (
        <div className="table-card">
          <table className="node-table overview-table" data-testid="overview-table">
            <thead>
              <tr>
                <th scope="col">Node</th>
                <th scope="col">CPU</th>
                <th scope="col">Memory</th>
                <th scope="col">Disk</th>
                <th scope="col">Load</th>
                <th scope="col">Network</th>
                <th scope="col">Containers</th>
                <th scope="col">VMs</th>
              </tr>
            </thead>
            <tbody>
              {nodes.map((node) => (
                <OverviewRow key={node.id} node={node} now={now} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function OverviewRow({ node, now }: { node: OverviewNode; now: number }) {
  const href = `/nodes/${encodeURIComponent(node.id)}`;
  const dash = <span className="muted">—</span>;
  // An offline node's figures are its last ones, not current: greyed, titled with their age.
  const stale = !node.online;
  const valueClass = stale ? "spark-value is-stale" : "spark-value";
  const staleTitle = stale && node.last_seen_at !== null ? `Last value, as of ${formatTimestamp(node.last_seen_at)}` : undefined;
  return (
    <tr data-testid="overview-row" data-node-id={node.id} data-node-name={node.name} className={node.online ? "" : "is-offline"}>
      <td data-label="Node" className="cell-name">
        <Link className="node-name" to={href} data-testid="overview-node-link">
          {node.name}
        </Link>
        <span className="node-details">
          <span className={`badge badge-${node.online ? "online" : "offline"}`} data-testid="overview-status">
            {node.online ? "online" : "offline"}
          </span>
          {node.edge && <span className="tag">edge</span>}
          {stale && node.last_seen_at !== null && (
            <time className="last-seen" dateTime={node.last_seen_at} title={formatTimestamp(node.last_seen_at)} data-testid="overview-last-seen">
              last seen {formatAge(node.last_seen_at, now)}
            </time>
          )}
        </span>
      </td>
      <td data-label="CPU">
        <span className="spark-cell">
          <Sparkline values={node.spark_cpu} label={`CPU of ${node.name}`} testId="spark-cpu" />
          <span className={valueClass} data-testid="overview-cpu" data-stale={stale ? "true" : undefined} title={staleTitle}>
            {node.cpu_pct === null ? dash : formatPct(node.cpu_pct)}
          </span>
        </span>
      </td>
      <td data-label="Memory">
        <span className="spark-cell">
          <Sparkline values={node.spark_mem} label={`Memory of ${node.name}`} testId="spark-mem" />
          <span className={valueClass} data-testid="overview-mem" data-stale={stale ? "true" : undefined} title={staleTitle}>
            {node.mem_pct === null ? dash : formatPct(node.mem_pct)}
          </span>
        </span>
      </td>
      <td
        data-label="Disk"
        className={stale ? "is-stale" : node.disk_pct !== null && node.disk_pct >= DISK_WARN_PCT ? "cell-alert" : ""}
        title="Fullest filesystem"
      >
        {node.disk_pct === null ? dash : formatPct(node.disk_pct)}
      </td>
      <td data-label="Load" className={stale ? "is-stale" : ""}>{node.load1 === null ? dash : node.load1.toFixed(2)}</td>
      <td data-label="Network" className={stale ? "is-stale" : ""} title="Received + sent, all interfaces but loopback">
        {node.net_bps === null ? dash : formatRate(node.net_bps)}
      </td>
      <td data-label="Containers" className={stale ? "is-stale" : ""}>
        <span className="overview-containers">
          <span data-testid="overview-containers">{node.containers}</span>
          {node.unhealthy > 0 && (
            <span className="badge badge-unhealthy" data-testid="overview-unhealthy" title="Containers whose health check fails">
              {node.unhealthy} unhealthy
            </span>
          )}
        </span>
      </td>
      <td data-label="VMs" className={stale ? "is-stale" : ""}>{node.vms === 0 ? dash : node.vms}</td>
    </tr>
  );
}
