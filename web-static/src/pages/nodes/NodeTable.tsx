// The node list. On narrow screens CSS turns each row into a card, using data-label for headings.

import type { Agent } from "../../api/types";
import { CopyButton } from "../../components/CopyButton";
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
  onRotate: (agent: Agent) => void;
  onDelete: (agent: Agent) => void;
}

export function NodeTable({ agents, now, onRotate, onDelete }: NodeTableProps) {
  return (
    <div className="table-card">
      <table className="node-table">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Hostname</th>
            <th scope="col">Version</th>
            <th scope="col">Status</th>
            <th scope="col">Last seen</th>
            <th scope="col">ID</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {agents.map((agent) => (
            <NodeRow key={agent.id} agent={agent} now={now} onRotate={onRotate} onDelete={onDelete} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function NodeRow({ agent, now, onRotate, onDelete }: { agent: Agent } & Omit<NodeTableProps, "agents">) {
  const status = nodeStatus(agent);
  const details = [agent.os, agent.uptime_secs !== null ? `up ${formatUptime(agent.uptime_secs)}` : null]
    .filter((part) => part !== null)
    .join(" · ");
  return (
    <tr data-testid="node-row" data-node-id={agent.id} data-node-name={agent.name}>
      <td data-label="Name" className="cell-name">
        <span className="node-name">{agent.name}</span>
        {details !== "" && <span className="node-details">{details}</span>}
      </td>
      <td data-label="Hostname">{agent.hostname ?? <span className="muted">—</span>}</td>
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
          <time dateTime={agent.last_seen_at} title={formatTimestamp(agent.last_seen_at)}>
            {formatAge(agent.last_seen_at, now)}
          </time>
        )}
      </td>
      <td data-label="ID" className="cell-id">
        <span className="id-cell">
          <code title={agent.id}>{agent.id.slice(0, 8)}</code>
          <CopyButton text={agent.id} what={`ID of ${agent.name}`} />
        </span>
      </td>
      <td className="cell-actions">
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
