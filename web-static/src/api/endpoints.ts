// Typed functions for the core's resource endpoints. Paths are written as OpenAPI templates so
// e2e/check-openapi.mjs can check each (method, path) against the core's /api/openapi.json.
// The auth endpoints (login, refresh, logout) live in session.ts.

import { call } from "./client";
import { send } from "./transport";
import type {
  Agent,
  AgentWithKey,
  CreateAgentRequest,
  CreateJoinTokenRequest,
  Info,
  JoinToken,
  JoinTokenWithSecret,
  LogPollResult,
  Me,
  Ping,
  Routing,
  Service,
  ServiceInput,
  UpdateAgentRequest,
} from "./types";

export const systemApi = {
  ping: (): Promise<Ping> => send<Ping>("GET", "/api/ping"),
  info: (): Promise<Info> => call<Info>("GET", "/api/info"),
  me: (): Promise<Me> => call<Me>("GET", "/api/auth/me"),
};

export const agentsApi = {
  list: (signal?: AbortSignal): Promise<Agent[]> => call<Agent[]>("GET", "/api/agents", signal ? { signal } : {}),
  get: (id: string, signal?: AbortSignal): Promise<Agent> =>
    call<Agent>("GET", "/api/agents/{id}", signal ? { path: { id }, signal } : { path: { id } }),
  create: (body: CreateAgentRequest): Promise<AgentWithKey> =>
    call<AgentWithKey>("POST", "/api/agents", { body }),
  update: (id: string, body: UpdateAgentRequest): Promise<Agent> =>
    call<Agent>("PATCH", "/api/agents/{id}", { path: { id }, body }),
  remove: (id: string): Promise<void> => call<void>("DELETE", "/api/agents/{id}", { path: { id } }),
  rotateKey: (id: string): Promise<AgentWithKey> =>
    call<AgentWithKey>("POST", "/api/agents/{id}/rotate-key", { path: { id } }),
};

export const joinTokensApi = {
  list: (): Promise<JoinToken[]> => call<JoinToken[]>("GET", "/api/join-tokens"),
  create: (body: CreateJoinTokenRequest): Promise<JoinTokenWithSecret> =>
    call<JoinTokenWithSecret>("POST", "/api/join-tokens", { body }),
  remove: (id: string): Promise<void> => call<void>("DELETE", "/api/join-tokens/{id}", { path: { id } }),
};

export const servicesApi = {
  list: (signal?: AbortSignal): Promise<Service[]> => call<Service[]>("GET", "/api/services", signal ? { signal } : {}),
  get: (id: string, signal?: AbortSignal): Promise<Service> =>
    call<Service>("GET", "/api/services/{id}", signal ? { path: { id }, signal } : { path: { id } }),
  create: (body: ServiceInput): Promise<Service> => call<Service>("POST", "/api/services", { body }),
  update: (id: string, body: ServiceInput): Promise<Service> =>
    call<Service>("PUT", "/api/services/{id}", { path: { id }, body }),
  remove: (id: string): Promise<void> => call<void>("DELETE", "/api/services/{id}", { path: { id } }),
};

export const routingApi = {
  get: (signal?: AbortSignal): Promise<Routing> => call<Routing>("GET", "/api/routing", signal ? { signal } : {}),
};

export const logsApi = {
  /**
   * New lines of a container's (or `nginx:access` / `nginx:error`) logs after `cursor` (null: start
   * watching). With a cursor and `waitSecs` > 0 the core holds the request until lines exist (a
   * long-poll), answering empty at the deadline.
   */
  poll: (
    id: string,
    source: string,
    cursor: number | null,
    tail: number,
    signal?: AbortSignal,
    waitSecs = 0,
  ): Promise<LogPollResult> =>
    call<LogPollResult>("GET", "/api/agents/{id}/logs/{source}", {
      path: { id, source },
      query:
        cursor === null
          ? { tail: String(tail) }
          : waitSecs > 0
            ? { cursor: String(cursor), wait: String(waitSecs) }
            : { cursor: String(cursor) },
      ...(signal ? { signal } : {}),
    }),
};
