// Live service list (sorted by name) and live routing state, polled like the node list.

import { useCallback } from "react";
import { routingApi, servicesApi } from "../../api/endpoints";
import type { ApiError } from "../../api/error";
import type { Routing, Service } from "../../api/types";
import { usePoll, type Poll } from "../../hooks/usePoll";

export function useServices(intervalMs: number): Poll<Service[]> {
  const load = useCallback(
    async (signal: AbortSignal) => (await servicesApi.list(signal)).slice().sort((a, b) => a.name.localeCompare(b.name)),
    [],
  );
  return usePoll(load, intervalMs);
}

/** A core without the routing endpoint answers 404 (or 405): stop asking, and show nothing. */
export function isMissingEndpoint(error: ApiError | null): boolean {
  return error !== null && (error.status === 404 || error.status === 405);
}

export function useRouting(intervalMs: number): Poll<Routing> {
  return usePoll(routingApi.get, intervalMs, { stopOn: isMissingEndpoint });
}
