// The signed-in frame: product name, navigation and the user menu. Later modules
// (Certificates, Alerts) add their entry to NAV. Overview comes first: it is where the fleet's
// health shows at a glance, and the node, container and VM pages hang below it.

import type { ReactNode } from "react";
import { logout } from "../api/session";
import { Link } from "./router";

const NAV: { to: string; label: string; testId: string; matches: (path: string) => boolean }[] = [
  { to: "/overview", label: "Overview", testId: "overview-nav", matches: isMonitoringPath },
  { to: "/nodes", label: "Nodes", testId: "nodes-nav", matches: (path) => path === "/" || (path.startsWith("/nodes") && !isLogsPath(path) && !isMonitoringPath(path)) },
  { to: "/services", label: "Services", testId: "services-nav", matches: (path) => path.startsWith("/services") },
  { to: "/logs", label: "Logs", testId: "logs-nav", matches: isLogsPath },
];

/** The overview, and the node, container and VM pages reached from it. */
function isMonitoringPath(path: string): boolean {
  return path === "/overview" || /^\/nodes\/[^/]+(\/(containers|vms)\/[^/]+)?\/?$/.test(path);
}

function isLogsPath(path: string): boolean {
  return path === "/logs" || /^\/nodes\/[^/]+\/logs\/?$/.test(path);
}

export function Shell({ username, pathname, children }: { username: string; pathname: string; children: ReactNode }) {
  return (
    <div className="shell">
      <header className="topbar">
        <Link to="/nodes" className="brand" aria-label="Capstan home">
          <Logo />
          <span>Capstan</span>
        </Link>
        <div className="topbar-user">
          <span className="topbar-username" title="Signed in as">
            {username}
          </span>
          <button className="btn btn-ghost btn-small" data-testid="logout-button" onClick={() => void logout()}>
            Log out
          </button>
        </div>
      </header>
      <nav className="sidebar" aria-label="Main">
        {NAV.map((item) => {
          const active = item.matches(pathname);
          return (
            <Link
              key={item.to}
              to={item.to}
              className={active ? "nav-link active" : "nav-link"}
              data-testid={item.testId}
              aria-current={active ? "page" : undefined}
            >
              {item.label}
            </Link>
          );
        })}
      </nav>
      <main className="content">{children}</main>
    </div>
  );
}

export function Logo() {
  return (
    <svg className="logo" viewBox="0 0 32 32" aria-hidden="true">
      <rect width="32" height="32" rx="8" fill="currentColor" />
      <circle cx="16" cy="16" r="7" fill="none" stroke="white" strokeWidth="3" />
      <circle cx="16" cy="16" r="2" fill="white" />
    </svg>
  );
}
