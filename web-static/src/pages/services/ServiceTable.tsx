// The service list: name, domains, targets, per-node state, enabled switch and actions. A click
// on a node's state chip unfolds a row with every node's NGINX error and warnings in full.

import { Fragment, useState } from "react";
import type { Service } from "../../api/types";
import { Link } from "../../app/router";
import { Switch } from "../../components/Switch";
import { formatTarget, nodeNamer } from "./format";
import { NodeStateDetails, NodeStates } from "./NodeStates";

const DOMAINS_SHOWN = 3;

interface ServiceTableProps {
  services: Service[];
  /** Enabled values saved but not yet in the polled list, by service ID. */
  saving: ReadonlyMap<string, boolean>;
  onToggleEnabled: (service: Service, enabled: boolean) => void;
  onDelete: (service: Service) => void;
}

export function ServiceTable({ services, saving, onToggleEnabled, onDelete }: ServiceTableProps) {
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const toggle = (id: string) =>
    setExpanded((prev) => {
      const next = new Set(prev);
      if (!next.delete(id)) next.add(id);
      return next;
    });

  return (
    <div className="table-card">
      <table className="node-table service-table">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Domains</th>
            <th scope="col">Targets</th>
            <th scope="col">Nodes</th>
            <th scope="col">Enabled</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {services.map((service) => (
            <Fragment key={service.id}>
              <ServiceRow
                service={service}
                expanded={expanded.has(service.id)}
                onExpand={() => toggle(service.id)}
                saving={saving.get(service.id)}
                onToggleEnabled={onToggleEnabled}
                onDelete={onDelete}
              />
              {expanded.has(service.id) && (
                <tr className="details-row">
                  <td colSpan={6}>
                    <NodeStateDetails status={service.status} />
                  </td>
                </tr>
              )}
            </Fragment>
          ))}
        </tbody>
      </table>
    </div>
  );
}

interface ServiceRowProps extends Omit<ServiceTableProps, "services" | "saving"> {
  service: Service;
  expanded: boolean;
  /** The enabled value being saved, if any. */
  saving: boolean | undefined;
  onExpand: () => void;
}

function ServiceRow({ service, expanded, saving, onExpand, onToggleEnabled, onDelete }: ServiceRowProps) {
  const nodeName = nodeNamer(service);
  const hidden = service.domains.length - DOMAINS_SHOWN;
  return (
    <tr
      data-testid="service-row"
      data-service-id={service.id}
      data-service-name={service.name}
      className={service.enabled ? undefined : "row-disabled"}
    >
      <td data-label="Name" className="cell-name">
        <Link to={`/services/${encodeURIComponent(service.id)}`} className="node-name service-link" data-testid="service-link">
          {service.name}
        </Link>
        {!service.enabled && <span className="node-details">disabled: not served</span>}
      </td>
      <td data-label="Domains" className="cell-wrap">
        <ul className="plain-list domain-list">
          {service.domains.slice(0, DOMAINS_SHOWN).map((domain) => (
            <li key={domain}>
              <code>{domain}</code>
            </li>
          ))}
          {hidden > 0 && (
            <li className="muted small" title={service.domains.slice(DOMAINS_SHOWN).join("\n")}>
              +{hidden} more
            </li>
          )}
        </ul>
      </td>
      <td data-label="Targets" className="cell-wrap">
        <ul className="plain-list target-summary">
          {service.placements.map((placement) => (
            <li key={placement.node_id}>
              <span className="target-node">{nodeName(placement.node_id)}</span>{" "}
              <span className="muted">→</span>{" "}
              {placement.targets.map((target, i) => (
                <span key={i} className="nowrap">
                  {formatTarget(target)}
                  {i < placement.targets.length - 1 && ", "}
                </span>
              ))}
            </li>
          ))}
          {service.placements.length === 0 && <li className="muted">no targets</li>}
          {service.routes.length > 0 && (
            <li className="muted small" title={service.routes.map((r) => r.path).join("\n")}>
              + {service.routes.length} path {service.routes.length === 1 ? "route" : "routes"}
            </li>
          )}
        </ul>
      </td>
      <td data-label="Nodes" className="cell-wrap">
        <NodeStates status={service.status} expanded={expanded} onToggle={onExpand} />
      </td>
      <td data-label="Enabled">
        <Switch
          checked={saving ?? service.enabled}
          disabled={saving !== undefined}
          onChange={(enabled) => onToggleEnabled(service, enabled)}
          testId="service-enabled-toggle"
          aria-label={`Serve ${service.name}`}
        />
      </td>
      <td className="cell-actions">
        <Link
          to={`/services/${encodeURIComponent(service.id)}/edit`}
          className="btn btn-secondary btn-small"
          data-testid="edit-service-button"
        >
          Edit
        </Link>
        <button type="button" className="btn btn-danger-ghost btn-small" data-testid="delete-service-button" onClick={() => onDelete(service)}>
          Delete
        </button>
      </td>
    </tr>
  );
}
