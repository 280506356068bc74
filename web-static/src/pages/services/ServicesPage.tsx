// The Services page: the live list of services (domains routed to containers on the nodes),
// the routing map below it, and the delete confirmation. Creating and editing happen on their
// own pages (/services/new, /services/{id}/edit).

import { useMemo, useState } from "react";
import { servicesApi } from "../../api/endpoints";
import { toApiError } from "../../api/error";
import type { Service } from "../../api/types";
import { Link } from "../../app/router";
import { ConfirmDialog } from "../../components/ConfirmDialog";
import { useSettling } from "../../hooks/useSettling";
import { inputFromService } from "./draft";
import { RoutingSection } from "./RoutingSection";
import { ServiceTable } from "./ServiceTable";
import { useServices } from "./useServices";

const POLL_MS = 2000;

export function ServicesPage() {
  const { data: services, error, reload } = useServices(POLL_MS);
  const [deleting, setDeleting] = useState<Service | null>(null);
  const enabled = useMemo(() => (services === null ? null : new Map(services.map((s) => [s.id, s.enabled]))), [services]);
  const saving = useSettling(enabled);
  const [actionError, setActionError] = useState<string | null>(null);

  const toggleEnabled = async (service: Service, enabled: boolean) => {
    setActionError(null);
    try {
      await saving.run(service.id, enabled, () => servicesApi.update(service.id, { ...inputFromService(service), enabled }));
    } catch (err) {
      setActionError(`Could not ${enabled ? "enable" : "disable"} ${service.name}: ${toApiError(err).message}`);
    } finally {
      reload();
    }
  };

  return (
    <>
      <div className="page-header">
        <div>
          <h1>Services</h1>
          <p className="muted">
            Route domains to containers on your nodes, with load balancing across targets.
            {services !== null && services.length > 0 && <Summary services={services} />}
          </p>
        </div>
        <Link to="/services/new" className="btn btn-primary" data-testid="add-service-button">
          <svg className="btn-icon" viewBox="0 0 20 20" aria-hidden="true">
            <path d="M10 4v12M4 10h12" stroke="currentColor" strokeWidth="2" strokeLinecap="round" />
          </svg>
          Add service
        </Link>
      </div>

      {error !== null && (
        <div className="banner banner-error" role="status">
          Could not refresh the service list: {error.message} Retrying…
        </div>
      )}
      {actionError !== null && (
        <div className="banner banner-error" role="alert">
          {actionError}
        </div>
      )}

      {services === null ? (
        error === null && <div className="table-card loading">Loading services…</div>
      ) : services.length === 0 ? (
        <EmptyState />
      ) : (
        <ServiceTable
          services={services}
          saving={saving.wanted}
          onToggleEnabled={(service, enabled) => void toggleEnabled(service, enabled)}
          onDelete={setDeleting}
        />
      )}

      <RoutingSection />

      {deleting !== null && (
        <ConfirmDialog
          title={`Delete service “${deleting.name}”?`}
          confirmLabel="Delete service"
          danger
          onClose={() => setDeleting(null)}
          onConfirm={async () => {
            await servicesApi.remove(deleting.id);
            setDeleting(null);
            reload();
          }}
        >
          <p>
            The nodes stop serving <strong>{deleting.domains.join(", ") || deleting.name}</strong> as soon as they apply the
            change. The containers themselves keep running. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}

function EmptyState() {
  return (
    <section className="empty-state">
      <div className="empty-icon" aria-hidden="true">
        <svg viewBox="0 0 48 48">
          <circle cx="10" cy="24" r="5" />
          <rect x="30" y="8" width="12" height="9" rx="2" />
          <rect x="30" y="19.5" width="12" height="9" rx="2" />
          <rect x="30" y="31" width="12" height="9" rx="2" />
          <path d="M15 24h7M22 12.5v23M22 12.5h8M22 24h8M22 35.5h8" fill="none" />
        </svg>
      </div>
      <h2>Route a domain to containers on your nodes</h2>
      <p>
        A service is a set of domains (like <code>shop.example.com</code>) and the containers that answer them. Capstan
        configures NGINX on the chosen nodes to balance the traffic across those containers, and on edge nodes to forward
        it there.
      </p>
      <Link to="/services/new" className="btn btn-primary" data-testid="empty-add-service-button">
        Add your first service
      </Link>
    </section>
  );
}

function Summary({ services }: { services: Service[] }) {
  const failing = services.filter((s) => s.status.some((entry) => entry.state === "error")).length;
  return (
    <>
      {" "}
      <span className="summary">
        {services.length} {services.length === 1 ? "service" : "services"}
        {failing > 0 && `, ${failing} with errors`}
      </span>
    </>
  );
}
