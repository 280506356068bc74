// Live node list, sorted by name (GET /api/agents every `intervalMs`; see usePoll).

import { useCallback } from "react";
import { agentsApi } from "../../api/endpoints";
import type { ApiError } from "../../api/error";
import type { Agent } from "../../api/types";
import { usePoll } from "../../hooks/usePoll";

export interface AgentsPoll {
  agents: Agent[] | null;
  error: ApiError | null;
  /** Polls now instead of waiting for the next tick. */
  reload: () => void;
}

export function useAgents(intervalMs: number): AgentsPoll {
  const load = useCallback(
    async (signal: AbortSignal) => (await agentsApi.list(signal)).slice().sort((a, b) => a.name.localeCompare(b.name)),
    [],
  );
  const { data, error, reload } = usePoll(load, intervalMs);
  return { agents: data, error, reload };
}
