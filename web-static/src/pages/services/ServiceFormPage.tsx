// /services/new and /services/{id}/edit: loads the service once (a poll would overwrite the
// user's edits), then hands it to the form.

import { useEffect, useState } from "react";
import { servicesApi } from "../../api/endpoints";
import { isAbort, toApiError, type ApiError } from "../../api/error";
import type { Service } from "../../api/types";
import { Link } from "../../app/router";
import { draftFromService, emptyDraft } from "./draft";
import { ServiceForm } from "./ServiceForm";

export function ServiceFormPage({ serviceId }: { serviceId: string | null }) {
  const [service, setService] = useState<Service | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => {
    if (serviceId === null) return;
    const controller = new AbortController();
    setService(null);
    setError(null);
    servicesApi
      .get(serviceId, controller.signal)
      .then(setService)
      .catch((err: unknown) => {
        if (!isAbort(err)) setError(toApiError(err));
      });
    return () => controller.abort();
  }, [serviceId]);

  return (
    <>
      <div className="page-header">
        <div>
          <Link to="/services" className="back-link">
            ← Services
          </Link>
          <h1>{serviceId === null ? "Add a service" : `Edit ${service?.name ?? "service"}`}</h1>
          <p className="muted">
            {serviceId === null
              ? "Route one or more domains to containers on your nodes."
              : "Changes reach the nodes' NGINX as soon as you save."}
          </p>
        </div>
      </div>
      {serviceId === null ? (
        <ServiceForm initial={emptyDraft()} serviceId={null} />
      ) : error !== null ? (
        <div className="banner banner-error" role="alert">
          {error.status === 404 ? "This service does not exist (any more)." : `Could not load the service: ${error.message}`}{" "}
          <Link to="/services">Back to services</Link>
        </div>
      ) : service === null ? (
        <div className="table-card loading">Loading the service…</div>
      ) : (
        <ServiceForm key={service.id} initial={draftFromService(service)} serviceId={service.id} />
      )}
    </>
  );
}
