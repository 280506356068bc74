// What the service form's nested editors need from the form: the message to show at a field
// path (a client-side problem, or the core's error placed there), and the node list.

import { createContext, useContext } from "react";
import type { Agent } from "../../api/types";

export interface ServiceFormContext {
  /** The message to show at `path`, or null. */
  errorAt: (path: string) => string | null;
  /** Nodes to place the service on; null while loading. */
  agents: Agent[] | null;
  /** Unique prefix for element IDs. */
  idPrefix: string;
}

export const FormContext = createContext<ServiceFormContext>({ errorAt: () => null, agents: null, idPrefix: "f" });

export function useServiceForm(): ServiceFormContext {
  return useContext(FormContext);
}

/** Props that tie an input to its field path: `data-field`, `aria-invalid`, `aria-describedby`. */
export function useField(path: string): {
  error: string | null;
  errorId: string;
  props: { "data-field": string; "aria-invalid": true | undefined; "aria-describedby": string | undefined };
} {
  const { errorAt, idPrefix } = useServiceForm();
  const error = errorAt(path);
  const errorId = `${idPrefix}-${path.replace(/[^A-Za-z0-9]+/g, "-")}-error`;
  return {
    error,
    errorId,
    props: { "data-field": path, "aria-invalid": error !== null ? true : undefined, "aria-describedby": error !== null ? errorId : undefined },
  };
}

export function FieldError({ path, id, message }: { path: string; id: string; message: string | null }) {
  if (message === null) return null;
  return (
    <span className="field-error" id={id} role="alert" data-testid="field-error" data-field={path}>
      {message}
    </span>
  );
}
