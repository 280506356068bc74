// Wire types of the Capstan core's HTTP API, one per request and response body. Field names stay
// snake_case so a body can be passed through without mapping. Each type names its schema in the
// core's /api/openapi.json with an `@openapi-request` / `@openapi-response` tag, and
// e2e/openapi-check.mjs checks the fields (and, for responses, their nullability) against it.

/**
 * The one error shape every failing API call answers with.
 * @openapi-response ErrorBody
 */
export interface ApiErrorBody {
  error: {
    code: string;
    message: string;
    field?: string | null;
  };
}

/** @openapi-request LoginRequest */
export interface LoginRequest {
  username: string;
  password: string;
}

/** @openapi-request RefreshRequest */
export interface RefreshRequest {
  refresh_token: string;
}

/** @openapi-request RefreshRequest */
export interface LogoutRequest {
  refresh_token: string;
}

/**
 * Answer of login and refresh; the refresh token rotates on every use.
 * @openapi-response TokenResponse
 */
export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: "Bearer";
  /** Lifetime of the access token, in seconds. */
  expires_in: number;
  username: string;
}

/** @openapi-response Me */
export interface Me {
  username: string;
}

/** @openapi-response Info */
export interface Info {
  version: string;
  /** The URL agents should use to reach the core, when the operator configured one. */
  public_url: string | null;
  /** Version of the core ↔ agent protocol. */
  protocol?: number;
}

/** @openapi-response Ping */
export interface Ping {
  status: "ok";
  version: string;
}

export type AgentStatus = "online" | "offline";

/** @openapi-response AgentView */
export interface Agent {
  id: string;
  name: string;
  hostname: string | null;
  version: string | null;
  os: string | null;
  status: AgentStatus;
  /** RFC 3339 UTC; null until the agent's first heartbeat. */
  last_seen_at: string | null;
  created_at: string;
  uptime_secs: number | null;
  /** How often the agent says it beats; null until its first heartbeat. */
  heartbeat_interval_ms?: number | null;
  applied_config_version: number;
  desired_config_version: number;
}

/** @openapi-request CreateAgentRequest */
export interface CreateAgentRequest {
  name: string;
}

/**
 * An agent together with its key, which the core returns only on creation and rotation.
 * @openapi-response AgentWithKey
 */
export interface AgentWithKey extends Agent {
  key: string;
}

/** @openapi-request CreateJoinTokenRequest */
export interface CreateJoinTokenRequest {
  ttl_secs?: number;
  max_uses?: number;
}

/** @openapi-response JoinTokenView */
export interface JoinToken {
  id: string;
  expires_at: string;
  max_uses: number;
  uses: number;
  created_at: string;
}

/**
 * A join token together with its secret, which the core returns only on creation (the spec
 * shares one schema with the list, where `token` is absent).
 * @openapi-response JoinTokenView
 * @openapi-narrows token
 */
export interface JoinTokenWithSecret extends JoinToken {
  token: string;
}
