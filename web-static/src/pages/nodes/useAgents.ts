// Live node list: polls GET /api/agents every `intervalMs`, one request at a time, pausing while
// the tab is hidden. A failed poll keeps the last list and reports the error until one succeeds.

import { useCallback, useEffect, useRef, useState } from "react";
import { agentsApi } from "../../api/endpoints";
import { ApiError, isAbort, toApiError } from "../../api/error";
import type { Agent } from "../../api/types";

export interface AgentsPoll {
  agents: Agent[] | null;
  error: ApiError | null;
  /** Polls now instead of waiting for the next tick. */
  reload: () => void;
}

export function useAgents(intervalMs: number): AgentsPoll {
  const [agents, setAgents] = useState<Agent[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const pollRef = useRef<() => void>(() => undefined);

  useEffect(() => {
    let stopped = false;
    let generation = 0;
    let timer: number | undefined;
    let controller: AbortController | null = null;

    const poll = async () => {
      const mine = ++generation;
      window.clearTimeout(timer);
      controller?.abort();
      if (document.hidden) return;
      controller = new AbortController();
      try {
        const list = await agentsApi.list(controller.signal);
        if (stopped || mine !== generation) return;
        setAgents(list.slice().sort((a, b) => a.name.localeCompare(b.name)));
        setError(null);
      } catch (err) {
        if (stopped || mine !== generation || isAbort(err)) return;
        setError(toApiError(err));
      }
      if (!stopped && mine === generation) timer = window.setTimeout(() => void poll(), intervalMs);
    };
    const onVisibility = () => {
      if (!document.hidden) void poll();
    };

    pollRef.current = () => void poll();
    document.addEventListener("visibilitychange", onVisibility);
    void poll();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
      controller?.abort();
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [intervalMs]);

  const reload = useCallback(() => pollRef.current(), []);
  return { agents, error, reload };
}
