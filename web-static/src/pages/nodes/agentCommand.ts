// The copy-paste commands that start an agent on a host, for the binary and for Docker.

export interface AgentCredentials {
  coreUrl: string;
  id: string;
  key: string;
}

export function binaryCommand({ coreUrl, id, key }: AgentCredentials): string {
  return `CORE_URL=${shellWord(coreUrl)} AGENT_ID=${shellWord(id)} AGENT_KEY=${shellWord(key)} capstan-agent run`;
}

export function dockerCommand({ coreUrl, id, key }: AgentCredentials): string {
  return [
    "docker run -d --name capstan-agent --restart unless-stopped --privileged --network host",
    "-v /:/host:ro -v /var/run/docker.sock:/var/run/docker.sock",
    `-e CORE_URL=${shellWord(coreUrl)} -e AGENT_ID=${shellWord(id)} -e AGENT_KEY=${shellWord(key)}`,
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
