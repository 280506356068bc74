// ApiError is the only error the API client throws: every failure (an error body from the core,
// a non-JSON answer from a proxy, an unreachable network) becomes one, so pages handle one type.

import type { ApiErrorBody } from "./types";

export class ApiError extends Error {
  /** HTTP status, or 0 when no answer arrived at all. */
  readonly status: number;
  /** Stable snake_case code from the core, e.g. `invalid_credentials`, `domain_taken`. */
  readonly code: string;
  /** The request field the error is about, when the core names one. */
  readonly field: string | undefined;

  constructor(status: number, code: string, message: string, field?: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
  }

  static async fromResponse(res: Response): Promise<ApiError> {
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      body = undefined;
    }
    if (isErrorBody(body)) {
      const { code, message, field } = body.error;
      return new ApiError(res.status, code, sentence(message), field ?? undefined);
    }
    return new ApiError(res.status, fallbackCode(res.status), fallbackMessage(res.status));
  }

  static network(): ApiError {
    return new ApiError(0, "network_error", "Cannot reach the Capstan core. Check your connection.");
  }

  static sessionEnded(): ApiError {
    return new ApiError(401, "session_expired", "Your session has ended. Sign in again.");
  }
}

/** Turns anything thrown into an ApiError, so callers can show `message` without guessing. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ApiError(0, "client_error", message);
}

export function isAbort(err: unknown): boolean {
  return err instanceof DOMException && err.name === "AbortError";
}

function isErrorBody(body: unknown): body is ApiErrorBody {
  if (typeof body !== "object" || body === null || !("error" in body)) return false;
  const error: unknown = body.error;
  return (
    typeof error === "object" &&
    error !== null &&
    "code" in error &&
    typeof error.code === "string" &&
    "message" in error &&
    typeof error.message === "string"
  );
}

/**
 * The core writes messages in lower case, as log lines; the UI shows them as sentences. A
 * message that starts with a value rather than a word (`shop.example.com already belongs…`,
 * `"a b" is not…`) keeps it as written.
 */
function sentence(message: string): string {
  const first = message.split(/\s/, 1)[0] ?? "";
  if (!/^[a-z][a-z'-]*[,:;]?$/.test(first)) return message;
  return message.charAt(0).toUpperCase() + message.slice(1);
}

function fallbackCode(status: number): string {
  if (status === 401) return "unauthorized";
  if (status === 404) return "not_found";
  if (status === 429) return "rate_limited";
  return `http_${status}`;
}

function fallbackMessage(status: number): string {
  if (status === 429) return "Too many attempts. Wait a moment and try again.";
  if (status >= 500) return `The Capstan core failed to answer (HTTP ${status}).`;
  return `The request failed (HTTP ${status}).`;
}
