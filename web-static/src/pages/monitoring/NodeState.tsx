// What the node page says about the node itself, above its figures: an agent speaking a protocol
// the core does not support, an offline node (its figures are the last it sent; its NGINX keeps
// serving), and how many metric series it has against its budget.

import type { Agent } from "../../api/types";
import { formatAge, formatTimestamp } from "../nodes/lastSeen";

/** The node has beaten before but is silent now: what the page shows is as of its last beat. */
export function isStale(agent: Agent | null): boolean {
  return agent !== null && agent.status === "offline" && agent.last_seen_at !== null;
}

export function NodeState({ agent, now }: { agent: Agent | null; now: number }) {
  if (agent === null) return null;
  const protocolError = agent.protocol_error ?? null;
  const series = agent.metrics_series;
  const budget = agent.metrics_series_budget;
  const dropped = agent.metrics_series_dropped ?? 0;
  return (
    <>
      {protocolError !== null && protocolError !== "" && (
        <div className="banner banner-error" role="alert" data-testid="node-protocol-error">
          <strong>agent protocol not supported: {protocolError}</strong> The core refuses this agent's heartbeats until
          it runs a version that speaks a supported protocol: upgrade the agent (or the core).
        </div>
      )}
      {isStale(agent) && agent.last_seen_at !== null && (
        <div className="banner banner-offline" role="status" data-testid="node-offline">
          <strong>Offline</strong>, last seen{" "}
          <time dateTime={agent.last_seen_at} title={formatTimestamp(agent.last_seen_at)} data-testid="node-last-seen">
            {formatAge(agent.last_seen_at, now)}
          </time>{" "}
          ({formatTimestamp(agent.last_seen_at)}). The figures below are the last the agent sent, not current ones.{" "}
          <span data-testid="node-offline-nginx">
            NGINX on this node keeps serving its last applied configuration: the agent never stops it, and service
            changes reach it once the agent is back.
          </span>
        </div>
      )}
      {series !== undefined && (
        <p className="node-facts muted">
          <span data-testid="node-series" title="Metric series this node stores, against the core's per-node budget">
            series {series}
            {budget !== undefined && ` / ${budget}`}
          </span>
        </p>
      )}
      {dropped > 0 && (
        <div className="banner banner-warning" role="status" data-testid="node-series-dropped">
          {dropped} metric series from this node were dropped: it reports more than its budget
          {budget !== undefined && ` of ${budget}`} series. New series (containers, interfaces, custom metrics) beyond
          the budget are not stored; raise the core's per-node series budget or reduce what the node reports.
        </div>
      )}
    </>
  );
}
