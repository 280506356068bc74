// The node as GET /api/agents/{id} answers (online state, last seen, protocol and series
// figures), and its name for page titles and breadcrumbs (its ID until the core answers).

import { useCallback } from "react";
import { agentsApi } from "../../api/endpoints";
import type { Agent } from "../../api/types";
import { usePoll } from "../../hooks/usePoll";

export function useNode(nodeId: string, intervalMs: number): Agent | null {
  const load = useCallback((signal: AbortSignal) => agentsApi.get(nodeId, signal), [nodeId]);
  return usePoll(load, intervalMs, { key: nodeId, stopOn: (error) => error.status === 404 }).data;
}

/** Names change rarely, so a page that only needs the name polls slowly. */
export function useNodeName(nodeId: string): string {
  return useNode(nodeId, 30_000)?.name ?? nodeId.slice(0, 8);
}
