// Checks the typed API client against the core's OpenAPI document (/api/openapi.json):
//  - every (method, path) the client calls is an operation in the spec. The client writes paths
//    as OpenAPI templates in `call<T>("METHOD", "/api/...")` / `send<T>(...)` form, so they can be
//    read straight from the source;
//  - every field of each wire type in src/api/*.ts tagged `@openapi-request Schema` or
//    `@openapi-response Schema` exists in that schema, and for responses a field the client treats
//    as always present is required in the spec, and one it treats as non-null is non-nullable
//    (`@openapi-narrows a,b` exempts fields the client narrows on purpose).
//    `@openapi-pending a,b` names optional fields the core does not publish yet (being built in
//    parallel): absent from the schema they are listed as pending, present they are checked.
//
// Run alone against a running core:  node e2e/openapi-check.mjs http://127.0.0.1:8080

import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const CALL = /\b(?:call|send)<[^>]*>\(\s*"(GET|POST|PUT|PATCH|DELETE)",\s*"([^"]+)"/g;
const TYPE = /\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*export interface (\w+)(?: extends (\w+))? \{\n([\s\S]*?)\n\}/g;
const FIELD = /^ {2}(\w+)(\?)?: ([^;]+);$/gm;

/** The (method, path) pairs the client in `apiDir` calls. */
export async function clientEndpoints(apiDir) {
  const endpoints = [];
  for (const file of (await readdir(apiDir)).filter((name) => name.endsWith(".ts")).sort()) {
    const source = await readFile(path.join(apiDir, file), "utf8");
    for (const match of source.matchAll(CALL)) endpoints.push({ method: match[1], path: match[2], file });
  }
  return endpoints;
}

/** The wire types of the client in `apiDir` that name an OpenAPI schema, with their fields (inherited ones included). */
export async function clientTypes(apiDir) {
  const byName = new Map();
  const sources = [];
  for (const file of (await readdir(apiDir)).filter((name) => name.endsWith(".ts")).sort()) {
    sources.push(await readFile(path.join(apiDir, file), "utf8"));
  }
  for (const [, doc, name, parent, body] of sources.join("\n").matchAll(TYPE)) {
    const fields = [...body.matchAll(FIELD)].map(([, field, optional, type]) => ({
      field,
      optional: optional === "?",
      nullable: /\bnull\b/.test(type),
    }));
    const tag = doc.match(/@openapi-(request|response) (\w+)/);
    const narrows = (doc.match(/@openapi-narrows ([\w,]+)/)?.[1] ?? "").split(",").filter(Boolean);
    const pending = (doc.match(/@openapi-pending ([\w,]+)/)?.[1] ?? "").split(",").filter(Boolean);
    byName.set(name, { name, parent, fields, kind: tag?.[1], schema: tag?.[2], narrows, pending });
  }
  const allFields = (type) => [...(type.parent ? allFields(byName.get(type.parent)) : []), ...type.fields];
  const allPending = (type) => [...(type.parent ? allPending(byName.get(type.parent)) : []), ...type.pending];
  return [...byName.values()]
    .filter((type) => type.schema)
    .map((type) => ({ ...type, fields: allFields(type), pending: allPending(type) }));
}

/** Properties and required names of a schema, following $ref and allOf. */
function flatten(spec, schema) {
  if (schema.$ref) return flatten(spec, spec.components.schemas[schema.$ref.split("/").pop()]);
  const properties = { ...(schema.properties ?? {}) };
  const required = new Set(schema.required ?? []);
  for (const part of schema.allOf ?? []) {
    const sub = flatten(spec, part);
    Object.assign(properties, sub.properties);
    for (const name of sub.required) required.add(name);
  }
  return { properties, required };
}

function isNullable(spec, property) {
  if (property.$ref) return false;
  if (property.nullable === true) return true;
  if (Array.isArray(property.type)) return property.type.includes("null");
  if (property.type === "null") return true;
  return [...(property.oneOf ?? []), ...(property.anyOf ?? [])].some((sub) => isNullable(spec, sub));
}

/**
 * Resolves `{ checked }` when the client agrees with the spec, `{ skipped }` when the core
 * publishes no spec, and throws listing every disagreement.
 */
export async function checkClientAgainstOpenApi(base, apiDir) {
  const res = await fetch(`${base}/api/openapi.json`, { signal: AbortSignal.timeout(5000) });
  if (res.status === 404) return { skipped: "the core serves no /api/openapi.json" };
  if (!res.ok) throw new Error(`GET /api/openapi.json answered ${res.status}`);
  const spec = await res.json();
  const problems = [];
  const pending = new Set();

  const prefix = new URL(spec.servers?.[0]?.url ?? "/", base).pathname.replace(/\/$/, "");
  const operations = new Set();
  for (const [specPath, item] of Object.entries(spec.paths ?? {})) {
    for (const method of Object.keys(item)) operations.add(`${method.toUpperCase()} ${prefix}${specPath}`);
  }
  const endpoints = await clientEndpoints(apiDir);
  if (endpoints.length === 0) problems.push(`found no API calls in ${apiDir}`);
  for (const { method, path: p, file } of endpoints) {
    if (!operations.has(`${method} ${p}`)) problems.push(`${method} ${p} (${file}) is not an operation in the spec`);
  }

  const types = await clientTypes(apiDir);
  if (types.length === 0) problems.push(`found no @openapi-tagged types in ${apiDir}`);
  for (const type of types) {
    const schema = spec.components?.schemas?.[type.schema];
    if (!schema) {
      problems.push(`${type.name}: schema ${type.schema} is not in the spec`);
      continue;
    }
    const { properties, required } = flatten(spec, schema);
    for (const { field, optional, nullable } of type.fields) {
      const property = properties[field];
      if (type.pending.includes(field) && !optional) problems.push(`${type.name}.${field} is @openapi-pending but not optional in the client`);
      if (!property && type.pending.includes(field)) {
        pending.add(`${type.schema}.${field}`);
        continue;
      }
      if (!property) {
        problems.push(`${type.name}.${field} is not a property of ${type.schema}`);
        continue;
      }
      if (type.kind !== "response" || type.narrows.includes(field)) continue;
      // utoipa marks an Option<T> field as not required though serde always writes it (as null),
      // so a nullable field the client reads as `T | null` may be optional in the spec.
      const nullableInSpec = isNullable(spec, property);
      if (!optional && !required.has(field) && !(nullable && nullableInSpec)) problems.push(`${type.name}.${field} is always present in the client but optional in ${type.schema}`);
      if (!nullable && nullableInSpec) problems.push(`${type.name}.${field} is never null in the client but nullable in ${type.schema}`);
    }
  }

  if (problems.length > 0) throw new Error(`the API client disagrees with /api/openapi.json:\n  - ${problems.join("\n  - ")}`);
  return { checked: endpoints.length, types: types.length, pending: [...pending].sort() };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const base = process.argv[2] ?? "http://127.0.0.1:8080";
  const apiDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../src/api");
  try {
    const result = await checkClientAgainstOpenApi(base, apiDir);
    console.log(result.skipped ?? `ok: ${result.checked} calls and ${result.types} types agree with the spec`);
    if (result.pending?.length) console.log(`pending (not in the spec yet): ${result.pending.join(", ")}`);
  } catch (err) {
    console.error(`openapi check failed: ${err.message}`);
    process.exit(1);
  }
}
