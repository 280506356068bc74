// The node's name for page titles and breadcrumbs (its ID until the core answers). Names change
// rarely, so it is polled slowly.

import { useCallback } from "react";
import { agentsApi } from "../../api/endpoints";
import { usePoll } from "../../hooks/usePoll";

export function useNodeName(nodeId: string): string {
  const load = useCallback((signal: AbortSignal) => agentsApi.get(nodeId, signal), [nodeId]);
  const { data } = usePoll(load, 30_000, { key: nodeId, stopOn: (error) => error.status === 404 });
  return data?.name ?? nodeId.slice(0, 8);
}
