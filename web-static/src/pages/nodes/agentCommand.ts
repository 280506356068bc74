// The copy-paste commands that start an agent on a host, for the binary and for Docker.

export interface AgentCredentials {
  coreUrl: string;
  id: string;
  key: string;
  /** Set when another agent already runs on the host: what this one must not share with it. */
  sideBySide?: SideBySide | null;
}

/**
 * What a second agent on the same host needs of its own: a state dir (it holds the credentials
 * and the NGINX configs and pid of the agent using it) and NGINX ports (both NGINX masters
 * listen on the host). In Docker each container has its own state volume, so only its name and
 * the ports change.
 */
export interface SideBySide {
  stateDir: string;
  httpPort: number;
  httpsPort: number;
  containerName: string;
}

/** Defaults for a second agent next to one on the default ports (8080 is the core's default). */
export function defaultSideBySide(nodeName: string): SideBySide {
  return {
    stateDir: `/var/lib/capstan-agent-${nodeName}`,
    httpPort: 8081,
    httpsPort: 8444,
    containerName: `capstan-agent-${nodeName}`,
  };
}

function sideBySideEnv(s: SideBySide, withStateDir: boolean): string[] {
  return [
    ...(withStateDir ? [`CAPSTAN_AGENT_STATE_DIR=${shellWord(s.stateDir)}`] : []),
    `CAPSTAN_AGENT_NGINX_HTTP_PORT=${s.httpPort}`,
    `CAPSTAN_AGENT_NGINX_HTTPS_PORT=${s.httpsPort}`,
  ];
}

export function binaryCommand({ coreUrl, id, key, sideBySide }: AgentCredentials): string {
  return [
    `CORE_URL=${shellWord(coreUrl)}`,
    `AGENT_ID=${shellWord(id)}`,
    `AGENT_KEY=${shellWord(key)}`,
    ...(sideBySide ? sideBySideEnv(sideBySide, true) : []),
    "capstan-agent run",
  ].join(" ");
}

export function dockerCommand({ coreUrl, id, key, sideBySide }: AgentCredentials): string {
  const name = sideBySide ? sideBySide.containerName : "capstan-agent";
  return [
    `docker run -d --name ${shellWord(name)} --restart unless-stopped --privileged --network host`,
    "-v /:/host:ro -v /var/run/docker.sock:/var/run/docker.sock",
    [`-e CORE_URL=${shellWord(coreUrl)}`, `-e AGENT_ID=${shellWord(id)}`, `-e AGENT_KEY=${shellWord(key)}`]
      .concat(sideBySide ? sideBySideEnv(sideBySide, false).map((e) => `-e ${e}`) : [])
      .join(" "),
    "capstan/agent:latest",
  ].join(" ");
}

export function joinCommand(coreUrl: string, token: string): string {
  return `CORE_URL=${shellWord(coreUrl)} JOIN_TOKEN=${shellWord(token)} capstan-agent run`;
}

/** Quotes a value for a POSIX shell only when it needs it, so the usual command stays plain. */
function shellWord(value: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
