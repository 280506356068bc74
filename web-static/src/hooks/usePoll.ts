// Live data: calls `load` every `intervalMs`, one request at a time, pausing while the tab is
// hidden. A failed poll keeps the last data and reports the error until one succeeds. Changing
// `key` (e.g. the ID being shown) starts over with no data.

import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError, isAbort, toApiError } from "../api/error";

export interface Poll<T> {
  data: T | null;
  error: ApiError | null;
  /** Polls now instead of waiting for the next tick. */
  reload: () => void;
}

export interface PollOptions {
  /** Identity of what is polled; a change drops the data and polls at once. */
  key?: string;
  /** Stop polling after an answer this predicate accepts (e.g. a 404 from an older core). */
  stopOn?: (error: ApiError) => boolean;
}

export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, intervalMs: number, opts: PollOptions = {}): Poll<T> {
  const { key = "", stopOn } = opts;
  const [state, setState] = useState<{ key: string; data: T | null; error: ApiError | null }>({ key, data: null, error: null });
  const loadRef = useRef(load);
  const stopOnRef = useRef(stopOn);
  const pollRef = useRef<() => void>(() => undefined);

  useEffect(() => {
    loadRef.current = load;
    stopOnRef.current = stopOn;
  });

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
        const data = await loadRef.current(controller.signal);
        if (stopped || mine !== generation) return;
        setState({ key, data, error: null });
      } catch (err) {
        if (stopped || mine !== generation || isAbort(err)) return;
        const error = toApiError(err);
        setState((prev) => ({ key, data: prev.key === key ? prev.data : null, error }));
        if (stopOnRef.current?.(error)) return;
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
  }, [intervalMs, key]);

  const reload = useCallback(() => pollRef.current(), []);
  const current = state.key === key;
  return { data: current ? state.data : null, error: current ? state.error : null, reload };
}
