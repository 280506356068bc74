// The service form's state ("draft"): what the inputs hold, as strings where the user types
// numbers, with a key per list item for React. `checkDraft` turns a draft into the ServiceInput
// the core receives, collecting problems keyed by the same field paths the core uses in its
// errors (`placements[0].targets[1].port`), so client and server problems land on the same input.

import type { Balance, Header, Placement, PathRoute, Service, ServiceInput, Target } from "../../api/types";
import { checkDomain, domainLines } from "./domains";

export type TargetKind = "container" | "address";

export interface TargetDraft {
  key: string;
  kind: TargetKind;
  container: string;
  label: string;
  host: string;
  port: string;
  weight: string;
  backup: boolean;
}

export interface PlacementDraft {
  key: string;
  node_id: string;
  targets: TargetDraft[];
}

export interface RouteDraft {
  key: string;
  path: string;
  placements: PlacementDraft[];
}

export interface HeaderDraft {
  key: string;
  name: string;
  value: string;
}

export interface ServiceDraft {
  name: string;
  enabled: boolean;
  /** One domain per line (commas also separate). */
  domains: string;
  balance: Balance;
  placements: PlacementDraft[];
  routes: RouteDraft[];
  connect_timeout_secs: string;
  read_timeout_secs: string;
  send_timeout_secs: string;
  client_max_body_size_mb: string;
  request_headers: HeaderDraft[];
  response_headers: HeaderDraft[];
  websocket: boolean;
  max_fails: string;
  fail_timeout_secs: string;
}

export type NumberField =
  | "connect_timeout_secs"
  | "read_timeout_secs"
  | "send_timeout_secs"
  | "client_max_body_size_mb"
  | "max_fails"
  | "fail_timeout_secs";

/** Ranges and defaults of the numeric settings, as the core defines them. */
export const NUMBER_FIELDS: Record<NumberField, { label: string; min: number; max: number; default: number; unit: string }> = {
  connect_timeout_secs: { label: "Connect timeout", min: 1, max: 3600, default: 5, unit: "s" },
  read_timeout_secs: { label: "Read timeout", min: 1, max: 3600, default: 60, unit: "s" },
  send_timeout_secs: { label: "Send timeout", min: 1, max: 3600, default: 60, unit: "s" },
  client_max_body_size_mb: { label: "Max request body", min: 0, max: 10240, default: 10, unit: "MB" },
  max_fails: { label: "Max fails", min: 0, max: 100, default: 3, unit: "" },
  fail_timeout_secs: { label: "Fail timeout", min: 1, max: 3600, default: 10, unit: "s" },
};

export const WEIGHT_MIN = 1;
export const WEIGHT_MAX = 100;
export const NAME_MAX = 63;

let counter = 0;
export function newKey(): string {
  counter += 1;
  return `k${counter}`;
}

export function emptyTarget(): TargetDraft {
  return { key: newKey(), kind: "container", container: "", label: "", host: "", port: "", weight: "1", backup: false };
}

export function emptyPlacement(nodeId = ""): PlacementDraft {
  return { key: newKey(), node_id: nodeId, targets: [emptyTarget()] };
}

export function emptyRoute(): RouteDraft {
  return { key: newKey(), path: "", placements: [emptyPlacement()] };
}

export function emptyHeader(): HeaderDraft {
  return { key: newKey(), name: "", value: "" };
}

export function emptyDraft(): ServiceDraft {
  return {
    name: "",
    enabled: true,
    domains: "",
    balance: "round_robin",
    placements: [emptyPlacement()],
    routes: [],
    connect_timeout_secs: String(NUMBER_FIELDS.connect_timeout_secs.default),
    read_timeout_secs: String(NUMBER_FIELDS.read_timeout_secs.default),
    send_timeout_secs: String(NUMBER_FIELDS.send_timeout_secs.default),
    client_max_body_size_mb: String(NUMBER_FIELDS.client_max_body_size_mb.default),
    request_headers: [],
    response_headers: [],
    websocket: true,
    max_fails: String(NUMBER_FIELDS.max_fails.default),
    fail_timeout_secs: String(NUMBER_FIELDS.fail_timeout_secs.default),
  };
}

function targetDraft(target: Target): TargetDraft {
  const base = { key: newKey(), port: String(target.port), weight: String(target.weight ?? 1), backup: target.backup ?? false };
  return target.kind === "address"
    ? { ...base, kind: "address", container: "", label: "", host: target.host }
    : { ...base, kind: "container", container: target.container ?? "", label: target.label ?? "", host: "" };
}

function placementDrafts(placements: Placement[]): PlacementDraft[] {
  return placements.map((p) => ({ key: newKey(), node_id: p.node_id, targets: p.targets.map(targetDraft) }));
}

function headerDrafts(headers: Header[]): HeaderDraft[] {
  return headers.map((h) => ({ key: newKey(), name: h.name, value: h.value }));
}

export function draftFromService(service: Service): ServiceDraft {
  return {
    name: service.name,
    enabled: service.enabled,
    domains: service.domains.join("\n"),
    balance: service.balance,
    placements: placementDrafts(service.placements),
    routes: service.routes.map((r) => ({ key: newKey(), path: r.path, placements: placementDrafts(r.placements) })),
    connect_timeout_secs: String(service.connect_timeout_secs),
    read_timeout_secs: String(service.read_timeout_secs),
    send_timeout_secs: String(service.send_timeout_secs),
    client_max_body_size_mb: String(service.client_max_body_size_mb),
    request_headers: headerDrafts(service.request_headers),
    response_headers: headerDrafts(service.response_headers),
    websocket: service.websocket,
    max_fails: String(service.max_fails),
    fail_timeout_secs: String(service.fail_timeout_secs),
  };
}

/** The body that stores `service` unchanged (for toggling one setting from the list). */
export function inputFromService(service: Service): ServiceInput {
  const targets = (list: Target[]): Target[] =>
    list.map((t) => {
      if (t.kind === "address") return { kind: "address", host: t.host, port: t.port, weight: t.weight ?? 1, backup: t.backup ?? false };
      const base = { kind: "container" as const, port: t.port, weight: t.weight ?? 1, backup: t.backup ?? false };
      return t.container ? { ...base, container: t.container } : { ...base, label: t.label ?? "" };
    });
  const placements = (list: Placement[]): Placement[] => list.map((p) => ({ node_id: p.node_id, targets: targets(p.targets) }));
  return {
    name: service.name,
    enabled: service.enabled,
    domains: service.domains,
    balance: service.balance,
    placements: placements(service.placements),
    routes: service.routes.map((r) => ({ path: r.path, placements: placements(r.placements) })),
    connect_timeout_secs: service.connect_timeout_secs,
    read_timeout_secs: service.read_timeout_secs,
    send_timeout_secs: service.send_timeout_secs,
    client_max_body_size_mb: service.client_max_body_size_mb,
    request_headers: service.request_headers,
    response_headers: service.response_headers,
    websocket: service.websocket,
    max_fails: service.max_fails,
    fail_timeout_secs: service.fail_timeout_secs,
  };
}

// ---------- checking ----------

/** Problems keyed by field path; `domains` collects every line's problem. */
export type Problems = Record<string, string>;

export interface Checked {
  input: ServiceInput;
  problems: Problems;
  /** Lines of the domains box whose stored (punycode) form differs from what was typed. */
  converted: { typed: string; ascii: string }[];
}

// The grammars of core/src/validate.rs, and the list limits of core/src/api/services.rs.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const RESERVED_PREFIX = "capstan-";
const CONTAINER = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const LABEL_KEY = /^[A-Za-z0-9._/-]+$/;
const LABEL_VALUE = /^[A-Za-z0-9._/:-]*$/;
const HOST_LABEL = /^[A-Za-z0-9_-]{1,63}$/;
const IPV6 = /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/;
const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;
const HEADER_NAME = /^[A-Za-z0-9-]{1,64}$/;
const HEADER_VALUE = /^[\x20-\x7e]*$/;
const HEADER_VALUE_FORBIDDEN = /["\\$;{}#]/;
const PATH_PREFIX = /^\/[A-Za-z0-9/._~%-]*$/;
export const LIMITS = { domains: 100, routes: 50, placements: 50, targets: 100, headers: 30 };

export function serviceNameProblem(name: string): string | null {
  if (name === "") return "Enter a name for the service.";
  if (name.length > NAME_MAX) return `Use at most ${NAME_MAX} characters (this one has ${name.length}).`;
  if (!/^[A-Za-z0-9]/.test(name)) return "Start the name with a letter or a digit.";
  if (!NAME.test(name)) {
    const bad = name.match(/[^A-Za-z0-9._-]/)?.[0] ?? "";
    return `“${bad === " " ? "space" : bad}” is not allowed: use letters, digits, “-”, “_” and “.”.`;
  }
  if (name.startsWith(RESERVED_PREFIX)) return `Names starting with “${RESERVED_PREFIX}” are reserved for Capstan.`;
  return null;
}

function intProblem(text: string, min: number, max: number): string | null {
  const value = text.trim();
  if (value === "") return "Enter a number.";
  if (!/^\d+$/.test(value)) return "Enter a whole number.";
  const n = Number(value);
  if (n < min || n > max) return `Enter a number from ${min} to ${max}.`;
  return null;
}

export function portProblem(text: string): string | null {
  return intProblem(text, 1, 65535) === null ? null : "Enter a port from 1 to 65535.";
}

export function checkDraft(draft: ServiceDraft): Checked {
  const problems: Problems = {};
  const flag = (path: string, problem: string | null) => {
    if (problem !== null && problems[path] === undefined) problems[path] = problem;
  };

  const name = draft.name.trim();
  flag("name", serviceNameProblem(name));

  const lines = domainLines(draft.domains);
  const domains: string[] = [];
  const converted: Checked["converted"] = [];
  const domainProblems: string[] = [];
  const seen = new Map<string, string>();
  for (const line of lines) {
    const { ascii, problem } = checkDomain(line);
    // Sent as typed: the core does the authoritative IDN conversion and lower-casing.
    domains.push(line);
    if (ascii === null) {
      domainProblems.push(`“${line}”: ${problem ?? "invalid"}`);
      continue;
    }
    const earlier = seen.get(ascii);
    if (earlier !== undefined) domainProblems.push(`“${line}” is listed twice${earlier !== line ? ` (as “${earlier}”)` : ""}.`);
    seen.set(ascii, line);
    if (ascii !== line.toLowerCase()) converted.push({ typed: line, ascii });
  }
  if (lines.length === 0) domainProblems.push("Enter at least one domain, e.g. shop.example.com.");
  if (lines.length > LIMITS.domains) domainProblems.push(`A service has at most ${LIMITS.domains} domains.`);
  if (domainProblems.length > 0) problems["domains"] = domainProblems.join("\n");

  const placements = checkPlacements("placements", draft.placements, draft.balance, flag);
  if (draft.routes.length > LIMITS.routes) flag("routes", `A service has at most ${LIMITS.routes} path routes.`);

  const routes: PathRoute[] = [];
  const paths = new Set<string>();
  draft.routes.forEach((route, k) => {
    const at = `routes[${k}]`;
    const path = route.path.trim();
    flag(`${at}.path`, routePathProblem(path, paths));
    paths.add(path);
    const routePlacements = checkPlacements(`${at}.placements`, route.placements, draft.balance, flag);
    routes.push({ path, placements: routePlacements });
  });

  const number = (field: NumberField): number => {
    const { min, max } = NUMBER_FIELDS[field];
    flag(field, intProblem(draft[field], min, max));
    return Number(draft[field].trim());
  };

  const input: ServiceInput = {
    name,
    enabled: draft.enabled,
    domains,
    balance: draft.balance,
    placements,
    routes,
    connect_timeout_secs: number("connect_timeout_secs"),
    read_timeout_secs: number("read_timeout_secs"),
    send_timeout_secs: number("send_timeout_secs"),
    client_max_body_size_mb: number("client_max_body_size_mb"),
    request_headers: checkHeaders("request_headers", draft.request_headers, flag),
    response_headers: checkHeaders("response_headers", draft.response_headers, flag),
    websocket: draft.websocket,
    max_fails: number("max_fails"),
    fail_timeout_secs: number("fail_timeout_secs"),
  };
  return { input, problems, converted };
}

type Flag = (path: string, problem: string | null) => void;

function checkPlacements(at: string, drafts: PlacementDraft[], balance: Balance, flag: Flag): Placement[] {
  const nodes = new Set<string>();
  if (drafts.length > LIMITS.placements) flag(at, `At most ${LIMITS.placements} nodes.`);
  return drafts.map((placement, i) => {
    const p = `${at}[${i}]`;
    if (placement.node_id === "") flag(`${p}.node_id`, "Choose a node.");
    else if (nodes.has(placement.node_id)) flag(`${p}.node_id`, "This node is already chosen above: add the targets there.");
    nodes.add(placement.node_id);
    if (placement.targets.length === 0) flag(`${p}.targets`, "Add at least one target, or remove this node.");
    if (placement.targets.length > LIMITS.targets) flag(`${p}.targets`, `At most ${LIMITS.targets} targets per node.`);
    const targets = placement.targets.map((target, j) => checkTarget(`${p}.targets[${j}]`, target, balance, flag));
    return { node_id: placement.node_id, targets };
  });
}

function checkTarget(t: string, draft: TargetDraft, balance: Balance, flag: Flag): Target {
  flag(`${t}.port`, portProblem(draft.port));
  flag(`${t}.weight`, intProblem(draft.weight, WEIGHT_MIN, WEIGHT_MAX) === null ? null : `Enter a weight from ${WEIGHT_MIN} to ${WEIGHT_MAX}.`);
  if (draft.backup && balance === "ip_hash") flag(`${t}.backup`, "NGINX allows no backup targets with IP-hash balancing.");
  const common = { port: Number(draft.port.trim()), weight: Number(draft.weight.trim()), backup: draft.backup };
  if (draft.kind === "address") {
    const host = draft.host.trim();
    flag(`${t}.host`, hostProblem(host));
    return { kind: "address", host, ...common };
  }
  const container = draft.container.trim();
  const label = draft.label.trim();
  if (container === "" && label === "") flag(`${t}.container`, "Enter a container name, or a label to match.");
  else if (container !== "" && label !== "") flag(`${t}.label`, "Fill either the name or the label, not both.");
  else if (container !== "" && !CONTAINER.test(container)) {
    flag(`${t}.container`, "A container name is up to 128 letters, digits, “_”, “.” and “-”, starting with a letter or digit.");
  } else if (label !== "") {
    const eq = label.indexOf("=");
    if (eq < 1) flag(`${t}.label`, "Write the label as key=value, e.g. app=shop.");
    else if (label.length > 256) flag(`${t}.label`, "A label selector has at most 256 characters.");
    else if (!LABEL_KEY.test(label.slice(0, eq))) flag(`${t}.label`, "A label key is letters, digits, “.”, “_”, “/” and “-”.");
    else if (!LABEL_VALUE.test(label.slice(eq + 1))) flag(`${t}.label`, "A label value is letters, digits, “.”, “_”, “/”, “:” and “-”.");
  }
  return container !== "" ? { kind: "container", container, ...common } : { kind: "container", label, ...common };
}

function hostProblem(host: string): string | null {
  if (host === "") return "Enter a host name or an IP address.";
  if (host.startsWith("[")) return "Write an IPv6 address without brackets.";
  if (IPV6.test(host) || IPV4.test(host)) return null; // the core parses IP literals exactly
  if (host.includes(":")) return "Enter the host only: the port has its own box.";
  const ok = host.length <= 253 && host.split(".").every((label) => HOST_LABEL.test(label));
  return ok ? null : "Enter a host name (letters, digits, “-”, dots) or an IP address.";
}

function routePathProblem(path: string, earlier: Set<string>): string | null {
  if (path === "") return "Enter a path, e.g. /api/.";
  if (!path.startsWith("/")) return "A path starts with “/”.";
  if (path === "/") return "“/” is served by the service's own targets above; use a longer path.";
  if (path.length > 256) return "A path has at most 256 characters.";
  if (path.includes("//")) return "A path has no “//”.";
  if (!PATH_PREFIX.test(path)) return "A path is letters, digits and / - . _ ~ % only.";
  if (earlier.has(path)) return "This path is already routed above.";
  return null;
}

function checkHeaders(at: string, drafts: HeaderDraft[], flag: Flag): Header[] {
  if (drafts.length > LIMITS.headers) flag(at, `At most ${LIMITS.headers} headers.`);
  return drafts.map((header, i) => {
    const name = header.name.trim();
    const value = header.value;
    if (name === "") flag(`${at}[${i}].name`, "Enter the header's name.");
    else if (!HEADER_NAME.test(name)) flag(`${at}[${i}].name`, "A header name is up to 64 letters, digits and “-”.");
    if (value.length > 512) flag(`${at}[${i}].value`, "A header value has at most 512 characters.");
    else if (!HEADER_VALUE.test(value)) flag(`${at}[${i}].value`, "A header value is printable ASCII only, on one line.");
    else if (HEADER_VALUE_FORBIDDEN.test(value)) flag(`${at}[${i}].value`, "A header value cannot contain \" \\ $ ; { } or #.");
    return { name, value };
  });
}

/** Drops header rows left blank, so the rows shown are the rows sent (and error indexes match). */
export function pruneDraft(draft: ServiceDraft): ServiceDraft {
  const filled = (list: HeaderDraft[]) => list.filter((h) => h.name.trim() !== "" || h.value.trim() !== "");
  const request_headers = filled(draft.request_headers);
  const response_headers = filled(draft.response_headers);
  if (request_headers.length === draft.request_headers.length && response_headers.length === draft.response_headers.length) {
    return draft;
  }
  return { ...draft, request_headers, response_headers };
}

// ---------- placing the core's errors ----------

/** Every field path the form renders an input (or a group) for. */
export function slotsOf(draft: ServiceDraft): Set<string> {
  const slots = new Set<string>([
    "name",
    "enabled",
    "domains",
    "balance",
    "placements",
    "routes",
    "request_headers",
    "response_headers",
    "websocket",
    ...(Object.keys(NUMBER_FIELDS) as NumberField[]),
  ]);
  const placements = (at: string, list: PlacementDraft[]) =>
    list.forEach((placement, i) => {
      const p = `${at}[${i}]`;
      slots.add(p).add(`${p}.node_id`).add(`${p}.targets`);
      placement.targets.forEach((_, j) => {
        const t = `${p}.targets[${j}]`;
        for (const field of ["", ".kind", ".container", ".label", ".host", ".port", ".weight", ".backup"]) slots.add(t + field);
      });
    });
  placements("placements", draft.placements);
  draft.routes.forEach((route, k) => {
    slots.add(`routes[${k}]`).add(`routes[${k}].path`).add(`routes[${k}].placements`);
    placements(`routes[${k}].placements`, route.placements);
  });
  for (const list of ["request_headers", "response_headers"] as const) {
    draft[list].forEach((_, i) => slots.add(`${list}[${i}]`).add(`${list}[${i}].name`).add(`${list}[${i}].value`));
  }
  return slots;
}

/**
 * The rendered slot a core error's field belongs to: the field itself, else its nearest
 * enclosing group (`placements[0].targets[1]` → that target row), else null (top of the form).
 * `domains[i]` always goes to the domains box.
 */
export function locate(field: string | undefined, slots: Set<string>): string | null {
  if (field === undefined || field === "") return null;
  if (/^domains(\[|$)/.test(field)) return "domains";
  let path = field;
  while (path !== "") {
    if (slots.has(path)) return path;
    const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
    if (cut <= 0) break;
    path = path.slice(0, cut);
  }
  return slots.has(path) ? path : null;
}

/** Whether a field path lives in the form's collapsed "Advanced" section. */
export function isAdvanced(path: string): boolean {
  return /^(routes|request_headers|response_headers|websocket|max_fails|fail_timeout_secs|connect_timeout_secs|read_timeout_secs|send_timeout_secs|client_max_body_size_mb)\b/.test(path);
}

/** `domains[2]` → the domain sent at that index, to name it in the message. */
export function domainAt(field: string | undefined, sent: string[]): string | null {
  const index = field?.match(/^domains\[(\d+)\]/)?.[1];
  return index === undefined ? null : (sent[Number(index)] ?? null);
}
