// `/logs`: pick the node whose logs to open.

import { agentsApi } from "../../api/endpoints";
import { Link } from "../../app/router";
import { usePoll } from "../../hooks/usePoll";

export function LogsIndexPage() {
  const agents = usePoll((signal) => agentsApi.list(signal), 5000);
  const list = agents.data ?? [];
  return (
    <div className="page" data-testid="logs-index">
      <div className="page-header">
        <div>
          <h1>Logs</h1>
          <p className="muted">Live container and NGINX logs, per node.</p>
        </div>
      </div>
      {agents.error !== null && <p className="form-error">{agents.error.message}</p>}
      {agents.data !== null && list.length === 0 && <p className="muted">No nodes yet.</p>}
      <ul className="logs-node-list">
        {list.map((agent) => (
          <li key={agent.id}>
            <Link to={`/nodes/${encodeURIComponent(agent.id)}/logs`} data-testid="logs-node-link" data-node-id={agent.id}>
              {agent.name}
            </Link>{" "}
            <span className={`badge badge-${agent.last_seen_at === null ? "waiting" : agent.status}`}>{agent.last_seen_at === null ? "waiting" : agent.status}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}
