// /services/{id}: one service, live: per-node NGINX state with errors and warnings in full,
// and its whole configuration.

import { useCallback, useState, type ReactNode } from "react";
import { servicesApi } from "../../api/endpoints";
import type { Header, Placement } from "../../api/types";
import { Link, navigate } from "../../app/router";
import { ConfirmDialog } from "../../components/ConfirmDialog";
import { NginxError } from "../../components/NginxError";
import { StateBadge } from "../../components/StateBadge";
import { usePoll } from "../../hooks/usePoll";
import { formatTimestamp } from "../nodes/lastSeen";
import { BALANCE_LABEL, formatBodySize, formatTarget, nodeNamer, targetKindLabel } from "./format";
import { sortedStatus } from "./NodeStates";

const POLL_MS = 2000;

export function ServiceDetailPage({ serviceId }: { serviceId: string }) {
  const load = useCallback((signal: AbortSignal) => servicesApi.get(serviceId, signal), [serviceId]);
  const { data: service, error } = usePoll(load, POLL_MS, { key: serviceId, stopOn: (e) => e.status === 404 });
  const [deleting, setDeleting] = useState(false);

  if (service === null) {
    return (
      <>
        <Link to="/services" className="back-link">
          ← Services
        </Link>
        {error === null ? (
          <div className="table-card loading">Loading the service…</div>
        ) : (
          <div className="banner banner-error" role="alert">
            {error.status === 404 ? "This service does not exist (any more)." : `Could not load the service: ${error.message}`}
          </div>
        )}
      </>
    );
  }

  const nodeName = nodeNamer(service);
  return (
    <>
      <div className="page-header">
        <div>
          <Link to="/services" className="back-link">
            ← Services
          </Link>
          <h1 data-testid="service-detail-name">
            {service.name} {!service.enabled && <span className="tag">disabled</span>}
          </h1>
          <p className="muted small">
            Created {formatTimestamp(service.created_at)} · updated {formatTimestamp(service.updated_at)}
          </p>
        </div>
        <div className="header-actions">
          <Link to={`/services/${encodeURIComponent(service.id)}/edit`} className="btn btn-secondary" data-testid="edit-service-button">
            Edit
          </Link>
          <button type="button" className="btn btn-danger-ghost" data-testid="delete-service-button" onClick={() => setDeleting(true)}>
            Delete
          </button>
        </div>
      </div>

      {error !== null && (
        <div className="banner banner-error" role="status">
          Could not refresh the service: {error.message} Retrying…
        </div>
      )}

      <section className="section">
        <h2 className="section-heading">Domains</h2>
        <ul className="plain-list inline-list domain-chips">
          {service.domains.map((domain) => (
            <li key={domain}>
              <code>{domain}</code>
            </li>
          ))}
        </ul>
      </section>

      <section className="section">
        <h2 className="section-heading">NGINX on each node</h2>
        {service.status.length === 0 ? (
          <p className="muted">No node carries this service{service.enabled ? "" : " (it is disabled)"}.</p>
        ) : (
          <div className="table-card">
            <table className="node-table">
              <thead>
                <tr>
                  <th scope="col">Node</th>
                  <th scope="col">Role</th>
                  <th scope="col">State</th>
                  <th scope="col">Error and warnings</th>
                </tr>
              </thead>
              <tbody>
                {sortedStatus(service.status).map((entry) => (
                  <tr key={entry.node_id} data-testid="service-status-row" data-node-id={entry.node_id} data-node-name={entry.node_name}>
                    <td data-label="Node" className="cell-name">
                      <span className="node-name">{entry.node_name}</span>
                    </td>
                    <td data-label="Role">{entry.role === "edge" ? "edge (forwards)" : "serves targets"}</td>
                    <td data-label="State">
                      <StateBadge state={entry.state} testId="service-node-state" data-node-id={entry.node_id} data-node-name={entry.node_name} />
                    </td>
                    <td data-label="Error and warnings" className="cell-wrap">
                      {entry.error !== null && (
                        <NginxError text={entry.error} data-testid="service-node-error" data-node-id={entry.node_id} />
                      )}
                      {entry.warnings.length > 0 && (
                        <ul className="warnings">
                          {entry.warnings.map((w, i) => (
                            <li key={i}>{w}</li>
                          ))}
                        </ul>
                      )}
                      {entry.error === null && entry.warnings.length === 0 && <span className="muted">—</span>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section className="section">
        <h2 className="section-heading">Targets</h2>
        <p className="muted small">Balancing: {BALANCE_LABEL[service.balance]}</p>
        <PlacementList placements={service.placements} nodeName={nodeName} />
        {service.routes.map((route) => (
          <div key={route.path} className="route-summary">
            <h3 className="form-subtitle">
              Path <code>{route.path}</code>
            </h3>
            <PlacementList placements={route.placements} nodeName={nodeName} />
          </div>
        ))}
      </section>

      <section className="section">
        <h2 className="section-heading">Settings</h2>
        <dl className="settings-list">
          <Setting label="Timeouts">
            connect {service.connect_timeout_secs} s · read {service.read_timeout_secs} s · send {service.send_timeout_secs} s
          </Setting>
          <Setting label="Max request body">{formatBodySize(service.client_max_body_size_mb)}</Setting>
          <Setting label="WebSocket">{service.websocket ? "passed through" : "off"}</Setting>
          <Setting label="Passive health">
            {service.max_fails === 0
              ? "off"
              : `a target is skipped for ${service.fail_timeout_secs} s after ${service.max_fails} failures within ${service.fail_timeout_secs} s`}
          </Setting>
          <Setting label="Request headers">
            <HeaderList headers={service.request_headers} />
          </Setting>
          <Setting label="Response headers">
            <HeaderList headers={service.response_headers} />
          </Setting>
        </dl>
      </section>

      {deleting && (
        <ConfirmDialog
          title={`Delete service “${service.name}”?`}
          confirmLabel="Delete service"
          danger
          onClose={() => setDeleting(false)}
          onConfirm={async () => {
            await servicesApi.remove(service.id);
            navigate("/services");
          }}
        >
          <p>
            The nodes stop serving <strong>{service.domains.join(", ") || service.name}</strong> as soon as they apply the
            change. The containers themselves keep running. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}

function PlacementList({ placements, nodeName }: { placements: Placement[]; nodeName: (id: string) => string }) {
  if (placements.length === 0) return <p className="muted">No targets.</p>;
  return (
    <ul className="placement-list">
      {placements.map((placement) => (
        <li key={placement.node_id}>
          <strong>{nodeName(placement.node_id)}</strong>
          <ul className="plain-list">
            {placement.targets.map((target, i) => (
              <li key={i}>
                <span className="tag">{targetKindLabel(target)}</span> <code>{formatTarget(target)}</code>
              </li>
            ))}
          </ul>
        </li>
      ))}
    </ul>
  );
}

function Setting({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="setting">
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

function HeaderList({ headers }: { headers: Header[] }) {
  if (headers.length === 0) return <span className="muted">none</span>;
  return (
    <ul className="plain-list">
      {headers.map((h, i) => (
        <li key={i}>
          <code>
            {h.name}: {h.value}
          </code>
        </li>
      ))}
    </ul>
  );
}
