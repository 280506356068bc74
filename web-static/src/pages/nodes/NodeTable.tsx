// The node list. On narrow screens CSS turns each row into a card, using data-label for headings.
// An offline node's host details (host name, OS, uptime) are as of its last beat: greyed out.

import type { Agent, RoutingNode } from "../../api/types";
import { CopyButton } from "../../components/CopyButton";
import { StateBadge, STATE_TITLE } from "../../components/StateBadge";
import { Switch } from "../../components/Switch";
import { Link } from "../../app/router";
import { formatAge, formatTimestamp, formatUptime } from "./lastSeen";

export type NodeStatus = "online" | "offline" | "waiting";

/** A node that never sent a heartbeat is "waiting", whatever the core's status says. */
export function nodeStatus(agent: Agent): NodeStatus {
  return agent.last_seen_at === null ? "waiting" : agent.status;
}

const STATUS_TITLE: Record<NodeStatus, string> = {
  online: "The agent is sending heartbeats.",
  offline: "No heartbeat from the agent recently.",
  waiting: "Waiting for the first heartbeat from the agent.",
};

interface NodeTableProps {
  agents: Agent[];
  now: number;
  /** Each node's NGINX state by node ID; null when the core has no routing (older core) or it is loading. */
  routing: Map<string, RoutingNode> | null;
  /** Edge settings saved but not yet in the polled list, by node ID (shown instead of the agent's). */
  edgeSaving: ReadonlyMap<string, boolean>;
  onToggleEdge: (agent: Agent, edge: boolean) => void;
  onRotate: (agent: Agent) => void;
  onDelete: (agent: Agent) => void;
}

export function NodeTable({ agents, now, routing, edgeSaving, onToggleEdge, onRotate, onDelete }: NodeTableProps) {
  return (
    <div className="table-card">
      <table className="node-table">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Version</th>
            <th scope="col">Status</th>
            <th scope="col">Last seen</th>
            <th scope="col" title="The node's NGINX state, and whether it is an edge (takes the traffic for every domain and forwards it).">
              Proxy
            </th>
            <th scope="col">ID</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {agents.map((agent) => (
            <NodeRow
              key={agent.id}
              agent={agent}
              now={now}
              routing={routing}
              edgeSaving={edgeSaving}
              onToggleEdge={onToggleEdge}
              onRotate={onRotate}
              onDelete={onDelete}
            />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function NodeRow({ agent, now, routing, edgeSaving, onToggleEdge, onRotate, onDelete }: { agent: Agent } & Omit<NodeTableProps, "agents">) {
  const status = nodeStatus(agent);
  const nginx = routing?.get(agent.id);
  const edge = edgeSaving.get(agent.id) ?? agent.edge === true;
  const details = [agent.hostname, agent.os, agent.uptime_secs !== null ? `up ${formatUptime(agent.uptime_secs)}` : null]
    .filter((part) => part !== null)
    .join(" · ");
  return (
    <tr data-testid="node-row" data-node-id={agent.id} data-node-name={agent.name} className={status === "offline" ? "is-offline" : undefined}>
      <td data-label="Name" className="cell-name">
        <Link className="node-name" to={`/nodes/${encodeURIComponent(agent.id)}`} data-testid="node-metrics-link">{agent.name}</Link>
        {details !== "" && (
          <span
            className={status === "offline" ? "node-details is-stale" : "node-details"}
            data-testid="node-details"
            title={status === "offline" && agent.last_seen_at !== null ? `As of the last heartbeat, ${formatTimestamp(agent.last_seen_at)}` : undefined}
          >
            {details}
          </span>
        )}
      </td>
      <td data-label="Version">{agent.version ?? <span className="muted">—</span>}</td>
      <td data-label="Status">
        <span className={`badge badge-${status}`} data-testid="node-status" title={STATUS_TITLE[status]}>
          {status}
        </span>
      </td>
      <td data-label="Last seen">
        {agent.last_seen_at === null ? (
          <span className="muted">waiting for first heartbeat</span>
        ) : (
          <time dateTime={agent.last_seen_at} title={formatTimestamp(agent.last_seen_at)} data-testid="node-last-seen">
            {formatAge(agent.last_seen_at, now)}
          </time>
        )}
      </td>
      <td data-label="Proxy">
        <span className="proxy-cell">
          {nginx !== undefined && (
            <StateBadge
              state={nginx.state}
              testId="node-routing-state"
              title={[nginx.error ?? STATE_TITLE[nginx.state], ...nginx.warnings.map((w) => `Warning: ${w}`)].join("\n")}
            />
          )}
          <Switch
            checked={edge}
            disabled={edgeSaving.has(agent.id)}
            onChange={(next) => onToggleEdge(agent, next)}
            testId="edge-toggle"
            aria-label={`${agent.name} is an edge node`}
            title="An edge node takes the traffic for every domain and forwards it to the nodes serving it."
          >
            edge
          </Switch>
        </span>
      </td>
      <td data-label="ID" className="cell-id">
        <span className="id-cell">
          <code title={agent.id}>{agent.id.slice(0, 8)}</code>
          <CopyButton text={agent.id} what={`ID of ${agent.name}`} />
        </span>
      </td>
      <td className="cell-actions">
        <Link className="btn btn-secondary btn-small" to={`/nodes/${encodeURIComponent(agent.id)}/logs`} data-testid="node-logs-link">
          Logs
        </Link>
        <button type="button" className="btn btn-secondary btn-small" data-testid="rotate-key-button" onClick={() => onRotate(agent)}>
          Rotate key
        </button>
        <button type="button" className="btn btn-danger-ghost btn-small" data-testid="delete-node-button" onClick={() => onDelete(agent)}>
          Delete
        </button>
      </td>
    </tr>
  );
}
