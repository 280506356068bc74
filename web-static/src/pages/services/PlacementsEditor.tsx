// Edits a list of placements: for each, the node whose NGINX serves it and the targets that
// NGINX balances over (containers on that node by name or label, or fixed host:port addresses).
// Used for the service's own targets (`placements`) and for each path route
// (`routes[k].placements`); `testPrefix` keeps the test IDs of the two apart.

import type { Agent } from "../../api/types";
import { Link } from "../../app/router";
import { nodeStatus } from "../nodes/NodeTable";
import { emptyPlacement, emptyTarget, WEIGHT_MAX, WEIGHT_MIN, type PlacementDraft, type TargetDraft, type TargetKind } from "./draft";
import { FieldError, useField, useServiceForm } from "./formContext";

interface PlacementsEditorProps {
  /** Field path of the list: `placements` or `routes[k].placements`. */
  at: string;
  placements: PlacementDraft[];
  onChange: (placements: PlacementDraft[]) => void;
  /** "" for the service's own placements, "route-" inside path routes. */
  testPrefix: string;
}

export function PlacementsEditor({ at, placements, onChange, testPrefix }: PlacementsEditorProps) {
  const { agents, errorAt } = useServiceForm();
  const listError = errorAt(at);

  const replace = (index: number, next: PlacementDraft) => onChange(placements.map((p, i) => (i === index ? next : p)));
  const remove = (index: number) => onChange(placements.filter((_, i) => i !== index));
  const add = () => {
    const used = new Set(placements.map((p) => p.node_id));
    const free = agents?.find((agent) => !used.has(agent.id));
    onChange([...placements, emptyPlacement(placements.length === 0 && agents?.length === 1 ? (free?.id ?? "") : "")]);
  };

  return (
    <div className="placements">
      {placements.map((placement, i) => (
        <PlacementCard
          key={placement.key}
          at={`${at}[${i}]`}
          placement={placement}
          others={placements.filter((_, j) => j !== i).map((p) => p.node_id)}
          onChange={(next) => replace(i, next)}
          onRemove={() => remove(i)}
          testPrefix={testPrefix}
        />
      ))}
      {listError !== null && (
        <p className="field-error" role="alert" data-testid="field-error" data-field={at}>
          {listError}
        </p>
      )}
      {placements.length === 0 && at === "placements" && (
        <p className="muted small" data-testid="no-placements-note">
          No node serves this service's domains until you add one.
        </p>
      )}
      {agents !== null && agents.length === 0 && (
        <p className="callout callout-warning">
          There are no nodes yet. <Link to="/nodes">Add a node</Link> first: a service runs on the nodes' NGINX.
        </p>
      )}
      <button type="button" className="btn btn-ghost btn-small" data-testid={`${testPrefix}add-placement-button`} onClick={add}>
        + Add a node
      </button>
    </div>
  );
}

interface PlacementCardProps {
  at: string;
  placement: PlacementDraft;
  /** Node IDs chosen by the other placements of the same list. */
  others: string[];
  onChange: (next: PlacementDraft) => void;
  onRemove: () => void;
  testPrefix: string;
}

function PlacementCard({ at, placement, others, onChange, onRemove, testPrefix }: PlacementCardProps) {
  const { agents, errorAt, idPrefix } = useServiceForm();
  const node = useField(`${at}.node_id`);
  const selectId = `${idPrefix}-${at.replace(/[^A-Za-z0-9]+/g, "-")}-node`;
  const known = agents?.some((agent) => agent.id === placement.node_id) ?? true;
  const groupError = errorAt(at);
  const targetsError = errorAt(`${at}.targets`);

  const setTargets = (targets: TargetDraft[]) => onChange({ ...placement, targets });

  return (
    <fieldset className="placement" data-testid={`${testPrefix}placement`} data-field={at}>
      <legend className="visually-hidden">Node and targets</legend>
      <div className="placement-head">
        <label className="field field-node" htmlFor={selectId}>
          <span className="field-label">Node</span>
          <select
            id={selectId}
            data-testid={`${testPrefix}placement-node-select`}
            value={placement.node_id}
            onChange={(event) => onChange({ ...placement, node_id: event.target.value })}
            {...node.props}
          >
            <option value="">{agents === null ? "Loading nodes…" : "Choose a node…"}</option>
            {!known && placement.node_id !== "" && <option value={placement.node_id}>unknown node {placement.node_id.slice(0, 8)}</option>}
            {(agents ?? []).map((agent) => (
              <option key={agent.id} value={agent.id} disabled={others.includes(agent.id)}>
                {agentLabel(agent)}
              </option>
            ))}
          </select>
          <FieldError path={`${at}.node_id`} id={node.errorId} message={node.error} />
        </label>
        <button
          type="button"
          className="btn btn-danger-ghost btn-small"
          data-testid={`${testPrefix}remove-placement-button`}
          onClick={onRemove}
          aria-label="Remove this node and its targets"
        >
          Remove node
        </button>
      </div>
      {groupError !== null && (
        <p className="field-error" role="alert" data-testid="field-error" data-field={at}>
          {groupError}
        </p>
      )}

      <div className="targets" role="group" aria-label="Targets">
        {placement.targets.length > 0 && (
          <div className="target-grid target-grid-head" aria-hidden="true">
            <span>Kind</span>
            <span>Container name, label or host</span>
            <span>Port</span>
            <span>Weight</span>
            <span>Backup</span>
            <span />
          </div>
        )}
        {placement.targets.map((target, j) => (
          <TargetRow
            key={target.key}
            at={`${at}.targets[${j}]`}
            target={target}
            onChange={(next) => setTargets(placement.targets.map((t, k) => (k === j ? next : t)))}
            onRemove={() => setTargets(placement.targets.filter((_, k) => k !== j))}
            testPrefix={testPrefix}
          />
        ))}
        {targetsError !== null && (
          <p className="field-error" role="alert" data-testid="field-error" data-field={`${at}.targets`}>
            {targetsError}
          </p>
        )}
        <button
          type="button"
          className="btn btn-ghost btn-small"
          data-testid={`${testPrefix}add-target-button`}
          onClick={() => setTargets([...placement.targets, emptyTarget()])}
        >
          + Add target
        </button>
      </div>
    </fieldset>
  );
}

function agentLabel(agent: Agent): string {
  const notes = [nodeStatus(agent) !== "online" ? nodeStatus(agent) : null, agent.edge ? "edge" : null].filter((n) => n !== null);
  return notes.length > 0 ? `${agent.name} (${notes.join(", ")})` : agent.name;
}

interface TargetRowProps {
  at: string;
  target: TargetDraft;
  onChange: (next: TargetDraft) => void;
  onRemove: () => void;
  testPrefix: string;
}

function TargetRow({ at, target, onChange, onRemove, testPrefix }: TargetRowProps) {
  const { errorAt } = useServiceForm();
  const kind = useField(`${at}.kind`);
  const container = useField(`${at}.container`);
  const label = useField(`${at}.label`);
  const host = useField(`${at}.host`);
  const port = useField(`${at}.port`);
  const weight = useField(`${at}.weight`);
  const backup = useField(`${at}.backup`);
  const rowError = errorAt(at);
  const set = (patch: Partial<TargetDraft>) => onChange({ ...target, ...patch });
  const tid = (name: string) => `${testPrefix}${name}`;

  // "10.0.0.5:8080" or "[::1]:8080" typed into the host box: move the port to its own box
  // (when that is empty), and drop the brackets the core does not take.
  const splitHostPort = () => {
    const host = target.host.trim();
    const match = host.match(/^(\[[0-9A-Fa-f:.]+\]|[^:\s]+):(\d{1,5})$/);
    if (match?.[1] !== undefined && match[2] !== undefined && target.port.trim() === "") {
      set({ host: match[1].replace(/^\[(.*)\]$/, "$1"), port: match[2] });
    } else if (/^\[[0-9A-Fa-f:.]+\]$/.test(host)) {
      set({ host: host.slice(1, -1) });
    }
  };

  const errors = [kind, container, label, host, port, weight, backup];
  const paths = ["kind", "container", "label", "host", "port", "weight", "backup"].map((f) => `${at}.${f}`);

  return (
    <div className="target" data-testid={tid("target-row")} data-field={at}>
      <div className="target-grid">
        <select
          aria-label="Target kind"
          data-testid={tid("target-kind")}
          value={target.kind}
          onChange={(event) => set({ kind: event.target.value as TargetKind })}
          {...kind.props}
        >
          <option value="container">Container</option>
          <option value="address">Address</option>
        </select>
        {target.kind === "container" ? (
          <div className="target-match target-where">
            <input
              aria-label="Container name"
              placeholder="container name"
              data-testid={tid("target-container")}
              autoComplete="off"
              spellCheck={false}
              value={target.container}
              onChange={(event) => set({ container: event.target.value })}
              {...container.props}
            />
            <span className="muted small">or</span>
            <input
              aria-label="Container label (key=value)"
              placeholder="label key=value"
              data-testid={tid("target-label")}
              autoComplete="off"
              spellCheck={false}
              value={target.label}
              onChange={(event) => set({ label: event.target.value })}
              {...label.props}
            />
          </div>
        ) : (
          <input
            className="target-where"
            aria-label="Host name or IP address"
            placeholder="host or IP, e.g. 10.0.0.5"
            data-testid={tid("target-host")}
            autoComplete="off"
            spellCheck={false}
            value={target.host}
            onChange={(event) => set({ host: event.target.value })}
            onBlur={splitHostPort}
            {...host.props}
          />
        )}
        <input
          aria-label="Port"
          placeholder="80"
          inputMode="numeric"
          data-testid={tid("target-port")}
          value={target.port}
          onChange={(event) => set({ port: event.target.value })}
          {...port.props}
        />
        <input
          aria-label="Weight"
          inputMode="numeric"
          title={`Share of the traffic, ${WEIGHT_MIN}–${WEIGHT_MAX}`}
          data-testid={tid("target-weight")}
          value={target.weight}
          onChange={(event) => set({ weight: event.target.value })}
          {...weight.props}
        />
        <label className="checkbox" title="Gets traffic only when every other target is down">
          <input
            type="checkbox"
            data-testid={tid("target-backup")}
            checked={target.backup}
            onChange={(event) => set({ backup: event.target.checked })}
            {...backup.props}
          />
          <span className="visually-hidden">Backup</span>
        </label>
        <button type="button" className="icon-button" aria-label="Remove target" data-testid={tid("remove-target-button")} onClick={onRemove}>
          <svg viewBox="0 0 20 20" aria-hidden="true">
            <path d="M5 5l10 10M15 5L5 15" stroke="currentColor" strokeWidth="2" strokeLinecap="round" />
          </svg>
        </button>
      </div>
      {errors.map((field, i) => (
        <FieldError key={paths[i]} path={paths[i] ?? at} id={field.errorId} message={field.error} />
      ))}
      {rowError !== null && (
        <span className="field-error" role="alert" data-testid="field-error" data-field={at}>
          {rowError}
        </span>
      )}
    </div>
  );
}
