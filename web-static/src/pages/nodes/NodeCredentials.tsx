// Shows a node's ID and freshly issued key, once, with the commands that start its agent.
// Both command panels stay in the DOM (the inactive one hidden) so either can be read or copied.

import { useState } from "react";
import type { AgentWithKey } from "../../api/types";
import { CopyButton } from "../../components/CopyButton";
import { binaryCommand, dockerCommand } from "./agentCommand";

type Tab = "binary" | "docker";

export function NodeCredentials({ agent, coreUrl }: { agent: AgentWithKey; coreUrl: string }) {
  const [tab, setTab] = useState<Tab>("binary");
  const credentials = { coreUrl, id: agent.id, key: agent.key };
  const commands: Record<Tab, { label: string; text: string; hint: string }> = {
    binary: {
      label: "Binary",
      text: binaryCommand(credentials),
      hint: "Run on the host where the capstan-agent binary is installed.",
    },
    docker: {
      label: "Docker",
      text: dockerCommand(credentials),
      hint: "Runs the agent as a container with access to the host and its Docker socket.",
    },
  };

  return (
    <div className="credentials">
      <div className="callout callout-warning" role="note">
        <strong>Copy the key now: the key is shown only once.</strong> If it gets lost, rotate the key to get a new one.
      </div>

      <dl className="secret-list">
        <div className="secret-row">
          <dt>Node ID</dt>
          <dd>
            <code data-testid="new-node-id">{agent.id}</code>
            <CopyButton text={agent.id} what="node ID" />
          </dd>
        </div>
        <div className="secret-row">
          <dt>Key</dt>
          <dd>
            <code data-testid="new-node-key">{agent.key}</code>
            <CopyButton text={agent.key} what="key" />
          </dd>
        </div>
      </dl>

      <h3 className="section-title">Start the agent on {agent.name}</h3>
      <div className="tabs" role="tablist" aria-label="How to run the agent">
        {(Object.keys(commands) as Tab[]).map((key) => (
          <button
            key={key}
            type="button"
            role="tab"
            id={`tab-${key}`}
            aria-controls={`panel-${key}`}
            aria-selected={tab === key}
            className={tab === key ? "tab active" : "tab"}
            onClick={() => setTab(key)}
          >
            {commands[key].label}
          </button>
        ))}
      </div>
      {(Object.keys(commands) as Tab[]).map((key) => (
        <div key={key} role="tabpanel" id={`panel-${key}`} aria-labelledby={`tab-${key}`} hidden={tab !== key}>
          <p className="muted small">{commands[key].hint}</p>
          <div className="command">
            <pre>
              <code data-testid={`new-node-command-${key}`}>{commands[key].text}</code>
            </pre>
            <CopyButton text={commands[key].text} what={`${commands[key].label.toLowerCase()} command`} />
          </div>
        </div>
      ))}
      <p className="muted small">
        The node shows as <em>waiting</em> until its agent sends the first heartbeat, then turns <em>online</em>.
      </p>
    </div>
  );
}
