// Browser test of the Logs view against the real binaries and Docker: starts capstan-core on a
// free port with a fresh data dir, a capstan-agent (NGINX off) and a busybox container that prints
// `INFO tick N` every 200 ms and `ERROR boom N` on stderr every fifth line, then drives the
// embedded UI in Debian's Chromium (playwright-core, no browser download): opens the node's logs
// from the Nodes page, adds the container as a source, sees lines arrive, a stderr line marked,
// filters by text and by /regex/, pauses (the view stops growing) and resumes, and an unknown
// container reads "no such container". Every wait is bounded; the processes and the container go
// away on every exit path.
//
//   npm run test:browser -- logs         (this spec only)
//   node e2e/logs.spec.mjs               (the same; binaries from ../target/debug)
//   CAPSTAN_BIN_DIR=/path                (where capstan-core and capstan-agent are)
//   CHROMIUM_PATH=/usr/bin/chromium      (default)
//   E2E_TIMEOUT_SECS=180                 (watchdog for the whole run)
//
// Needs a running Docker daemon (scripts/test starts one) and busybox-static.

import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { TestFailure, fail, tempDirs, sleep, freePort, tempDir, waitFor, expectEqual, docker, ensureImage } from "./harness.mjs";

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repoDir = path.resolve(webDir, "..");
const binDir = path.resolve(webDir, process.env.CAPSTAN_BIN_DIR ?? "../target/debug");
const artifactsDir = path.join(repoDir, "test-artifacts");
const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const watchdogSecs = Number(process.env.E2E_TIMEOUT_SECS ?? 180);

const NODE_NAME = "browser-logs";
/** The test image, built exactly as tests/e2e/src/docker.rs builds it. */
const IMAGE = "capstan-test/busybox:1";
const CONTAINER = `capstan-logs-${process.pid}`;
/** Prints `INFO tick N` every 200 ms, and `ERROR boom N` on stderr with every fifth. Ash builtins only. */
const SCRIPT = 'i=0; while :; do i=$((i+1)); echo "INFO tick $i"; case $((i % 5)) in 0) echo "ERROR boom $i" >&2;; esac; sleep 0.2; done';
/** Prefix of this test's log files in test-artifacts/. */
const LOG_PREFIX = "logs-";

/** Child processes still to kill, temp dirs still to remove. */
const children = new Map();
let containerStarted = false;
/** Chromium's profile dir: identifies its processes when they must die without Playwright. */
let browserProfileDir = null;
let browserContext = null;
let passed = 0;


function log(message) {
  process.stdout.write(`[e2e:logs] ${message}\n`);
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

function start(name, file, args, env, options = {}) {
  if (!existsSync(file)) {
    fail(`${file} does not exist: build it (cargo build -p capstan-core -p capstan-agent) or set CAPSTAN_BIN_DIR`);
  }
  const logPath = path.join(artifactsDir, `${LOG_PREFIX}${name}.log`);
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

/** Last-resort cleanup for exit paths that cannot await: kill everything, remove temp dirs. */
function killAllNow() {
  for (const { child } of children.values()) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  killBrowserNow();
  if (containerStarted) {
    containerStarted = false;
    spawnSync("docker", ["rm", "-f", CONTAINER], { stdio: "ignore", timeout: 20_000 });
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

// ---------- docker ----------



// ---------- small tools ----------







// ---------- the test ----------

async function run() {
  await mkdir(artifactsDir, { recursive: true });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const password = randomBytes(12).toString("base64url");

  await step("Docker daemon answers", async () => {
    const info = await docker(["info", "--format", "{{.ServerVersion}}"], 20_000);
    if (!info.ok) {
      fail(`\`docker info\` failed, so this test cannot start its container: is dockerd running (scripts/test starts it)?\n    ${info.text}`);
    }
    log(`  Docker ${info.text}`);
  });

  await step(`container ${CONTAINER} prints INFO ticks and ERROR booms on stderr`, async () => {
    const built = await ensureImage();
    log(`  image ${IMAGE} ${built ? "built with docker import" : "already there"}`);
    await docker(["rm", "-f", CONTAINER]);
    containerStarted = true;
    const ran = await docker(["run", "-d", "--name", CONTAINER, IMAGE, "sh", "-c", SCRIPT]);
    if (!ran.ok) fail(`docker run ${CONTAINER}: ${ran.text}`);
    await waitFor("the container's first ERROR line", 10_000, async () => {
      const logs = await docker(["logs", CONTAINER], 5000);
      return logs.ok && logs.text.includes("ERROR boom 5");
    });
  });

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

  /** One API call with a token of our own (not the browser's). */
  let apiToken = null;
  const api = async (method, urlPath, body) => {
    if (apiToken === null) {
      const login = await fetch(`${base}/api/auth/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: "admin", password }),
        signal: AbortSignal.timeout(5000),
      });
      if (!login.ok) fail(`API login: HTTP ${login.status} ${await login.text()}`);
      apiToken = (await login.json()).access_token;
    }
    const res = await fetch(`${base}${urlPath}`, {
      method,
      headers: { Authorization: `Bearer ${apiToken}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    return { status: res.status, body: text === "" ? null : JSON.parse(text) };
  };

  const node = await step(`add node "${NODE_NAME}" (API) and start capstan-agent (NGINX off)`, async () => {
    const created = await api("POST", "/api/agents", { name: NODE_NAME });
    if (created.status !== 201 && created.status !== 200) fail(`POST /api/agents: HTTP ${created.status} ${JSON.stringify(created.body)}`);
    const { id, key } = created.body;
    const agent = start("agent", path.join(binDir, "capstan-agent"), ["run"], {
      CORE_URL: base,
      AGENT_ID: id,
      AGENT_KEY: key,
      CAPSTAN_AGENT_STATE_DIR: await tempDir("capstan-e2e-agent-"),
      CAPSTAN_AGENT_NGINX: "false",
    });
    await waitFor("the node to be online", 20_000, async () => {
      assertAlive(agent);
      assertAlive(core);
      const res = await api("GET", `/api/agents/${id}`);
      return res.status === 200 && res.body.status === "online";
    });
    log(`  id ${id}`);
    return { id, agent };
  });

  const page = await step("launch Chromium", async () => {
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
      viewport: { width: 1280, height: 800 },
      timeout: 30_000,
      acceptDownloads: true,
    });
    const page = browserContext.pages()[0] ?? (await browserContext.newPage());
    page.setDefaultTimeout(10_000);
    page.setDefaultNavigationTimeout(15_000);
    page.on("pageerror", (err) => log(`  browser error: ${err.message}`));
    return page;
  });

  const byTestId = (id) => page.locator(`[data-testid="${id}"]`);
  const lines = () => page.locator(`[data-testid="logs-line"][data-source="${CONTAINER}"]`);
  /** The texts (without timestamps) of the lines in view. */
  const lineTexts = () =>
    page.$$eval(`[data-testid="logs-line"][data-source="${CONTAINER}"] .log-text`, (els) => els.map((el) => el.textContent ?? ""));
  const pageErrors = [];
  page.on("pageerror", (err) => pageErrors.push(err.message));

  await step("log in as admin: lands on /nodes", async () => {
    await page.goto(`${base}/`);
    await page.waitForURL((url) => url.pathname === "/login");
    await byTestId("login-username").waitFor({ state: "visible" }).catch(() => {
      fail("no login form: is web-static/dist built, and capstan-core rebuilt after it (it embeds the UI)?");
    });
    await byTestId("login-username").fill("admin");
    await byTestId("login-password").fill(password);
    await byTestId("login-submit").click();
    await page.waitForURL((url) => url.pathname === "/nodes");
  });

  await step("the node row's Logs link opens /nodes/{id}/logs", async () => {
    const row = page.locator(`[data-testid="node-row"][data-node-name="${NODE_NAME}"]`);
    await row.waitFor({ state: "visible" });
    await row.locator('[data-testid="node-logs-link"]').click();
    await page.waitForURL((url) => url.pathname === `/nodes/${node.id}/logs`);
    await byTestId("logs-view").waitFor({ state: "visible" });
    const nav = byTestId("logs-nav");
    expectEqual(await nav.getAttribute("aria-current"), "page", "Logs nav item's aria-current");
  });

  await step(`the source picker offers ${CONTAINER} (from the node's metrics) and the NGINX logs`, async () => {
    for (const source of ["nginx:access", "nginx:error"]) {
      await page.locator(`[data-testid="logs-offer"][data-source="${source}"]`).waitFor({ state: "attached" });
    }
    const offer = page.locator(`[data-testid="logs-offer"][data-source="${CONTAINER}"]`);
    await waitFor("the container in the picker", 25_000, async () => (await offer.count()) > 0);
    const option = page.locator(`#logs-source-options option[value="${CONTAINER}"]`);
    expectEqual(await option.count(), 1, "datalist options for the container");
  });

  await step(`add the source ${CONTAINER}: lines arrive and keep arriving`, async () => {
    await byTestId("logs-source-input").fill(CONTAINER);
    await byTestId("logs-add-source").click();
    await page.waitForURL((url) => url.searchParams.getAll("source").includes(CONTAINER));
    try {
      await waitFor("the first lines", 20_000, async () => {
        assertAlive(node.agent);
        return (await lines().count()) > 0;
      });
    } catch (err) {
      const status = await page.locator('[data-testid="logs-source"]').allInnerTexts().catch(() => []);
      fail(`${err.message}; source header: ${JSON.stringify(status)}; agent's last output:\n${plain(node.agent.tail)}`);
    }
    const first = await lines().count();
    const grown = await waitFor("the line count to grow", 10_000, async () => {
      const now = await lines().count();
      return now > first ? now : null;
    });
    log(`  ${first} → ${grown} lines`);
  });

  await step("stderr lines are marked (data-stream=stderr) and carry ERROR", async () => {
    const stderr = page.locator(`[data-testid="logs-line"][data-source="${CONTAINER}"][data-stream="stderr"]`);
    await waitFor("a stderr line", 10_000, async () => (await stderr.count()) > 0);
    const text = await stderr.first().locator(".log-text").innerText();
    if (!/^ERROR boom \d+$/.test(text.trim())) fail(`stderr line reads ${JSON.stringify(text)}`);
    expectEqual(await stderr.first().getAttribute("data-level"), "error", "stderr line's level");
    const stdout = page.locator(`[data-testid="logs-line"][data-source="${CONTAINER}"][data-stream="stdout"]`);
    const out = await stdout.first().locator(".log-text").innerText();
    if (!/^INFO tick \d+$/.test(out.trim())) fail(`stdout line reads ${JSON.stringify(out)}`);
    expectEqual(await stdout.first().getAttribute("data-level"), "info", "stdout line's level");
  });

  await step('filter "boom": only the ERROR lines remain', async () => {
    await byTestId("logs-filter").fill("boom");
    const texts = await waitFor("only ERROR lines in view", 5000, async () => {
      const t = await lineTexts();
      return t.length > 0 && t.every((s) => /^ERROR boom \d+$/.test(s.trim())) ? t : null;
    });
    log(`  ${texts.length} ERROR lines`);
  });

  await step("regex filter /tick [0-9]+0$/: only ticks ending in 0; an invalid regex shows an error", async () => {
    await byTestId("logs-filter").fill("tick [0-9]+0$");
    // As plain text nothing matches.
    await waitFor("no lines for the literal text", 5000, async () => (await lines().count()) === 0);
    await byTestId("logs-regex-toggle").click();
    expectEqual(await byTestId("logs-regex-toggle").getAttribute("aria-pressed"), "true", "regex toggle pressed");
    const texts = await waitFor("only ticks ending in 0", 10_000, async () => {
      const t = await lineTexts();
      return t.length > 0 && t.every((s) => /^INFO tick \d*0$/.test(s.trim())) ? t : null;
    });
    log(`  ${texts.length} lines: ${texts.slice(-3).join(" | ")}`);
    await byTestId("logs-filter").fill("tick (");
    await byTestId("logs-filter-error").waitFor({ state: "visible" });
    await byTestId("logs-view").waitFor({ state: "visible" });
    await byTestId("logs-filter").fill("");
    await byTestId("logs-filter-error").waitFor({ state: "detached" });
    await byTestId("logs-regex-toggle").click();
    if (pageErrors.length > 0) fail(`browser errors: ${pageErrors.join("; ")}`);
  });

  await step("pause: the view stops growing while lines keep arriving; resume: it grows again", async () => {
    await byTestId("logs-pause").click();
    expectEqual(await byTestId("logs-pause").getAttribute("aria-pressed"), "true", "pause pressed");
    const atPause = await lines().count();
    await sleep(3000);
    expectEqual(await lines().count(), atPause, "lines in view after 3 s paused");
    const notice = (await byTestId("logs-new-lines").innerText()).trim();
    if (!/\d+ new lines?/.test(notice)) fail(`no "N new lines" while paused: ${JSON.stringify(notice)}`);
    log(`  paused at ${atPause}: ${notice}`);
    await byTestId("logs-pause").click();
    await waitFor("the view to grow after resuming", 5000, async () => (await lines().count()) > atPause);
    // Following: the newest line is scrolled into view.
    await waitFor("the newest line to be in view", 5000, async () => {
      const last = lines().last();
      return last.isVisible().then(async (v) => v && (await last.boundingBox()) !== null);
    });
  });

  await step("scrolling up pauses following; resume returns to the end", async () => {
    const pane = page.locator(".logs-pane-body").first();
    await waitFor("the pane to overflow", 15_000, async () => pane.evaluate((el) => el.scrollHeight > el.clientHeight + 100));
    await pane.evaluate((el) => {
      el.scrollTop = 0;
    });
    await waitFor("the view to pause", 3000, async () => (await byTestId("logs-pause").getAttribute("aria-pressed")) === "true");
    await byTestId("logs-pause").click();
    await waitFor("the pane to follow the end again", 5000, async () =>
      pane.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 5),
    );
    expectEqual(await byTestId("logs-pause").getAttribute("aria-pressed"), "false", "pause after resuming");
  });

  await step("timestamps toggle hides and shows the time column", async () => {
    const ts = page.locator(`[data-testid="logs-line"][data-source="${CONTAINER}"] .log-ts`);
    if ((await ts.count()) === 0) fail("no timestamps shown by default");
    await byTestId("logs-timestamps-toggle").uncheck();
    await waitFor("the timestamps to go", 3000, async () => (await ts.count()) === 0);
    await byTestId("logs-timestamps-toggle").check();
    await waitFor("the timestamps to return", 3000, async () => (await ts.count()) > 0);
  });

  await step("download saves the loaded lines as a .log file", async () => {
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 10_000 }), byTestId("logs-download").click()]);
    const name = download.suggestedFilename();
    if (!name.endsWith(".log")) fail(`download named ${JSON.stringify(name)}`);
    const file = path.join(await tempDir("capstan-e2e-download-"), name);
    await download.saveAs(file);
    const text = readFileSync(file, "utf8");
    if (!/INFO tick \d+/.test(text) || !/ERROR boom \d+/.test(text)) fail(`the download lacks ticks or booms: ${JSON.stringify(text.slice(0, 200))}`);
    log(`  ${name}: ${text.split("\n").length - 1} lines`);
  });

  await step("an unknown container reads \"no such container\"; merged view tags lines by source", async () => {
    const missing = `capstan-logs-missing-${process.pid}`;
    await byTestId("logs-source-input").fill(missing);
    await byTestId("logs-add-source").click();
    const header = page.locator(`[data-testid="logs-source"][data-source="${missing}"]`);
    await waitFor("the unknown source to read no such container", 20_000, async () =>
      (await header.innerText()).includes("no such container"),
    );
    await page.screenshot({ path: path.join(artifactsDir, "logs-columns.png"), fullPage: false });
    await byTestId("logs-merge-toggle").check();
    await waitFor("merged lines tagged with the source", 5000, async () =>
      (await page.locator(`[data-testid="logs-line"][data-source="${CONTAINER}"] .log-source`).count()) > 0,
    );
  });

  await step("screenshot test-artifacts/logs-view.png", async () => {
    await page.screenshot({ path: path.join(artifactsDir, "logs-view.png"), fullPage: false });
    if (pageErrors.length > 0) fail(`browser errors: ${pageErrors.join("; ")}`);
  });
}

// ---------- main ----------

const watchdog = setTimeout(() => {
  process.stderr.write(`[e2e:logs] FAILED: the whole run exceeded ${watchdogSecs} s\n`);
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
  // Agent first, then the core, then the container.
  const agent = children.get("agent");
  if (agent) await stop(agent).catch(() => undefined);
  for (const record of [...children.values()].reverse()) await stop(record).catch(() => undefined);
  if (containerStarted) {
    const removed = await docker(["rm", "-f", CONTAINER], 20_000);
    if (removed.ok) containerStarted = false;
    else log(`could not remove ${CONTAINER}: ${removed.text}`);
  }
  for (const dir of tempDirs.splice(0)) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  clearTimeout(watchdog);
}

if (failure) {
  process.stderr.write(`\n[e2e:logs] FAILED: ${failure instanceof Error ? failure.message : String(failure)}\n`);
  if (!(failure instanceof TestFailure) && failure instanceof Error) process.stderr.write(`${failure.stack}\n`);
  for (const record of children.values()) {
    process.stderr.write(`[e2e:logs] ${record.name} log: ${path.relative(repoDir, record.logPath)}\n`);
  }
  process.stdout.write(`browser (logs): ${passed} passed, 1 failed\n`);
  process.exit(1);
}
process.stdout.write(`browser (logs): ${passed} passed, 0 failed\n`);
process.exit(0);
