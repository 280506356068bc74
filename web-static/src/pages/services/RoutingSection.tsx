// Routing map: which nodes (and which edges) serve each domain, and how every node's NGINX
// stands: applied / pending / error, where it listens, how often it reloaded.

import type { RoutingDomain, RoutingNode } from "../../api/types";
import { Link } from "../../app/router";
import { NginxError } from "../../components/NginxError";
import { StateBadge } from "../../components/StateBadge";
import { shortVersion } from "./format";
import { isMissingEndpoint, useRouting } from "./useServices";

const POLL_MS = 2000;

export function RoutingSection() {
  const { data: routing, error } = useRouting(POLL_MS);
  if (isMissingEndpoint(error)) return null;

  return (
    <section className="section" aria-labelledby="routing-title">
      <div className="section-header">
        <h2 id="routing-title">Routing</h2>
        <p className="muted small">
          Which nodes answer each domain, and whether their NGINX runs the current configuration. Point a domain's DNS at
          its edges (or, without edges, at its nodes).
        </p>
      </div>
      {error !== null && (
        <div className="banner banner-error" role="status">
          Could not refresh the routing state: {error.message} Retrying…
        </div>
      )}
      {routing === null ? (
        error === null && <div className="table-card loading">Loading routing…</div>
      ) : (
        <div className="routing-grid">
          <DomainTable domains={routing.domains} />
          <RoutingNodeTable nodes={routing.nodes} />
        </div>
      )}
    </section>
  );
}

function DomainTable({ domains }: { domains: RoutingDomain[] }) {
  if (domains.length === 0) {
    return <p className="muted small table-card loading">No domains are routed yet. Add a service to route one.</p>;
  }
  const sorted = domains.slice().sort((a, b) => a.domain.localeCompare(b.domain));
  return (
    <div className="table-card">
      <table className="node-table routing-table">
        <caption className="visually-hidden">Domains and the nodes that serve them</caption>
        <thead>
          <tr>
            <th scope="col">Domain</th>
            <th scope="col">Service</th>
            <th scope="col">Nodes</th>
            <th scope="col">Edges</th>
          </tr>
        </thead>
        <tbody>
          {sorted.map((d) => (
            <tr
              key={d.domain}
              data-testid="routing-domain-row"
              data-domain={d.domain}
              data-service-id={d.service_id}
              className={d.enabled ? undefined : "row-disabled"}
            >
              <td data-label="Domain" className="cell-name">
                <code className="domain">{d.domain}</code>
              </td>
              <td data-label="Service">
                <span>
                  <Link to={`/services/${encodeURIComponent(d.service_id)}`}>{d.service_name}</Link>
                  {!d.enabled && <span className="muted small"> (disabled)</span>}
                </span>
              </td>
              <td data-label="Nodes" className="cell-wrap">
                {d.nodes.length === 0 ? (
                  <span className="muted">none</span>
                ) : (
                  <ul className="plain-list inline-list">
                    {d.nodes.map((n) => (
                      <li key={n.node_id} data-testid="routing-domain-node" data-node-id={n.node_id}>
                        <span className={n.online ? "dot dot-online" : "dot dot-offline"} title={n.online ? "online" : "offline"} />
                        {n.node_name}
                      </li>
                    ))}
                  </ul>
                )}
              </td>
              <td data-label="Edges" className="cell-wrap">
                {d.edges.length === 0 ? (
                  <span className="muted">none</span>
                ) : (
                  <ul className="plain-list inline-list">
                    {d.edges.map((e) => (
                      <li key={e.node_id} data-testid="routing-domain-edge" data-node-id={e.node_id}>
                        <span className={e.online ? "dot dot-online" : "dot dot-offline"} title={e.online ? "online" : "offline"} />
                        {e.node_name}
                      </li>
                    ))}
                  </ul>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** `10.0.0.5 · HTTP 80 · HTTPS 443`, or null before the agent reported its NGINX. */
export function listenAddress(node: RoutingNode): string | null {
  if (node.address === null) return null;
  const parts = [node.address];
  if (node.http_port !== null) parts.push(`HTTP ${node.http_port}`);
  if (node.https_port !== null) parts.push(`HTTPS ${node.https_port}`);
  return parts.join(" · ");
}

function RoutingNodeTable({ nodes }: { nodes: RoutingNode[] }) {
  if (nodes.length === 0) return null;
  const sorted = nodes.slice().sort((a, b) => a.node_name.localeCompare(b.node_name));
  return (
    <div className="table-card">
      <table className="node-table routing-table">
        <caption className="visually-hidden">NGINX state per node</caption>
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">NGINX</th>
            <th scope="col">Listens on</th>
            <th scope="col">Config version</th>
            <th scope="col">Reloads</th>
          </tr>
        </thead>
        <tbody>
          {sorted.map((node) => (
            <tr key={node.node_id} data-testid="routing-node-row" data-node-id={node.node_id} data-node-name={node.node_name}>
              <td data-label="Node" className="cell-name">
                <span className="node-name">
                  {node.node_name}
                  {node.edge && <span className="role-tag">edge</span>}
                </span>
                {!node.online && <span className="node-details">offline</span>}
              </td>
              <td data-label="NGINX" className="cell-wrap cell-nginx">
                <StateBadge state={node.state} testId="routing-node-state" title={node.error ?? undefined} />
                {node.error !== null && <NginxError text={node.error} data-testid="routing-node-error" />}
                {node.warnings.length > 0 && (
                  <ul className="warnings">
                    {node.warnings.map((w, i) => (
                      <li key={i}>{w}</li>
                    ))}
                  </ul>
                )}
              </td>
              <td data-label="Listens on" className="cell-wrap">
                {listenAddress(node) ?? <span className="muted">not reported</span>}
              </td>
              <td data-label="Config version">
                <span title={`applied ${node.applied_version || "none"}\ndesired ${node.desired_version || "none"}`}>
                  <code>{shortVersion(node.applied_version)}</code>
                  {node.applied_version !== node.desired_version && (
                    <span className="muted small">
                      {" "}
                      → <code>{shortVersion(node.desired_version)}</code>
                    </span>
                  )}
                </span>
              </td>
              <td data-label="Reloads">{node.reloads}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
