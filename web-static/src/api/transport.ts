// The bare HTTP exchange with the core: build the URL from an OpenAPI-style path template, send
// JSON, parse JSON, turn every failure into an ApiError. It knows nothing of sessions; client.ts
// adds the access token and the refresh-on-401 retry on top of it.

import { ApiError, isAbort } from "./error";

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface SendOptions {
  /** Values for `{name}` placeholders in the path template. */
  path?: Record<string, string>;
  /** Query-string parameters, appended encoded. */
  query?: Record<string, string>;
  body?: unknown;
  token?: string | null;
  signal?: AbortSignal;
}

export async function send<T>(method: Method, template: string, opts: SendOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.token) headers["Authorization"] = `Bearer ${opts.token}`;

  let res: Response;
  try {
    const query = opts.query === undefined ? "" : `?${new URLSearchParams(opts.query).toString()}`;
    res = await fetch(expandPath(template, opts.path) + query, {
      method,
      headers,
      body: opts.body === undefined ? null : JSON.stringify(opts.body),
      signal: opts.signal ?? null,
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    if (isAbort(err)) throw err;
    throw ApiError.network();
  }

  if (!res.ok) throw await ApiError.fromResponse(res);
  const text = await res.text();
  if (text === "") return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(res.status, "invalid_response", "The Capstan core sent an answer that is not JSON.");
  }
}

function expandPath(template: string, values: Record<string, string> = {}): string {
  return template.replace(/\{([a-z_]+)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`missing path parameter ${name} for ${template}`);
    return encodeURIComponent(value);
  });
}
