// The per-node state of a service: one chip per node whose NGINX carries it (its placements'
// nodes, then the edges). Hovering a chip shows NGINX's error; clicking it opens the details.

import type { ServiceNodeStatus } from "../../api/types";
import { NginxError } from "../../components/NginxError";
import { STATE_TITLE, StateBadge } from "../../components/StateBadge";

export function sortedStatus(status: ServiceNodeStatus[]): ServiceNodeStatus[] {
  return status.slice().sort((a, b) => (a.role === b.role ? a.node_name.localeCompare(b.node_name) : a.role === "node" ? -1 : 1));
}

export function statusTitle(status: ServiceNodeStatus): string {
  const lines = [`${status.node_name} (${status.role}): ${status.state}`];
  lines.push(status.error ?? STATE_TITLE[status.state]);
  for (const warning of status.warnings) lines.push(`Warning: ${warning}`);
  return lines.join("\n");
}

interface NodeStatesProps {
  status: ServiceNodeStatus[];
  expanded: boolean;
  onToggle: () => void;
}

export function NodeStates({ status, expanded, onToggle }: NodeStatesProps) {
  if (status.length === 0) return <span className="muted small">no nodes</span>;
  return (
    <ul className="state-chips">
      {sortedStatus(status).map((entry) => {
        const title = statusTitle(entry);
        return (
          <li key={entry.node_id}>
            <button
              type="button"
              className={`state-chip state-chip-${entry.state}`}
              title={title}
              aria-expanded={expanded}
              onClick={onToggle}
            >
              <span className="state-chip-node">
                {entry.node_name}
                {entry.role === "edge" && <span className="role-tag">edge</span>}
              </span>
              <StateBadge
                state={entry.state}
                testId="service-node-state"
                data-node-id={entry.node_id}
                data-node-name={entry.node_name}
                data-role={entry.role}
                title={title}
              />
              {entry.warnings.length > 0 && (
                <span className="warning-count" aria-label={`${entry.warnings.length} warnings`}>
                  ⚠ {entry.warnings.length}
                </span>
              )}
            </button>
          </li>
        );
      })}
    </ul>
  );
}

/** Every node's full error and warnings, for the expanded row and the detail page. */
export function NodeStateDetails({ status }: { status: ServiceNodeStatus[] }) {
  const notable = sortedStatus(status).filter((entry) => entry.error !== null || entry.warnings.length > 0 || entry.state !== "applied");
  if (notable.length === 0) return <p className="muted small">Every node runs the current configuration of this service.</p>;
  return (
    <ul className="state-details">
      {notable.map((entry) => (
        <li key={entry.node_id}>
          <div className="state-details-head">
            <strong>{entry.node_name}</strong>
            <span className="muted small">{entry.role === "edge" ? "edge" : "node"}</span>
            <StateBadge state={entry.state} />
          </div>
          {entry.error !== null && (
            <NginxError text={entry.error} data-testid="service-node-error" data-node-id={entry.node_id} />
          )}
          {entry.error === null && entry.state !== "applied" && <p className="muted small">{STATE_TITLE[entry.state]}</p>}
          {entry.warnings.length > 0 && (
            <ul className="warnings">
              {entry.warnings.map((warning, i) => (
                <li key={i}>{warning}</li>
              ))}
            </ul>
          )}
        </li>
      ))}
    </ul>
  );
}
