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
  /** True: the refresh token comes back as an HttpOnly cookie, not in the body. */
  session_cookie?: boolean;
}

/**
 * Refresh and logout; without `refresh_token` the core uses the HttpOnly cookie (the UI's way).
 * @openapi-request RefreshRequest
 */
export interface RefreshRequest {
  refresh_token?: string | null;
}

/**
 * Answer of login and refresh. The refresh token rotates on every use; the UI asks for it in an
 * HttpOnly cookie, so `refresh_token` is absent from the bodies it receives.
 * @openapi-response TokenResponse
 */
export interface TokenPair {
  access_token: string;
  refresh_token?: string | null;
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
  /** Whether this node's NGINX also takes traffic for every domain and forwards it to the placements. */
  edge: boolean;
  /** Why the core refuses the agent's beats: it speaks a protocol version the core does not support. */
  protocol_error?: string | null;
  /** Metric series the node stores, its budget, and the series dropped for exceeding it. */
  metrics_series?: number;
  metrics_series_budget?: number;
  metrics_series_dropped?: number;
}

/** @openapi-request UpdateAgentRequest */
export interface UpdateAgentRequest {
  edge?: boolean;
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

// ---------- Reverse proxy: services and routing ----------

export type Balance = "round_robin" | "least_conn" | "ip_hash";

/**
 * Containers on the placement's node matching a name or a `key=value` label (exactly one of
 * them). The core answers with both keys, the unused one null.
 * @openapi-request TargetInput
 */
export interface ContainerTarget {
  kind: "container";
  container?: string | null;
  label?: string | null;
  port: number;
  weight?: number;
  backup?: boolean;
}

/**
 * A fixed `host:port` (an IP literal, IPv6 without brackets, or a host name), reached from the
 * placement's node.
 * @openapi-request TargetInput
 */
export interface AddressTarget {
  kind: "address";
  host: string;
  port: number;
  weight?: number;
  backup?: boolean;
}

export type Target = ContainerTarget | AddressTarget;

/**
 * One node's NGINX and the targets it balances over.
 * @openapi-request PlacementInput
 */
export interface Placement {
  node_id: string;
  targets: Target[];
}

/**
 * A path prefix with its own placements; `/` is the service's own placements.
 * @openapi-request RouteInput
 */
export interface PathRoute {
  path: string;
  placements: Placement[];
}

export interface Header {
  name: string;
  value: string;
}

/** @openapi-request ServiceInput */
export interface ServiceInput {
  name: string;
  enabled?: boolean;
  domains: string[];
  balance?: Balance;
  placements: Placement[];
  routes?: PathRoute[];
  connect_timeout_secs?: number;
  read_timeout_secs?: number;
  send_timeout_secs?: number;
  /** 0 means unlimited. */
  client_max_body_size_mb?: number;
  request_headers?: Header[];
  response_headers?: Header[];
  websocket?: boolean;
  max_fails?: number;
  fail_timeout_secs?: number;
}

export type ServiceNodeState = "applied" | "pending" | "error" | "offline";

/**
 * How one node's NGINX stands with a service: its placements' nodes and every edge.
 * @openapi-response ServiceNodeStatus
 */
export interface ServiceNodeStatus {
  node_id: string;
  node_name: string;
  role: "node" | "edge";
  state: ServiceNodeState;
  /** NGINX's message when the node failed to apply the config carrying this service. */
  error: string | null;
  warnings: string[];
}

/**
 * A service as stored, every default filled in.
 * @openapi-response ServiceView
 */
export interface Service {
  id: string;
  name: string;
  enabled: boolean;
  /** Lower-case ASCII: international names come back as punycode. */
  domains: string[];
  balance: Balance;
  placements: Placement[];
  routes: PathRoute[];
  connect_timeout_secs: number;
  read_timeout_secs: number;
  send_timeout_secs: number;
  client_max_body_size_mb: number;
  request_headers: Header[];
  response_headers: Header[];
  websocket: boolean;
  max_fails: number;
  fail_timeout_secs: number;
  created_at: string;
  updated_at: string;
  status: ServiceNodeStatus[];
}

/** @openapi-response NodeRef */
export interface RoutingNodeRef {
  node_id: string;
  node_name: string;
  online: boolean;
}

/**
 * One domain and who serves it: the nodes with its service's placements, and every edge.
 * @openapi-response DomainRoute
 */
export interface RoutingDomain {
  domain: string;
  service_id: string;
  service_name: string;
  enabled: boolean;
  nodes: RoutingNodeRef[];
  edges: RoutingNodeRef[];
}

export type RoutingState = "applied" | "pending" | "error" | "offline" | "unmanaged";

/** @openapi-response NodeRouting */
export interface RoutingNode {
  node_id: string;
  node_name: string;
  edge: boolean;
  online: boolean;
  /** Where the node's NGINX listens, as its agent reports it; null until it does. */
  address: string | null;
  http_port: number | null;
  https_port: number | null;
  /** Hex hash (16 digits) of the config the core wants on the node. */
  desired_version: string;
  /** Hex hash of the config the node last applied; all zeros before its first apply. */
  applied_version: string;
  state: RoutingState;
  /** NGINX's message for the last configuration the node failed to apply. */
  error: string | null;
  warnings: string[];
  reloads: number;
}

/** @openapi-response RoutingMap */
export interface Routing {
  domains: RoutingDomain[];
  nodes: RoutingNode[];
}

// ---------- Logs ----------

export type LogStream = "stdout" | "stderr" | "file";

/** One log line; `seq` grows by one per line of a source. @openapi-response Line */
export interface LogLine {
  seq: number;
  /** RFC 3339 with nanoseconds; may be "". */
  ts: string;
  stream: LogStream;
  text: string;
}

/** Answer of a logs poll: the lines after the cursor sent. @openapi-response PollResult */
export interface LogPollResult {
  lines: LogLine[];
  /** Send it with the next poll. */
  cursor: number;
  /** Lines lost before these (rate limit or the core's buffer), shown as a marker. */
  skipped: number;
  /** More lines are ready: poll again at once. */
  more: boolean;
  /** The agent has not answered yet. */
  pending: boolean;
  error: string | null;
}
