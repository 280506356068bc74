// Registers a node: asks for a name, then shows the new ID and key once with the commands that
// start its agent. Stays open until the user closes it, so the key cannot vanish unseen.

import { useState, type FormEvent } from "react";
import { agentsApi } from "../../api/endpoints";
import { ApiError, toApiError } from "../../api/error";
import type { AgentWithKey } from "../../api/types";
import { Dialog } from "../../components/Dialog";
import { NodeCredentials } from "./NodeCredentials";
import type { CoreUrl } from "./useCoreUrl";
import { NODE_NAME_MAX, nodeNameProblem } from "./nodeName";

interface AddNodeDialogProps {
  coreUrl: CoreUrl;
  onCreated: () => void;
  onClose: () => void;
}

export function AddNodeDialog({ coreUrl, onCreated, onClose }: AddNodeDialogProps) {
  const [name, setName] = useState("");
  const [attempted, setAttempted] = useState(false);
  const [busy, setBusy] = useState(false);
  const [serverError, setServerError] = useState<ApiError | null>(null);
  const [created, setCreated] = useState<AgentWithKey | null>(null);

  if (created !== null) {
    return (
      <Dialog title={`Node “${created.name}” added`} onClose={onClose} dismissible={false} wide>
        <NodeCredentials agent={created} coreUrl={coreUrl} />
        <div className="dialog-actions">
          <button type="button" className="btn btn-primary" onClick={onClose}>
            Done
          </button>
        </div>
      </Dialog>
    );
  }

  const trimmed = name.trim();
  const problem = nodeNameProblem(trimmed);
  const showProblem = problem !== null && (attempted || trimmed.length > 0);
  const nameError = showProblem ? problem : serverError?.field === "name" ? serverError.message : null;
  const generalError = serverError !== null && serverError.field !== "name" ? serverError.message : null;

  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    setAttempted(true);
    if (problem !== null) return;
    setBusy(true);
    setServerError(null);
    try {
      const agent = await agentsApi.create({ name: trimmed });
      setCreated(agent);
      onCreated();
    } catch (err) {
      setServerError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog title="Add a node" onClose={onClose}>
      <form onSubmit={(event) => void submit(event)} noValidate>
        <p className="muted">
          A node is a Docker host running the Capstan agent. Name it, then run the command shown next on the host.
        </p>
        <label className="field">
          <span className="field-label">Name</span>
          <input
            name="name"
            data-testid="add-node-name"
            placeholder="e.g. web-01"
            autoComplete="off"
            autoCapitalize="none"
            spellCheck={false}
            autoFocus
            maxLength={NODE_NAME_MAX + 20}
            value={name}
            aria-invalid={nameError !== null ? true : undefined}
            aria-describedby="add-node-name-help"
            onChange={(event) => {
              setName(event.target.value);
              setServerError(null);
            }}
          />
          {nameError !== null ? (
            <span className="field-error" id="add-node-name-help" role="alert" data-testid="add-node-name-error">
              {nameError}
            </span>
          ) : (
            <span className="field-help" id="add-node-name-help">
              1–63 characters: letters, digits, “-”, “_” and “.”, starting with a letter or digit.
            </span>
          )}
        </label>
        {generalError !== null && (
          <p className="form-error" role="alert" data-testid="add-node-error">
            {generalError}
          </p>
        )}
        <div className="dialog-actions">
          <button type="button" className="btn btn-secondary" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" data-testid="add-node-submit" disabled={busy}>
            {busy ? "Adding…" : "Add node"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
