// The Nodes page: the live list of hosts, and the dialogs that add, re-key and delete them.

import { useMemo, useState } from "react";
import { agentsApi } from "../../api/endpoints";
import { toApiError } from "../../api/error";
import type { Agent, RoutingNode } from "../../api/types";
import { ConfirmDialog } from "../../components/ConfirmDialog";
import { useSettling } from "../../hooks/useSettling";
import { AddNodeDialog } from "./AddNodeDialog";
import { JoinTokens } from "./JoinTokens";
import { useNow } from "./lastSeen";
import { NodeTable, nodeStatus } from "./NodeTable";
import { RotateKeyDialog } from "./RotateKeyDialog";
import { useAgents } from "./useAgents";
import { useCoreUrl } from "./useCoreUrl";
import { useRouting } from "../services/useServices";

const POLL_MS = 2000;

type OpenDialog =
  | { kind: "none" }
  | { kind: "add" }
  | { kind: "rotate"; agent: Agent }
  | { kind: "delete"; agent: Agent };

export function NodesPage() {
  const { agents, error, reload } = useAgents(POLL_MS);
  const { data: routing, reload: reloadRouting } = useRouting(POLL_MS);
  const nginx = useMemo(
    () => (routing === null ? null : new Map<string, RoutingNode>(routing.nodes.map((node) => [node.node_id, node]))),
    [routing],
  );
  const edges = useMemo(() => (agents === null ? null : new Map(agents.map((a) => [a.id, a.edge]))), [agents]);
  const edgeSaving = useSettling(edges);
  const [edgeError, setEdgeError] = useState<string | null>(null);
  const now = useNow(1000);
  const coreUrl = useCoreUrl();
  const [dialog, setDialog] = useState<OpenDialog>({ kind: "none" });
  const close = () => setDialog({ kind: "none" });
  const openAdd = () => setDialog({ kind: "add" });

  const toggleEdge = async (agent: Agent, edge: boolean) => {
    setEdgeError(null);
    try {
      await edgeSaving.run(agent.id, edge, () => agentsApi.update(agent.id, { edge }));
    } catch (err) {
      setEdgeError(`Could not ${edge ? "make" : "stop making"} ${agent.name} an edge node: ${toApiError(err).message}`);
    } finally {
      reload();
      reloadRouting();
    }
  };

  return (
    <>
      <div className="page-header">
        <div>
          <h1>Nodes</h1>
          <p className="muted">Docker hosts running the Capstan agent.{agents !== null && agents.length > 0 && <Summary agents={agents} />}</p>
        </div>
        <button type="button" className="btn btn-primary" data-testid="add-node-button" onClick={openAdd}>
          <svg className="btn-icon" viewBox="0 0 20 20" aria-hidden="true">
            <path d="M10 4v12M4 10h12" stroke="currentColor" strokeWidth="2" strokeLinecap="round" />
          </svg>
          Add node
        </button>
      </div>

      {error !== null && (
        <div className="banner banner-error" role="status">
          Could not refresh the node list: {error.message} Retrying…
        </div>
      )}
      {edgeError !== null && (
        <div className="banner banner-error" role="alert">
          {edgeError}
        </div>
      )}

      {agents === null ? (
        error === null && <div className="table-card loading">Loading nodes…</div>
      ) : agents.length === 0 ? (
        <section className="empty-state">
          <div className="empty-icon" aria-hidden="true">
            <svg viewBox="0 0 48 48">
              <rect x="6" y="10" width="36" height="11" rx="3" />
              <rect x="6" y="27" width="36" height="11" rx="3" />
              <circle cx="13" cy="15.5" r="1.8" />
              <circle cx="13" cy="32.5" r="1.8" />
            </svg>
          </div>
          <h2>Add your first node</h2>
          <p>
            A node is a Docker host that runs the Capstan agent. Add one to get its ID and key, then paste the command shown
            into a shell on that host. It appears here as soon as its agent checks in.
          </p>
          <button type="button" className="btn btn-primary" data-testid="empty-add-node-button" onClick={openAdd}>
            Add your first node
          </button>
        </section>
      ) : (
        <NodeTable
          agents={agents}
          now={now}
          routing={nginx}
          edgeSaving={edgeSaving.wanted}
          onToggleEdge={(agent, edge) => void toggleEdge(agent, edge)}
          onRotate={(agent) => setDialog({ kind: "rotate", agent })}
          onDelete={(agent) => setDialog({ kind: "delete", agent })}
        />
      )}

      <JoinTokens coreUrl={coreUrl} />

      {dialog.kind === "add" && <AddNodeDialog coreUrl={coreUrl} onCreated={reload} onClose={close} />}
      {dialog.kind === "rotate" && (
        <RotateKeyDialog agent={dialog.agent} coreUrl={coreUrl} onRotated={reload} onClose={close} />
      )}
      {dialog.kind === "delete" && (
        <ConfirmDialog
          title={`Delete node “${dialog.agent.name}”?`}
          confirmLabel="Delete node"
          danger
          onClose={close}
          onConfirm={async () => {
            await agentsApi.remove(dialog.agent.id);
            close();
            reload();
          }}
        >
          <p>
            Capstan forgets <strong>{dialog.agent.name}</strong> and its key stops working. The agent on the host keeps
            running until you stop it there. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}

function Summary({ agents }: { agents: Agent[] }) {
  const online = agents.filter((agent) => nodeStatus(agent) === "online").length;
  return (
    <>
      {" "}
      <span className="summary">
        {online} of {agents.length} online
      </span>
    </>
  );
}
