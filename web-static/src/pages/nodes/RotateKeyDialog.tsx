// Rotates a node's key after a confirmation, then shows the new key once, like AddNodeDialog.

import { useState } from "react";
import { agentsApi } from "../../api/endpoints";
import { toApiError } from "../../api/error";
import type { Agent, AgentWithKey } from "../../api/types";
import { ConfirmBody } from "../../components/ConfirmDialog";
import { Dialog } from "../../components/Dialog";
import { NodeCredentials } from "./NodeCredentials";
import type { CoreUrl } from "./useCoreUrl";

interface RotateKeyDialogProps {
  agent: Agent;
  coreUrl: CoreUrl;
  onRotated: () => void;
  onClose: () => void;
}

export function RotateKeyDialog({ agent, coreUrl, onRotated, onClose }: RotateKeyDialogProps) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [rotated, setRotated] = useState<AgentWithKey | null>(null);

  if (rotated !== null) {
    return (
      <Dialog title={`New key for “${rotated.name}”`} onClose={onClose} dismissible={false} wide>
        <NodeCredentials agent={rotated} coreUrl={coreUrl} />
        <div className="dialog-actions">
          <button type="button" className="btn btn-primary" onClick={onClose}>
            Done
          </button>
        </div>
      </Dialog>
    );
  }

  const rotate = async () => {
    setBusy(true);
    setError(null);
    try {
      setRotated(await agentsApi.rotateKey(agent.id));
      onRotated();
    } catch (err) {
      setError(toApiError(err).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog title={`Rotate the key of “${agent.name}”?`} onClose={onClose}>
      <ConfirmBody error={error}>
        <p>
          The current key stops working at once: the agent on <strong>{agent.hostname ?? agent.name}</strong> goes
          offline until you restart it with the new key, which is shown next.
        </p>
      </ConfirmBody>
      <div className="dialog-actions">
        <button type="button" className="btn btn-secondary" onClick={onClose} disabled={busy}>
          Cancel
        </button>
        <button
          type="button"
          className="btn btn-primary"
          data-testid="confirm-button"
          onClick={() => void rotate()}
          disabled={busy}
          autoFocus
        >
          {busy ? "Rotating…" : "Rotate key"}
        </button>
      </div>
    </Dialog>
  );
}
