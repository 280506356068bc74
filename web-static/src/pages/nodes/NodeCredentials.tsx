// Shows a node's ID and freshly issued key, once, with the commands that start its agent.
// Both command panels stay in the DOM (the inactive one hidden) so either can be read or copied.
// The commands carry the core URL agents can reach (see useCoreUrl, warned about when loopback),
// and, when another agent already runs on the host, the state dir and NGINX ports this one needs
// of its own.

import { useState } from "react";
import type { AgentWithKey } from "../../api/types";
import { CopyButton } from "../../components/CopyButton";
import { binaryCommand, defaultSideBySide, dockerCommand, type SideBySide } from "./agentCommand";
import { CoreUrlNote } from "./CoreUrlNote";
import type { CoreUrl } from "./useCoreUrl";

type Tab = "binary" | "docker";

export function NodeCredentials({ agent, coreUrl }: { agent: AgentWithKey; coreUrl: CoreUrl }) {
  const [tab, setTab] = useState<Tab>("binary");
  const [sideBySide, setSideBySide] = useState<SideBySide | null>(null);
  const credentials = { coreUrl: coreUrl.url, id: agent.id, key: agent.key, sideBySide };
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
      <CoreUrlNote coreUrl={coreUrl} />
      <SideBySideSettings nodeName={agent.name} value={sideBySide} onChange={setSideBySide} />
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

/**
 * "Another agent already runs on this host": a second agent needs a state dir of its own (its
 * credentials and NGINX configs) and NGINX ports that the first agent's NGINX does not hold.
 */
function SideBySideSettings({
  nodeName,
  value,
  onChange,
}: {
  nodeName: string;
  value: SideBySide | null;
  onChange: (value: SideBySide | null) => void;
}) {
  return (
    <div className="side-by-side">
      <label className="checkbox-field">
        <input
          type="checkbox"
          data-testid="new-node-side-by-side"
          checked={value !== null}
          onChange={(event) => onChange(event.target.checked ? defaultSideBySide(nodeName) : null)}
        />
        <span>Another Capstan agent already runs on this host</span>
      </label>
      {value !== null && (
        <div className="side-by-side-fields" data-testid="new-node-side-by-side-settings">
          <p className="muted small">
            Two agents on one host must not share a state dir or NGINX ports: they would fight over one NGINX. The
            commands below give this one its own (in Docker, its own container name; its state volume is already its
            own).
          </p>
          <label className="field field-inline">
            <span className="field-label">State dir</span>
            <input
              data-testid="new-node-state-dir"
              spellCheck={false}
              value={value.stateDir}
              onChange={(event) => onChange({ ...value, stateDir: event.target.value })}
            />
          </label>
          <PortField label="NGINX HTTP port" testId="new-node-http-port" port={value.httpPort} onChange={(httpPort) => onChange({ ...value, httpPort })} />
          <PortField label="NGINX HTTPS port" testId="new-node-https-port" port={value.httpsPort} onChange={(httpsPort) => onChange({ ...value, httpsPort })} />
        </div>
      )}
    </div>
  );
}

/** A port input that may be cleared while typing; the commands keep the last valid port. */
function PortField({ label, testId, port, onChange }: { label: string; testId: string; port: number; onChange: (port: number) => void }) {
  const [text, setText] = useState(String(port));
  const valid = /^\d{1,5}$/.test(text) && Number(text) >= 1 && Number(text) <= 65535;
  return (
    <label className="field field-inline">
      <span className="field-label">{label}</span>
      <input
        inputMode="numeric"
        data-testid={testId}
        value={text}
        aria-invalid={valid ? undefined : true}
        title={valid ? undefined : "A port from 1 to 65535"}
        onChange={(event) => {
          setText(event.target.value);
          const n = Number(event.target.value);
          if (/^\d{1,5}$/.test(event.target.value) && n >= 1 && n <= 65535) onChange(n);
        }}
      />
    </label>
  );
}
