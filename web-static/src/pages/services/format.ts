// Short human forms of a service's settings, for the list and the detail page.

import type { Balance, Placement, Service, Target } from "../../api/types";

export const BALANCE_LABEL: Record<Balance, string> = {
  round_robin: "Round robin",
  least_conn: "Least connections",
  ip_hash: "IP hash",
};

export const BALANCE_HELP: Record<Balance, string> = {
  round_robin: "Requests take turns across the targets, in proportion to their weights.",
  least_conn: "Each request goes to the target with the fewest active connections.",
  ip_hash: "A client's IP address always reaches the same target (sticky sessions).",
};

/** `app:8080`, `[app=shop]:8080`, `10.0.0.5:80`, with `×3` for a weight and `backup`. */
export function formatTarget(target: Target): string {
  let where: string;
  if (target.kind === "address") where = `${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
  else if (target.container) where = `${target.container}:${target.port}`;
  else where = `[${target.label ?? "?"}]:${target.port}`;
  const extras = [(target.weight ?? 1) !== 1 ? `×${target.weight ?? 1}` : null, target.backup ? "backup" : null].filter(
    (part) => part !== null,
  );
  return extras.length > 0 ? `${where} (${extras.join(", ")})` : where;
}

export function targetKindLabel(target: Target): string {
  if (target.kind === "address") return "address";
  return target.container ? "container" : "label";
}

/** Node names by ID, from what the service's status and the agent list know. */
export function nodeNamer(service: Service, known?: Map<string, string>): (id: string) => string {
  const names = new Map(known);
  for (const status of service.status) names.set(status.node_id, status.node_name);
  return (id) => names.get(id) ?? `node ${id.slice(0, 8)}`;
}

export function countTargets(placements: Placement[]): number {
  return placements.reduce((sum, p) => sum + p.targets.length, 0);
}

export function formatBodySize(mb: number): string {
  return mb === 0 ? "unlimited" : `${mb} MB`;
}

/** A version hash, short enough for a table; "none" before a node's first apply. */
export function shortVersion(version: string): string {
  if (/^0*$/.test(version)) return "none";
  return version.length > 8 ? version.slice(0, 8) : version;
}
