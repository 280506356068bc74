// A container's Docker health check state as a badge; nothing for a container without one.

const TITLE: Record<string, string> = {
  healthy: "The container's health check passes.",
  unhealthy: "The container's health check fails.",
  starting: "The health check has not passed yet.",
};

/**
 * The container's health check state: the agent's `health`, or else what Docker's status text
 * says ("Up 5 minutes (healthy)", "(health: starting)"), which agents that predate the field send.
 */
export function containerHealth(c: { health?: string; status: string }): string {
  if (c.health !== undefined && c.health !== "") return c.health;
  const m = c.status.match(/\((?:health: )?(healthy|unhealthy|starting)\)/);
  return m?.[1] ?? "";
}

/** Sort rank: the ones that need attention first. */
export function healthRank(health: string | undefined): number {
  return { unhealthy: 0, starting: 1, healthy: 2 }[health ?? ""] ?? 3;
}

export function HealthBadge({ health }: { health: string | undefined }) {
  if (health === undefined || health === "") return <span className="muted" data-testid="container-health" data-health="">—</span>;
  const kind = health === "healthy" || health === "unhealthy" || health === "starting" ? health : "unknown";
  return (
    <span className={`badge badge-${kind}`} data-testid="container-health" data-health={health} title={TITLE[health]}>
      {health}
    </span>
  );
}
