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
  Me,
  Ping,
} from "./types";

export const systemApi = {
  ping: (): Promise<Ping> => send<Ping>("GET", "/api/ping"),
  info: (): Promise<Info> => call<Info>("GET", "/api/info"),
  me: (): Promise<Me> => call<Me>("GET", "/api/auth/me"),
};

export const agentsApi = {
  list: (signal?: AbortSignal): Promise<Agent[]> => call<Agent[]>("GET", "/api/agents", signal ? { signal } : {}),
  get: (id: string): Promise<Agent> => call<Agent>("GET", "/api/agents/{id}", { path: { id } }),
  create: (body: CreateAgentRequest): Promise<AgentWithKey> =>
    call<AgentWithKey>("POST", "/api/agents", { body }),
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
