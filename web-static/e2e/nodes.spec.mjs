// Browser test of the Nodes flow against the real binaries: starts capstan-core on a free port
// with a fresh data dir, drives the embedded UI in Debian's Chromium (playwright-core, no browser
// download), adds a node, starts a real capstan-agent with the key read from the dialog, and waits
// for the row to turn online. Every wait is bounded; both processes die on every exit path.
//
//   npm run test:browser                 (binaries from ../target/debug)
//   CAPSTAN_BIN_DIR=/path npm run test:browser
//   CHROMIUM_PATH=/usr/bin/chromium      (default)
//   E2E_TIMEOUT_SECS=180                 (watchdog for the whole run)

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync, rmSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { TestFailure, fail, tempDirs, sleep, freePort, tempDir, waitFor, expectEqual } from "./harness.mjs";
import { checkClientAgainstOpenApi } from "./openapi-check.mjs";

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repoDir = path.resolve(webDir, "..");
const binDir = path.resolve(webDir, process.env.CAPSTAN_BIN_DIR ?? "../target/debug");
const artifactsDir = path.join(repoDir, "test-artifacts");
const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const watchdogSecs = Number(process.env.E2E_TIMEOUT_SECS ?? 180);
const NODE_NAME = "browser-node";

/** Child processes still to kill, and temp dirs still to remove. */
const children = new Map();
let browserContext = null;
let passed = 0;


function log(message) {
  process.stdout.write(`[e2e] ${message}\n`);
}

async function step(name, body) {
  log(`▶ ${name}`);
  const started = Date.now();
  try {
    const result = await body();
    passed += 1;
    log(`✔ ${name} (${Date.now() - started} ms)`);
    return result;
  } catch (err) {
    throw new TestFailure(`step "${name}" failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

// ---------- processes ----------

function start(name, file, args, env) {
  if (!existsSync(file)) {
    fail(`${file} does not exist: build it (cargo build -p capstan-core -p capstan-agent) or set CAPSTAN_BIN_DIR`);
  }
  const logPath = path.join(artifactsDir, `${name}.log`);
  const logFile = createWriteStream(logPath);
  const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const record = { child, name, logPath, tail: [] };
  const keep = (chunk) => {
    logFile.write(chunk);
    record.tail.push(...chunk.toString().split("\n").filter(Boolean));
    record.tail.splice(0, Math.max(0, record.tail.length - 40));
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  child.on("exit", (code, signal) => {
    record.exit = { code, signal };
    logFile.end();
  });
  child.on("error", (err) => {
    record.exit = { code: null, signal: null, error: err.message };
  });
  children.set(name, record);
  log(`started ${name} (pid ${child.pid}), log: ${path.relative(repoDir, logPath)}`);
  return record;
}

function assertAlive(record) {
  if (record.exit) {
    const how = record.exit.error ?? `code ${record.exit.code}, signal ${record.exit.signal}`;
    fail(`${record.name} exited early (${how}); last output:\n${plain(record.tail)}`);
  }
}

/** The last lines a process printed, without terminal colours. */
function plain(lines) {
  return lines.slice(-10).map((line) => `    ${line.replace(/\x1b\[[0-9;]*m/g, "")}`).join("\n");
}

async function stop(record) {
  const { child } = record;
  if (child.exitCode !== null || child.signalCode !== null || record.exit) return;
  child.kill("SIGTERM");
  const exited = await Promise.race([
    new Promise((resolve) => child.once("exit", () => resolve(true))),
    sleep(5000).then(() => false),
  ]);
  if (!exited) {
    log(`${record.name} ignored SIGTERM for 5 s; killing`);
    child.kill("SIGKILL");
  }
}

/** Last-resort cleanup for exit paths that cannot await: kill everything, remove temp dirs. */
function killAllNow() {
  for (const { child } of children.values()) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  for (const dir of tempDirs.splice(0)) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // A dir still in use by a dying process; it is in the system temp dir anyway.
    }
  }
}

process.on("exit", killAllNow);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    log(`received ${signal}; stopping`);
    killAllNow();
    process.exit(1);
  });
}

// ---------- small tools ----------






// ---------- the test ----------

async function run() {
  await mkdir(artifactsDir, { recursive: true });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const password = randomBytes(12).toString("base64url");

  const core = await step("start capstan-core and wait for /api/ping", async () => {
    const record = start("core", path.join(binDir, "capstan-core"), ["serve"], {
      CAPSTAN_LISTEN: `127.0.0.1:${port}`,
      CAPSTAN_DATA_DIR: await tempDir("capstan-e2e-data-"),
      CAPSTAN_ADMIN_PASSWORD: password,
    });
    const ping = await waitFor("GET /api/ping to answer", 30_000, async () => {
      assertAlive(record);
      const res = await fetch(`${base}/api/ping`, { signal: AbortSignal.timeout(2000) });
      return res.ok ? res.json() : null;
    });
    expectEqual(ping.status, "ok", "ping status");
    log(`core ${ping.version} listening on ${base}`);
    return record;
  });

  const page = await step("launch Chromium", async () => {
    const userDataDir = await tempDir("capstan-e2e-chromium-");
    browserContext = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1280, height: 800 },
      timeout: 30_000,
    });
    const page = browserContext.pages()[0] ?? (await browserContext.newPage());
    page.setDefaultTimeout(10_000);
    page.setDefaultNavigationTimeout(15_000);
    page.on("pageerror", (err) => log(`  browser error: ${err.message}`));
    return page;
  });

  const byTestId = (id) => page.locator(`[data-testid="${id}"]`);
  const nodeRow = () => page.locator(`[data-testid="node-row"][data-node-name="${NODE_NAME}"]`);

  await step("open the UI: redirected to /login", async () => {
    await page.goto(`${base}/`);
    await page.waitForURL((url) => url.pathname === "/login");
    await byTestId("login-username").waitFor({ state: "visible" }).catch(() => {
      fail("no login form: is web-static/dist built, and capstan-core rebuilt after it (it embeds the UI)?");
    });
  });

  await step("wrong password shows the API's error", async () => {
    await byTestId("login-username").fill("admin");
    await byTestId("login-password").fill(`${password}-wrong`);
    await byTestId("login-submit").click();
    const error = byTestId("login-error");
    await error.waitFor({ state: "visible" });
    const text = (await error.textContent())?.trim() ?? "";
    if (text === "") fail("login error is empty");
    const code = await error.getAttribute("data-code");
    expectEqual(code, "invalid_credentials", "error code of a wrong password");
    expectEqual(new URL(page.url()).pathname, "/login", "path after a failed login");
    log(`  shown: "${text}"`);
  });

  await step("log in as admin: lands on /nodes with the empty state", async () => {
    await byTestId("login-password").fill(password);
    await byTestId("login-submit").click();
    await page.waitForURL((url) => url.pathname === "/nodes");
    await page.getByText("Add your first node", { exact: false }).first().waitFor({ state: "visible" });
  });

  const created = await step(`add node "${NODE_NAME}": dialog shows ID, key and commands`, async () => {
    await byTestId("add-node-button").click();
    await byTestId("add-node-name").fill(NODE_NAME);
    await byTestId("add-node-submit").click();
    await byTestId("new-node-id").waitFor({ state: "visible" });
    const id = (await byTestId("new-node-id").textContent())?.trim() ?? "";
    const key = (await byTestId("new-node-key").textContent())?.trim() ?? "";
    if (id === "" || key === "") fail(`empty id (${JSON.stringify(id)}) or key`);
    const binary = (await byTestId("new-node-command-binary").textContent())?.trim();
    expectEqual(binary, `CORE_URL=${base} AGENT_ID=${id} AGENT_KEY=${key} capstan-agent run`, "binary command");
    const docker = (await byTestId("new-node-command-docker").textContent())?.trim();
    expectEqual(
      docker,
      "docker run -d --name capstan-agent --restart unless-stopped --privileged --network host " +
        "-v /:/host:ro -v /var/run/docker.sock:/var/run/docker.sock " +
        `-e CORE_URL=${base} -e AGENT_ID=${id} -e AGENT_KEY=${key} capstan/agent:latest`,
      "docker command",
    );
    log(`  id ${id}`);
    return { id, key };
  });

  await step("close the dialog: the row shows status waiting", async () => {
    await byTestId("dialog-close").click();
    await byTestId("new-node-id").waitFor({ state: "detached" });
    await nodeRow().waitFor({ state: "visible" });
    expectEqual(await nodeRow().getAttribute("data-node-id"), created.id, "row's data-node-id");
    expectEqual((await nodeRow().locator('[data-testid="node-status"]').textContent())?.trim(), "waiting", "status");
  });

  const agent = await step("start capstan-agent: the row turns online within 20 s", async () => {
    const agent = start("agent", path.join(binDir, "capstan-agent"), ["run"], {
      CORE_URL: base,
      AGENT_ID: created.id,
      AGENT_KEY: created.key,
      CAPSTAN_AGENT_STATE_DIR: await tempDir("capstan-e2e-agent-"),
      // This test is about nodes, not the proxy: keep the agent from starting NGINX on :80.
      CAPSTAN_AGENT_NGINX: "false",
    });
    const status = nodeRow().locator('[data-testid="node-status"]');
    try {
      await waitFor("the row's status to read online", 20_000, async () => {
        assertAlive(agent);
        assertAlive(core);
        return (await status.textContent())?.trim() === "online";
      });
    } catch (err) {
      const shown = (await status.textContent().catch(() => null))?.trim();
      fail(`${err.message}; the row shows ${JSON.stringify(shown)}; agent's last output:\n${plain(agent.tail)}`);
    }
    const cells = await nodeRow().locator("td").allInnerTexts();
    log(`  row: ${cells.map((cell) => cell.replace(/\s+/g, " ").trim()).join(" | ")}`);
     return agent;
  });

  await step("screenshot test-artifacts/nodes-online.png", async () => {
    await page.screenshot({ path: path.join(artifactsDir, "nodes-online.png"), fullPage: true });
  });

  await step("stop capstan-agent: the row turns offline within 15 s", async () => {
    await stop(agent);
    const status = nodeRow().locator('[data-testid="node-status"]');
    await waitFor("the row's status to read offline", 15_000, async () => {
      assertAlive(core);
      return (await status.textContent())?.trim() === "offline";
    });
  });

  await step("reload: the session is restored from the refresh token", async () => {
    await page.reload();
    await nodeRow().waitFor({ state: "visible" });
    expectEqual(new URL(page.url()).pathname, "/nodes", "path after reload");
  });

  await step("rotate key: confirm, then a new key is shown once", async () => {
    await nodeRow().locator('[data-testid="rotate-key-button"]').click();
    await byTestId("confirm-button").click();
    await byTestId("new-node-key").waitFor({ state: "visible" });
    const key = (await byTestId("new-node-key").textContent())?.trim() ?? "";
    if (key === "" || key === created.key) fail("the rotated key is empty or unchanged");
    expectEqual((await byTestId("new-node-id").textContent())?.trim(), created.id, "id after rotation");
    await byTestId("dialog-close").click();
    await byTestId("new-node-key").waitFor({ state: "detached" });
  });

  await step("delete: the confirmation names the node and the row disappears", async () => {
    await nodeRow().locator('[data-testid="delete-node-button"]').click();
    await page.locator("dialog[open]").getByText(NODE_NAME).first().waitFor({ state: "visible" });
    await byTestId("confirm-button").click();
    await nodeRow().waitFor({ state: "detached" });
  });

  await step("log out: back on /login with the stored session gone", async () => {
    await byTestId("logout-button").click();
    await page.waitForURL((url) => url.pathname === "/login");
    const stored = await page.evaluate(() => window.localStorage.length);
    expectEqual(stored, 0, "localStorage entries after logout");
  });

  await step("API client agrees with /api/openapi.json (paths, fields, nullability)", async () => {
    const result = await checkClientAgainstOpenApi(base, path.join(webDir, "src/api"));
    if (result.skipped) log(`  skipped: ${result.skipped}`);
    else log(`  ${result.checked} calls and ${result.types} types agree with the spec`);
  });
}

// ---------- main ----------

const watchdog = setTimeout(() => {
  process.stderr.write(`[e2e] FAILED: the whole run exceeded ${watchdogSecs} s\n`);
  killAllNow();
  process.exit(1);
}, watchdogSecs * 1000);

let failure = null;
try {
  await run();
} catch (err) {
  failure = err;
} finally {
  await browserContext?.close().catch(() => undefined);
  for (const record of [...children.values()].reverse()) await stop(record).catch(() => undefined);
  for (const dir of tempDirs.splice(0)) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  clearTimeout(watchdog);
}

if (failure) {
  process.stderr.write(`\n[e2e] FAILED: ${failure instanceof Error ? failure.message : String(failure)}\n`);
  if (!(failure instanceof TestFailure) && failure instanceof Error) process.stderr.write(`${failure.stack}\n`);
  for (const record of children.values()) {
    process.stderr.write(`[e2e] ${record.name} log: ${path.relative(repoDir, record.logPath)}\n`);
  }
  process.stdout.write(`browser: ${passed} passed, 1 failed\n`);
  process.exit(1);
}
process.stdout.write(`browser: ${passed} passed, 0 failed\n`);
process.exit(0);
