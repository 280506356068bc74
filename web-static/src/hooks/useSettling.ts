// Optimistic on/off settings in a polled list (a node's edge flag, a service's enabled flag):
// a toggled value shows at once and stays until the polled data agrees, or is dropped when the
// request fails. Without it a switch would snap back until the next poll.

import { useCallback, useEffect, useRef, useState } from "react";

export interface Settling<V> {
  /** Values sent but not yet seen in the polled data, by ID. */
  wanted: ReadonlyMap<string, V>;
  /** Shows `value` for `id` at once and runs `save`; rethrows its error after dropping the value. */
  run: (id: string, value: V, save: () => Promise<unknown>) => Promise<void>;
}

/** `current`: the polled values by ID (null while loading). */
export function useSettling<V>(current: ReadonlyMap<string, V> | null): Settling<V> {
  const [wanted, setWanted] = useState<ReadonlyMap<string, V>>(new Map());
  const inFlight = useRef(new Set<string>());

  useEffect(() => {
    if (current === null || wanted.size === 0) return;
    const settled = [...wanted].filter(([id, value]) => !inFlight.current.has(id) && (!current.has(id) || current.get(id) === value));
    if (settled.length === 0) return;
    setWanted((prev) => {
      const next = new Map(prev);
      for (const [id] of settled) next.delete(id);
      return next;
    });
  }, [current, wanted]);

  const run = useCallback(async (id: string, value: V, save: () => Promise<unknown>) => {
    inFlight.current.add(id);
    setWanted((prev) => new Map(prev).set(id, value));
    try {
      await save();
    } catch (err) {
      setWanted((prev) => {
        const next = new Map(prev);
        next.delete(id);
        return next;
      });
      throw err;
    } finally {
      inFlight.current.delete(id);
    }
  }, []);

  return { wanted, run };
}
