// Shared helpers of the browser specs (each spec runs in its own Node process, so the module
// state here, the temp dirs, child processes, containers and browser, is per spec): bounded waits,
// temp dirs, ports, Docker and the test image, and the common setup: a real capstan-core on a free
// loopback port with a fresh data dir, a real capstan-agent, an API client of the test's own,
// Chromium, the UI login, and the cleanup on every exit path (`runSpec`).
//
//   CAPSTAN_BIN_DIR=/path                (where capstan-core and capstan-agent are; ../target/debug)
//   CHROMIUM_PATH=/usr/bin/chromium      (default)
//   E2E_TIMEOUT_SECS=180                 (watchdog for the whole run)

import { execFile, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

/** The test image, built exactly as tests/e2e/src/docker.rs builds it. */
export const IMAGE = "capstan-test/busybox:1";

export const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const repoDir = path.resolve(webDir, "..");
export const binDir = path.resolve(webDir, process.env.CAPSTAN_BIN_DIR ?? "../target/debug");
export const artifactsDir = path.join(repoDir, "test-artifacts");
const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const watchdogSecs = Number(process.env.E2E_TIMEOUT_SECS ?? 180);

/** A failed expectation (as opposed to an unexpected error). */
export class TestFailure extends Error {}

export function fail(message) {
  throw new TestFailure(message);
}

/** Temp dirs created by `tempDir`, for the spec's cleanup. */
export const tempDirs = [];

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export async function tempDir(prefix) {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Polls `probe` until it returns a truthy value, for at most `timeoutMs`. */
export async function waitFor(what, timeoutMs, probe, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      if (err instanceof TestFailure) throw err;
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(intervalMs);
  }
  fail(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ""}`);
}

export function expectEqual(actual, expected, what) {
  if (actual !== expected) fail(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

/** Runs `docker args…` (bounded); resolves to { ok, text } with stdout and stderr together. */
export function docker(args, timeoutMs = 60_000) {
  return new Promise((resolve) => {
    execFile("docker", args, { timeout: timeoutMs, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      const text = `${stdout}${stderr}`.trim();
      if (err && err.code === "ENOENT") resolve({ ok: false, text: "the docker command is not installed" });
      else if (err && err.killed) resolve({ ok: false, text: `timed out after ${timeoutMs} ms${text ? `: ${text}` : ""}` });
      else resolve({ ok: !err, text });
    });
  });
}

/** As tests/e2e/src/docker.rs `ensure_image`: Debian's busybox-static + applet links, imported. */
export async function ensureImage() {
  if ((await docker(["image", "inspect", IMAGE])).ok) return false;
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
  if (busybox === undefined) fail("busybox-static is not installed (apt-get install busybox-static)");
  const root = await tempDir("capstan-e2e-rootfs-");
  const bin = path.join(root, "bin");
  mkdirSync(bin, { recursive: true });
  copyFileSync(busybox, path.join(bin, "busybox"));
  for (const applet of ["sh", "httpd", "mkdir", "echo", "sleep", "cat", "ls"]) {
    symlinkSync("busybox", path.join(bin, applet));
  }
  mkdirSync(path.join(root, "tmp"), { recursive: true });
  const tarball = path.join(root, "rootfs.tar");
  const tar = spawnSync("tar", ["-C", root, "--exclude", "./rootfs.tar", "-cf", tarball, "."], {
    encoding: "utf8",
    timeout: 30_000,
  });
  if (tar.status !== 0) fail(`tar failed: ${tar.error?.message ?? tar.stderr}`);
  const imported = await docker(["import", tarball, IMAGE], 120_000);
  if (!imported.ok) fail(`docker import failed: ${imported.text}`);
  return true;
}

// ---------- the spec: logging, steps, run and cleanup ----------

/** Set by `runSpec`: the spec's name in its output ("[e2e:logs]") and its log files' prefix. */
let spec = { tag: "e2e", summary: "browser", logPrefix: "" };
let passed = 0;
/** Child processes still to stop, by name. */
const children = new Map();
/** Containers still to remove. */
const containers = new Set();
/** Chromium's profile dir: identifies its processes when they must die without Playwright. */
let browserProfileDir = null;
let browserContext = null;

export function log(message) {
  process.stdout.write(`[${spec.tag}] ${message}\n`);
}

/** Runs one named step of the test: logged with its duration, counted, its failure named. */
export async function step(name, body) {
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

/**
 * Runs the spec's `run` under a watchdog and exits the process: 0 when it passed, 1 when it failed
 * (with the error and where the process logs are). Whatever happens, the browser closes, the
 * processes stop (the agent first), the containers go and the temp dirs are removed.
 *
 *   name          the spec's name in its output and log files (none: "[e2e]", core.log, agent.log)
 *   afterAgent    async cleanup once the agent is stopped, before the other processes
 *   killNow       sync last-resort cleanup (exit paths that cannot await), after the processes
 */
export async function runSpec(run, { name = null, afterAgent = async () => {}, killNow = () => {} } = {}) {
  if (name !== null) spec = { tag: `e2e:${name}`, summary: `browser (${name})`, logPrefix: `${name}-` };
  const killAllNow = () => {
    for (const { child } of children.values()) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
    killBrowserNow();
    killNow();
    for (const container of containers) spawnSync("docker", ["rm", "-f", container], { stdio: "ignore", timeout: 20_000 });
    containers.clear();
    for (const dir of tempDirs.splice(0)) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // A dir still in use by a dying process; it is in the system temp dir anyway.
      }
    }
  };
  process.on("exit", killAllNow);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => {
      log(`received ${signal}; stopping`);
      killAllNow();
      process.exit(1);
    });
  }
  const watchdog = setTimeout(() => {
    process.stderr.write(`[${spec.tag}] FAILED: the whole run exceeded ${watchdogSecs} s\n`);
    killAllNow();
    process.exit(1);
  }, watchdogSecs * 1000);

  let failure = null;
  try {
    await mkdir(artifactsDir, { recursive: true });
    await run();
  } catch (err) {
    failure = err;
  } finally {
    await browserContext?.close().catch(() => undefined);
    // Agent first (so it cannot restart what it manages), then the core, then the containers.
    const agent = children.get("agent");
    if (agent) await stop(agent).catch(() => undefined);
    await afterAgent().catch((err) => log(`cleanup failed: ${err.message}`));
    for (const record of [...children.values()].reverse()) await stop(record).catch(() => undefined);
    for (const container of [...containers]) {
      const removed = await docker(["rm", "-f", container], 20_000);
      if (removed.ok) containers.delete(container);
      else log(`could not remove ${container}: ${removed.text}`);
    }
    for (const dir of tempDirs.splice(0)) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    clearTimeout(watchdog);
  }

  if (failure) {
    process.stderr.write(`\n[${spec.tag}] FAILED: ${failure instanceof Error ? failure.message : String(failure)}\n`);
    if (!(failure instanceof TestFailure) && failure instanceof Error) process.stderr.write(`${failure.stack}\n`);
    for (const record of children.values()) {
      process.stderr.write(`[${spec.tag}] ${record.name} log: ${path.relative(repoDir, record.logPath)}\n`);
    }
    process.stdout.write(`${spec.summary}: ${passed} passed, 1 failed\n`);
    process.exit(1);
  }
  process.stdout.write(`${spec.summary}: ${passed} passed, 0 failed\n`);
  process.exit(0);
}

// ---------- processes ----------

/** Starts a binary with its output in test-artifacts/<prefix><name>.log and the last 40 lines kept. */
export function start(name, file, args, env, options = {}) {
  if (!existsSync(file)) {
    fail(`${file} does not exist: build it (cargo build -p capstan-core -p capstan-agent) or set CAPSTAN_BIN_DIR`);
  }
  const logPath = path.join(artifactsDir, `${spec.logPrefix}${name}.log`);
  const logFile = createWriteStream(logPath);
  const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], ...options });
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

export function assertAlive(record) {
  if (record.exit) {
    const how = record.exit.error ?? `code ${record.exit.code}, signal ${record.exit.signal}`;
    fail(`${record.name} exited early (${how}); last output:\n${plain(record.tail)}`);
  }
}

/** The last lines a process printed, without terminal colours. */
export function plain(lines) {
  return lines.slice(-10).map((line) => `    ${line.replace(/\x1b\[[0-9;]*m/g, "")}`).join("\n");
}

/** SIGTERM, then SIGKILL if the process is still there after 5 s. */
export async function stop(record) {
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

/** SIGKILLs the Chromium processes running with our profile dir (Playwright cannot close it here). */
function killBrowserNow() {
  if (browserProfileDir === null) return;
  const marker = `--user-data-dir=${browserProfileDir}`;
  let pids = [];
  try {
    pids = readdirSync("/proc").filter((entry) => /^\d+$/.test(entry));
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(marker)) process.kill(Number(pid), "SIGKILL");
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
}

// ---------- Docker ----------

/** The step checking that the Docker daemon answers. */
export function dockerAnswers() {
  return step("Docker daemon answers", async () => {
    const info = await docker(["info", "--format", "{{.ServerVersion}}"], 20_000);
    if (!info.ok) {
      fail(`\`docker info\` failed, so this test cannot start its container: is dockerd running (scripts/test starts it)?\n    ${info.text}`);
    }
    log(`  Docker ${info.text}`);
  });
}

/**
 * Builds the test image if needed, then `docker run -d --name <name> <args…>` (a leftover of that
 * name removed first). The container is removed on every exit path.
 */
export async function runContainer(name, args) {
  const built = await ensureImage();
  log(`  image ${IMAGE} ${built ? "built with docker import" : "already there"}`);
  await docker(["rm", "-f", name]);
  containers.add(name);
  const ran = await docker(["run", "-d", "--name", name, ...args]);
  if (!ran.ok) fail(`docker run ${name}: ${ran.text}`);
}

// ---------- core, agent and the API ----------

/**
 * The step starting capstan-core on a free loopback port with a fresh data dir and a random admin
 * password, until /api/ping answers. Resolves to { base, password, process }. `name` tells a
 * second core of the spec apart (its process and log file); `env` adds to its environment.
 */
export async function startCore({ name = "core", env = {} } = {}) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const password = randomBytes(12).toString("base64url");
  const record = await step(`start ${name === "core" ? "capstan-core" : `capstan-core "${name}"`} and wait for /api/ping`, async () => {
    const record = start(name, path.join(binDir, "capstan-core"), ["serve"], {
      CAPSTAN_LISTEN: `127.0.0.1:${port}`,
      CAPSTAN_DATA_DIR: await tempDir("capstan-e2e-data-"),
      CAPSTAN_ADMIN_PASSWORD: password,
      ...env,
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
  return { base, password, process: record };
}

/**
 * An API client with a token of the test's own (not the browser's), logged in as admin on first
 * use: `api(method, path, body?)` resolves to { status, body } (the body parsed, null when empty).
 */
export function apiClient(core) {
  let token = null;
  return async (method, urlPath, body) => {
    if (token === null) {
      const login = await fetch(`${core.base}/api/auth/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: "admin", password: core.password }),
        signal: AbortSignal.timeout(5000),
      });
      if (!login.ok) fail(`API login: HTTP ${login.status} ${await login.text()}`);
      token = (await login.json()).access_token;
    }
    const res = await fetch(`${core.base}${urlPath}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    return { status: res.status, body: text === "" ? null : JSON.parse(text) };
  };
}

/** Adds a node through the API; resolves to { id, key }. */
export async function createNode(api, name) {
  const created = await api("POST", "/api/agents", { name });
  if (created.status !== 201 && created.status !== 200) fail(`POST /api/agents: HTTP ${created.status} ${JSON.stringify(created.body)}`);
  const { id, key } = created.body;
  return { id, key };
}

/**
 * Starts capstan-agent ("agent") for the node `{ id, key }` of `core`, with a fresh state dir
 * unless `stateDir` is given, and NGINX off unless `env` says otherwise.
 */
export async function startAgent(core, node, { env = {}, stateDir = null, options = {} } = {}) {
  return start(
    "agent",
    path.join(binDir, "capstan-agent"),
    ["run"],
    {
      CORE_URL: core.base,
      AGENT_ID: node.id,
      AGENT_KEY: node.key,
      CAPSTAN_AGENT_STATE_DIR: stateDir ?? (await tempDir("capstan-e2e-agent-")),
      CAPSTAN_AGENT_NGINX: "false",
      ...env,
    },
    options,
  );
}

/**
 * The step adding node `name` through the API, starting its agent (NGINX off) and waiting until the
 * API reads it online. Resolves to { id, agent }.
 */
export function startNodeWithAgent(core, api, name) {
  return step(`add node "${name}" (API) and start capstan-agent (NGINX off)`, async () => {
    const node = await createNode(api, name);
    const agent = await startAgent(core, node);
    await waitFor("the node to be online", 20_000, async () => {
      assertAlive(agent);
      assertAlive(core.process);
      const res = await api("GET", `/api/agents/${node.id}`);
      return res.status === 200 && res.body.status === "online";
    });
    log(`  id ${node.id}`);
    return { id: node.id, agent };
  });
}

// ---------- the browser ----------

/** The step launching headless Chromium (closed or killed on every exit path); resolves to its page. */
export function launchBrowser({ viewport = { width: 1280, height: 800 }, ...options } = {}) {
  return step("launch Chromium", async () => {
    const userDataDir = await tempDir("capstan-e2e-chromium-");
    browserProfileDir = userDataDir;
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
      viewport,
      timeout: 30_000,
      ...options,
    });
    const page = browserContext.pages()[0] ?? (await browserContext.newPage());
    page.setDefaultTimeout(10_000);
    page.setDefaultNavigationTimeout(15_000);
    page.on("pageerror", (err) => log(`  browser error: ${err.message}`));
    return page;
  });
}

/** The element with `data-testid="id"`. */
export function byTestId(page, id) {
  return page.locator(`[data-testid="${id}"]`);
}

/** Opens the UI and expects the redirect to /login and its form. */
export async function openLogin(page, core) {
  await page.goto(`${core.base}/`);
  await page.waitForURL((url) => url.pathname === "/login");
  await byTestId(page, "login-username").waitFor({ state: "visible" }).catch(() => {
    fail("no login form: is web-static/dist built, and capstan-core rebuilt after it (it embeds the UI)?");
  });
}

/** Logs in as admin through the login form; expects to land on /nodes. */
export async function loginUi(page, core) {
  await openLogin(page, core);
  await byTestId(page, "login-username").fill("admin");
  await byTestId(page, "login-password").fill(core.password);
  await byTestId(page, "login-submit").click();
  await page.waitForURL((url) => url.pathname === "/nodes");
}

/** The Nodes page's row of node `name`. */
export function nodeRow(page, name) {
  return page.locator(`[data-testid="node-row"][data-node-name="${name}"]`);
}

/** Adds node `name` in the Nodes page's dialog and reads its ID and key (the dialog stays open). */
export async function addNodeInDialog(page, name) {
  await byTestId(page, "add-node-button").click();
  await byTestId(page, "add-node-name").fill(name);
  await byTestId(page, "add-node-submit").click();
  await byTestId(page, "new-node-id").waitFor({ state: "visible" });
  const id = (await byTestId(page, "new-node-id").textContent())?.trim() ?? "";
  const key = (await byTestId(page, "new-node-key").textContent())?.trim() ?? "";
  if (id === "" || key === "") fail(`empty id (${JSON.stringify(id)}) or key`);
  return { id, key };
}

/** Waits up to 20 s for node `name`'s row to read online, the agent and the core alive. */
export async function waitRowOnline(page, name, agent, core) {
  const status = nodeRow(page, name).locator('[data-testid="node-status"]');
  try {
    await waitFor("the row's status to read online", 20_000, async () => {
      assertAlive(agent);
      assertAlive(core.process);
      return (await status.textContent())?.trim() === "online";
    });
  } catch (err) {
    const shown = (await status.textContent().catch(() => null))?.trim();
    fail(`${err.message}; the row shows ${JSON.stringify(shown)}; agent's last output:\n${plain(agent.tail)}`);
  }
}
