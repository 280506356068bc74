// Top of the UI: decides between the restoring splash, the login page and the signed-in shell,
// and maps paths to pages. Pages never check the session themselves.

import { restoreSession } from "../api/session";
import { LoginPage } from "../pages/login/LoginPage";
import { LogsIndexPage } from "../pages/logs/LogsIndexPage";
import { LogsPage } from "../pages/logs/LogsPage";
import { ContainerPage } from "../pages/monitoring/ContainerPage";
import { NodeMetricsPage } from "../pages/monitoring/NodeMetricsPage";
import { OverviewPage } from "../pages/monitoring/OverviewPage";
import { VmPage } from "../pages/monitoring/VmPage";
import { NodesPage } from "../pages/nodes/NodesPage";
import { ServiceDetailPage } from "../pages/services/ServiceDetailPage";
import { ServiceFormPage } from "../pages/services/ServiceFormPage";
import { ServicesPage } from "../pages/services/ServicesPage";
import { NotFoundPage } from "./NotFoundPage";
import { Redirect, useLocation } from "./router";
import { Shell } from "./Shell";
import { useSession } from "./useSession";

export function App() {
  const session = useSession();
  const { pathname, search } = useLocation();

  if (session.kind === "restoring") {
    return <div className="splash" aria-busy="true">Loading Capstan…</div>;
  }
  if (session.kind === "unreachable") {
    return (
      <div className="splash">
        <div className="splash-card">
          <h1>Capstan is unreachable</h1>
          <p>{session.message}</p>
          <button className="btn btn-primary" onClick={() => void restoreSession()}>
            Try again
          </button>
        </div>
      </div>
    );
  }

  if (pathname === "/login") {
    if (session.kind === "signed-in") return <Redirect to={safeNext(search) ?? "/nodes"} />;
    return <LoginPage notice={session.reason === "expired" ? "Your session has expired. Sign in again." : null} />;
  }
  if (session.kind === "signed-out") {
    const next = pathname === "/" || pathname === "/nodes" ? "" : `?next=${encodeURIComponent(pathname + search)}`;
    return <Redirect to={`/login${next}`} />;
  }

  return (
    <Shell username={session.username} pathname={pathname}>
      {route(pathname)}
    </Shell>
  );
}

function route(pathname: string) {
  const path = pathname.replace(/\/+$/, "") || "/";
  switch (path) {
    case "/":
    case "/nodes":
      return <NodesPage />;
    case "/services":
      return <ServicesPage />;
    case "/services/new":
      return <ServiceFormPage serviceId={null} />;
    case "/logs":
      return <LogsIndexPage />;
    case "/overview":
      return <OverviewPage />;
  }
  const logs = path.match(/^\/nodes\/([^/]+)\/logs$/);
  if (logs?.[1] !== undefined) {
    const id = decodeURIComponent(logs[1]);
    return <LogsPage key={id} nodeId={id} />;
  }
  const guest = path.match(/^\/nodes\/([^/]+)\/(containers|vms)\/([^/]+)$/);
  if (guest?.[1] !== undefined && guest[3] !== undefined) {
    const id = decodeURIComponent(guest[1]);
    const name = decodeURIComponent(guest[3]);
    return guest[2] === "containers" ? (
      <ContainerPage key={`${id}/${name}`} nodeId={id} name={name} />
    ) : (
      <VmPage key={`${id}/${name}`} nodeId={id} name={name} />
    );
  }
  const node = path.match(/^\/nodes\/([^/]+)$/);
  if (node?.[1] !== undefined) {
    const id = decodeURIComponent(node[1]);
    return <NodeMetricsPage key={id} nodeId={id} />;
  }
  const service = path.match(/^\/services\/([^/]+)(\/edit)?$/);
  if (service?.[1] !== undefined) {
    const id = decodeURIComponent(service[1]);
    return service[2] !== undefined ? <ServiceFormPage key={id} serviceId={id} /> : <ServiceDetailPage key={id} serviceId={id} />;
  }
  return <NotFoundPage />;
}

/** Only same-app paths are accepted as a redirect target after login. */
function safeNext(search: string): string | null {
  const next = new URLSearchParams(search).get("next");
  return next !== null && next.startsWith("/") && !next.startsWith("//") ? next : null;
}
