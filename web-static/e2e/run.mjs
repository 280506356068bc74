// Runs the browser tests one after the other, each in its own Node process (so each starts and
// stops its own core, agent and browser), even when an earlier one failed, and exits non-zero if
// any failed. `npm run test:browser -- services` runs only the specs whose name contains "services".

import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const e2eDir = path.dirname(fileURLToPath(import.meta.url));
const SPECS = ["nodes.spec.mjs", "services.spec.mjs", "logs.spec.mjs", "monitoring.spec.mjs", "session.spec.mjs"];

const filters = process.argv.slice(2);
const specs = SPECS.filter((spec) => filters.length === 0 || filters.some((f) => spec.includes(f)));
if (specs.length === 0) {
  process.stderr.write(`[e2e] no spec matches ${JSON.stringify(filters)}; specs: ${SPECS.join(", ")}\n`);
  process.exit(2);
}

let current = null;
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    // The spec cleans up on the signal and exits; no further spec starts.
    interrupted = true;
    if (current !== null) current.kill(signal);
    else process.exit(1);
  });
}

const results = [];
for (const spec of specs) {
  if (interrupted) break;
  const started = Date.now();
  process.stdout.write(`\n[e2e] ===== ${spec} =====\n`);
  const { code, signal } = await new Promise((resolve) => {
    current = spawn(process.execPath, [path.join(e2eDir, spec)], { stdio: "inherit" });
    current.on("error", (err) => resolve({ code: null, signal: null, error: err }));
    current.on("exit", (code, signal) => resolve({ code, signal }));
  });
  current = null;
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  const ok = code === 0 && !interrupted;
  if (signal !== null) interrupted = true;
  const how = ok ? "passed" : interrupted ? "interrupted" : `failed (exit ${code})`;
  results.push({ spec, ok, secs, how });
}

process.stdout.write("\n[e2e] browser tests:\n");
for (const r of results) process.stdout.write(`[e2e]   ${r.ok ? "✔" : "✘"} ${r.spec}: ${r.how} in ${r.secs} s\n`);
const failed = results.filter((r) => !r.ok).length;
process.stdout.write(`browser specs: ${results.length - failed} passed, ${failed} failed\n`);
if (results.length < specs.length) process.stdout.write(`[e2e] not run: ${specs.slice(results.length).join(", ")}\n`);
process.exit(failed > 0 || results.length < specs.length ? 1 : 0);
