// The badge of a node's NGINX state: applied (green), pending (amber), error (red), offline
// (grey), unmanaged (the node's agent does not run NGINX). The text is exactly the state.

import type { HTMLAttributes } from "react";
import type { RoutingState } from "../api/types";

export const STATE_TITLE: Record<RoutingState, string> = {
  applied: "The node's NGINX runs the current configuration.",
  pending: "The node has not applied the current configuration yet.",
  error: "The node's NGINX refused the configuration; it keeps serving the last good one.",
  offline: "The node's agent is offline: its NGINX state is unknown.",
  unmanaged: "The node's agent does not manage an NGINX.",
};

type StateBadgeProps = HTMLAttributes<HTMLSpanElement> & { state: RoutingState; testId?: string };

export function StateBadge({ state, testId, title, className = "", ...rest }: StateBadgeProps) {
  return (
    <span className={`badge badge-state-${state} ${className}`} data-testid={testId} title={title ?? STATE_TITLE[state]} {...rest}>
      {state}
    </span>
  );
}
