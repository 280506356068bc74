// The create/edit form of a service. Problems found in the browser show next to their input
// once it was left or a save was attempted; the core's error (which always wins) shows at the
// top of the form and, when its `field` names something the form renders, next to that input.

import { useEffect, useId, useMemo, useRef, useState, type FormEvent } from "react";
import { servicesApi } from "../../api/endpoints";
import { toApiError, type ApiError } from "../../api/error";
import type { Balance } from "../../api/types";
import { Link, navigate } from "../../app/router";
import { Switch } from "../../components/Switch";
import { useAgents } from "../nodes/useAgents";
import { domainLines } from "./domains";
import {
  checkDraft,
  domainAt,
  emptyRoute,
  isAdvanced,
  locate,
  NAME_MAX,
  NUMBER_FIELDS,
  pruneDraft,
  slotsOf,
  type NumberField,
  type RouteDraft,
  type ServiceDraft,
} from "./draft";
import { BALANCE_HELP, BALANCE_LABEL } from "./format";
import { FieldError, FormContext, useField, useServiceForm, type ServiceFormContext } from "./formContext";
import { HeadersEditor } from "./HeadersEditor";
import { PlacementsEditor } from "./PlacementsEditor";

const AGENTS_POLL_MS = 5000;

interface ServerError {
  error: ApiError;
  /** The rendered field path the error belongs to, or null for the top of the form. */
  slot: string | null;
  /** For `domains[i]`: the domain sent at that index. */
  domain: string | null;
}

interface ServiceFormProps {
  initial: ServiceDraft;
  /** null when creating. */
  serviceId: string | null;
}

export function ServiceForm({ initial, serviceId }: ServiceFormProps) {
  const { agents } = useAgents(AGENTS_POLL_MS);
  const [draft, setDraft] = useState(initial);
  // Problems show at a field once it was left (touched), or once a save attempt found them
  // (revealed); rows added after a failed save stay quiet until then.
  const [touched, setTouched] = useState<ReadonlySet<string>>(new Set());
  const [revealed, setRevealed] = useState<ReadonlySet<string>>(new Set());
  const [busy, setBusy] = useState(false);
  const [serverError, setServerError] = useState<ServerError | null>(null);
  const [advancedOpen, setAdvancedOpen] = useState(() => advancedSummary(initial).length > 0);
  const [focusTick, setFocusTick] = useState(0);
  const formRef = useRef<HTMLFormElement>(null);
  const pointerDown = useRef(false);
  const pendingTouched = useRef<string[]>([]);
  const summaryRef = useRef<HTMLDivElement>(null);
  const idPrefix = `sf${useId().replace(/[^A-Za-z0-9]/g, "")}`;

  const checked = useMemo(() => checkDraft(draft), [draft]);
  // The summary lists the revealed problems still open; the domains box reports one per line.
  const problemLines = Object.entries(checked.problems)
    .filter(([path]) => revealed.has(path))
    .flatMap(([, problem]) => problem.split("\n"));

  // A new service on a core with exactly one node: that node is the obvious first choice.
  const only = agents?.length === 1 ? agents[0] : undefined;
  useEffect(() => {
    if (serviceId !== null || only === undefined) return;
    setDraft((d) => {
      const first = d.placements[0];
      if (d.placements.length !== 1 || first === undefined || first.node_id !== "") return d;
      return { ...d, placements: [{ ...first, node_id: only.id }] };
    });
  }, [serviceId, only]);

  // Leaving a field reveals its problem, which can move what is below it. When the field was left
  // by pressing on a button, that shift would land the release elsewhere and swallow the click,
  // so the reveal waits until the click has been dispatched.
  useEffect(() => {
    const down = () => {
      pointerDown.current = true;
    };
    const up = () =>
      window.setTimeout(() => {
        pointerDown.current = false;
        const fields = pendingTouched.current.splice(0);
        if (fields.length > 0) setTouched((prev) => new Set([...prev, ...fields]));
      }, 0);
    document.addEventListener("pointerdown", down, true);
    document.addEventListener("pointerup", up, true);
    document.addEventListener("pointercancel", up, true);
    return () => {
      document.removeEventListener("pointerdown", down, true);
      document.removeEventListener("pointerup", up, true);
      document.removeEventListener("pointercancel", up, true);
    };
  }, []);

  // After a failed save: focus the first field in trouble, else show the message at the top.
  useEffect(() => {
    if (focusTick === 0) return;
    const form = formRef.current;
    const invalid = form?.querySelector<HTMLElement>('[aria-invalid="true"]');
    if (invalid) {
      invalid.focus({ preventScroll: true });
      invalid.scrollIntoView({ block: "center", behavior: "smooth" });
      return;
    }
    const groupError = form?.querySelector<HTMLElement>('[data-testid="field-error"]');
    (groupError ?? summaryRef.current)?.scrollIntoView({ block: "center", behavior: "smooth" });
  }, [focusTick]);

  const context: ServiceFormContext = {
    agents,
    idPrefix,
    errorAt: (path) => {
      if (serverError !== null && serverError.slot === path) {
        const { message } = serverError.error;
        const domain = serverError.domain;
        return domain !== null && !mentions(message, domain) ? `“${domain}”: ${message}` : message;
      }
      const problem = checked.problems[path];
      return problem !== undefined && (revealed.has(path) || touched.has(path)) ? problem : null;
    },
  };

  const change = (patch: Partial<ServiceDraft>) => {
    setDraft((d) => ({ ...d, ...patch }));
    setServerError(null);
  };

  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    if (busy) return;
    const pruned = pruneDraft(draft);
    if (pruned !== draft) setDraft(pruned);
    const { input, problems } = checkDraft(pruned);
    const paths = Object.keys(problems);
    setRevealed(new Set(paths));
    setServerError(null);
    if (paths.length > 0) {
      if (paths.some(isAdvanced)) setAdvancedOpen(true);
      setFocusTick((t) => t + 1);
      return;
    }
    setBusy(true);
    try {
      if (serviceId === null) await servicesApi.create(input);
      else await servicesApi.update(serviceId, input);
      navigate("/services");
    } catch (err) {
      const error = toApiError(err);
      const slot = locate(error.field, slotsOf(pruned));
      setServerError({ error, slot, domain: domainAt(error.field, input.domains) });
      if (slot !== null && isAdvanced(slot)) setAdvancedOpen(true);
      setBusy(false);
      setFocusTick((t) => t + 1);
    }
  };

  const summary = advancedSummary(draft);

  return (
    <FormContext.Provider value={context}>
      <form
        ref={formRef}
        className="service-form"
        noValidate
        onSubmit={(event) => void submit(event)}
        onBlur={(event) => {
          const field = event.target instanceof HTMLElement ? event.target.dataset["field"] : undefined;
          if (field === undefined || touched.has(field)) return;
          if (pointerDown.current) pendingTouched.current.push(field);
          else setTouched((prev) => new Set(prev).add(field));
        }}
      >
        <div ref={summaryRef}>
          {serverError !== null ? (
            <div
              className="form-error"
              role="alert"
              data-testid="service-form-error"
              data-code={serverError.error.code}
              data-field={serverError.error.field ?? ""}
            >
              {serverError.error.message}
              {serverError.domain !== null && !mentions(serverError.error.message, serverError.domain) && ` (${serverError.domain})`}
            </div>
          ) : (
            problemLines.length > 0 && (
              <div className="form-error" role="alert" data-testid="service-form-error" data-code="client_validation">
                {problemLines.length === 1 ? "Fix this problem before saving:" : `Fix these ${problemLines.length} problems before saving:`}
                <ul>
                  {problemLines.slice(0, 6).map((line, i) => (
                    <li key={i}>{line}</li>
                  ))}
                  {problemLines.length > 6 && <li>…and {problemLines.length - 6} more, highlighted below.</li>}
                </ul>
              </div>
            )
          )}
        </div>

        <section className="form-card" aria-labelledby={`${idPrefix}-basics`}>
          <h2 id={`${idPrefix}-basics`}>Service</h2>
          <NameField value={draft.name} onChange={(name) => change({ name })} />
          <DomainsField value={draft.domains} converted={checked.converted} onChange={(domains) => change({ domains })} />
          <div className="form-row">
            <BalanceField value={draft.balance} onChange={(balance) => change({ balance })} />
            <div className="field">
              <span className="field-label">State</span>
              <Switch checked={draft.enabled} onChange={(enabled) => change({ enabled })} testId="service-enabled" data-field="enabled">
                {draft.enabled ? "Enabled: the nodes serve it" : "Disabled: saved, not served"}
              </Switch>
            </div>
          </div>
        </section>

        <section className="form-card" aria-labelledby={`${idPrefix}-targets`}>
          <h2 id={`${idPrefix}-targets`}>Targets</h2>
          <p className="muted small">
            Choose the nodes whose NGINX serves this service and, on each node, where it sends the traffic: containers on
            that node (by name, or every container with a label), or a fixed address. Traffic is balanced across all
            targets; a backup target gets traffic only when the others are down.
          </p>
          <PlacementsEditor at="placements" placements={draft.placements} onChange={(placements) => change({ placements })} testPrefix="" />
        </section>

        <details className="panel form-advanced" open={advancedOpen} onToggle={(event) => setAdvancedOpen(event.currentTarget.open)}>
          <summary data-testid="service-advanced">
            <span className="panel-title">Advanced</span>
            <span className="muted small">
              {summary.length > 0 ? summary.join(" · ") : "Path routes, timeouts, body size, headers, WebSocket, health checks"}
            </span>
          </summary>
          <div className="panel-body">
            <RoutesEditor routes={draft.routes} onChange={(routes) => change({ routes })} />

            <h3 className="form-subtitle">Timeouts and limits</h3>
            <div className="number-grid">
              {(["connect_timeout_secs", "read_timeout_secs", "send_timeout_secs", "client_max_body_size_mb"] as const).map((field) => (
                <NumberInput key={field} field={field} value={draft[field]} onChange={(value) => change({ [field]: value })} />
              ))}
            </div>

            <h3 className="form-subtitle">Passive health checks</h3>
            <p className="muted small">
              After <em>max fails</em> failed attempts within the <em>fail timeout</em>, NGINX stops sending traffic to a
              target for the fail timeout. 0 max fails turns this off.
            </p>
            <div className="number-grid">
              {(["max_fails", "fail_timeout_secs"] as const).map((field) => (
                <NumberInput key={field} field={field} value={draft[field]} onChange={(value) => change({ [field]: value })} />
              ))}
            </div>

            <h3 className="form-subtitle">Connections</h3>
            <Switch checked={draft.websocket} onChange={(websocket) => change({ websocket })} testId="service-websocket" data-field="websocket">
              WebSocket: pass connection upgrades through to the targets
            </Switch>

            <h3 className="form-subtitle">Headers</h3>
            <HeadersEditor
              at="request_headers"
              title="Request headers"
              help="Set on requests NGINX sends to the targets."
              headers={draft.request_headers}
              onChange={(request_headers) => change({ request_headers })}
            />
            <HeadersEditor
              at="response_headers"
              title="Response headers"
              help="Added to responses sent to clients."
              headers={draft.response_headers}
              onChange={(response_headers) => change({ response_headers })}
            />
          </div>
        </details>

        <div className="form-actions">
          <Link to={serviceId === null ? "/services" : `/services/${encodeURIComponent(serviceId)}`} className="btn btn-secondary">
            Cancel
          </Link>
          <button type="submit" className="btn btn-primary" data-testid="service-submit" disabled={busy}>
            {busy ? "Saving…" : serviceId === null ? "Create service" : "Save changes"}
          </button>
        </div>
      </form>
    </FormContext.Provider>
  );
}

function mentions(message: string, domain: string): boolean {
  return message.toLowerCase().includes(domain.trim().toLowerCase());
}

/** Short notes on advanced settings that differ from the defaults. */
function advancedSummary(draft: ServiceDraft): string[] {
  const notes: string[] = [];
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  if (draft.routes.length > 0) notes.push(plural(draft.routes.length, "path route"));
  const headers = draft.request_headers.length + draft.response_headers.length;
  if (headers > 0) notes.push(plural(headers, "header"));
  const changed = (Object.keys(NUMBER_FIELDS) as NumberField[]).filter((f) => draft[f].trim() !== String(NUMBER_FIELDS[f].default));
  if (changed.length > 0) notes.push(`${plural(changed.length, "setting")} changed`);
  if (!draft.websocket) notes.push("WebSocket off");
  return notes;
}

function NameField({ value, onChange }: { value: string; onChange: (value: string) => void }) {
  const { idPrefix } = useServiceForm();
  const field = useField("name");
  return (
    <label className="field" htmlFor={`${idPrefix}-name`}>
      <span className="field-label">Name</span>
      <input
        id={`${idPrefix}-name`}
        data-testid="service-name"
        placeholder="e.g. shop"
        autoComplete="off"
        autoCapitalize="none"
        spellCheck={false}
        autoFocus
        maxLength={NAME_MAX + 20}
        value={value}
        onChange={(event) => onChange(event.target.value)}
        {...field.props}
      />
      {field.error !== null ? (
        <FieldError path="name" id={field.errorId} message={field.error} />
      ) : (
        <span className="field-help">1–63 characters: letters, digits, “-”, “_” and “.”, starting with a letter or digit.</span>
      )}
    </label>
  );
}

interface DomainsFieldProps {
  value: string;
  converted: { typed: string; ascii: string }[];
  onChange: (value: string) => void;
}

function DomainsField({ value, converted, onChange }: DomainsFieldProps) {
  const { idPrefix } = useServiceForm();
  const field = useField("domains");
  const lines = domainLines(value).length;
  return (
    <label className="field" htmlFor={`${idPrefix}-domains`}>
      <span className="field-label">Domains</span>
      <textarea
        id={`${idPrefix}-domains`}
        data-testid="service-domains"
        rows={Math.min(10, Math.max(3, lines + 1))}
        placeholder={"shop.example.com\nwww.shop.example.com\n*.shop.example.com"}
        autoComplete="off"
        autoCapitalize="none"
        spellCheck={false}
        value={value}
        onChange={(event) => onChange(event.target.value)}
        {...field.props}
      />
      {field.error !== null ? (
        <FieldError path="domains" id={field.errorId} message={field.error} />
      ) : (
        <span className="field-help">
          One per line. <code>*.example.com</code> matches every subdomain of example.com. International names are stored in
          their ASCII (punycode) form.
        </span>
      )}
      {converted.length > 0 && (
        <span className="field-help" data-testid="service-domains-converted">
          Stored as:{" "}
          {converted.map((c, i) => (
            <span key={c.typed}>
              {i > 0 && ", "}
              {c.typed} → <code>{c.ascii}</code>
            </span>
          ))}
        </span>
      )}
    </label>
  );
}

function BalanceField({ value, onChange }: { value: Balance; onChange: (value: Balance) => void }) {
  const { idPrefix } = useServiceForm();
  const field = useField("balance");
  return (
    <label className="field" htmlFor={`${idPrefix}-balance`}>
      <span className="field-label">Load balancing</span>
      <select
        id={`${idPrefix}-balance`}
        data-testid="service-balance"
        value={value}
        onChange={(event) => onChange(event.target.value as Balance)}
        {...field.props}
      >
        {(Object.keys(BALANCE_LABEL) as Balance[]).map((b) => (
          <option key={b} value={b}>
            {BALANCE_LABEL[b]}
          </option>
        ))}
      </select>
      {field.error !== null ? (
        <FieldError path="balance" id={field.errorId} message={field.error} />
      ) : (
        <span className="field-help">{BALANCE_HELP[value]}</span>
      )}
    </label>
  );
}

function NumberInput({ field: name, value, onChange }: { field: NumberField; value: string; onChange: (value: string) => void }) {
  const { idPrefix } = useServiceForm();
  const field = useField(name);
  const spec = NUMBER_FIELDS[name];
  const id = `${idPrefix}-${name}`;
  const range = name === "client_max_body_size_mb" ? `0 = unlimited, up to ${spec.max}` : `${spec.min}–${spec.max}`;
  return (
    <label className="field" htmlFor={id}>
      <span className="field-label">
        {spec.label}
        {spec.unit !== "" && <span className="muted"> ({spec.unit})</span>}
      </span>
      <input
        id={id}
        inputMode="numeric"
        data-testid={`service-${name.replace(/_/g, "-")}`}
        value={value}
        onChange={(event) => onChange(event.target.value)}
        {...field.props}
      />
      {field.error !== null ? (
        <FieldError path={name} id={field.errorId} message={field.error} />
      ) : (
        <span className="field-help">
          {range}, default {spec.default}
        </span>
      )}
    </label>
  );
}

function RoutesEditor({ routes, onChange }: { routes: RouteDraft[]; onChange: (routes: RouteDraft[]) => void }) {
  const { errorAt } = useServiceForm();
  const listError = errorAt("routes");
  const replace = (index: number, next: RouteDraft) => onChange(routes.map((r, i) => (i === index ? next : r)));
  return (
    <div className="routes" data-field="routes">
      <h3 className="form-subtitle">Path routes</h3>
      <p className="muted small">
        Send requests whose path starts with a prefix (e.g. <code>/api/</code>) to other targets. The longest matching prefix
        wins; everything else goes to the service's targets above.
      </p>
      {routes.map((route, k) => (
        <RouteCard
          key={route.key}
          at={`routes[${k}]`}
          route={route}
          onChange={(next) => replace(k, next)}
          onRemove={() => onChange(routes.filter((_, i) => i !== k))}
        />
      ))}
      {listError !== null && (
        <p className="field-error" role="alert" data-testid="field-error" data-field="routes">
          {listError}
        </p>
      )}
      <button type="button" className="btn btn-ghost btn-small" data-testid="add-route-button" onClick={() => onChange([...routes, emptyRoute()])}>
        + Add path route
      </button>
    </div>
  );
}

function RouteCard({ at, route, onChange, onRemove }: { at: string; route: RouteDraft; onChange: (next: RouteDraft) => void; onRemove: () => void }) {
  const { errorAt, idPrefix } = useServiceForm();
  const path = useField(`${at}.path`);
  const id = `${idPrefix}-${at.replace(/[^A-Za-z0-9]+/g, "-")}-path`;
  const rowError = errorAt(at);
  return (
    <div className="route-card" data-testid="route" data-field={at}>
      <div className="placement-head">
        <label className="field field-node" htmlFor={id}>
          <span className="field-label">Path prefix</span>
          <input
            id={id}
            data-testid="route-path"
            placeholder="/api/"
            autoComplete="off"
            spellCheck={false}
            value={route.path}
            onChange={(event) => onChange({ ...route, path: event.target.value })}
            {...path.props}
          />
          <FieldError path={`${at}.path`} id={path.errorId} message={path.error} />
        </label>
        <button type="button" className="btn btn-danger-ghost btn-small" data-testid="remove-route-button" onClick={onRemove}>
          Remove route
        </button>
      </div>
      {rowError !== null && (
        <p className="field-error" role="alert" data-testid="field-error" data-field={at}>
          {rowError}
        </p>
      )}
      <PlacementsEditor
        at={`${at}.placements`}
        placements={route.placements}
        onChange={(placements) => onChange({ ...route, placements })}
        testPrefix="route-"
      />
    </div>
  );
}
