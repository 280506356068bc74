// Browser test of the Logs view against the real binaries and Docker: starts capstan-core on a
// free port with a fresh data dir, a capstan-agent (NGINX off) and a busybox container that prints
// `INFO tick N` every 200 ms and `ERROR boom N` on stderr every fifth line, then drives the
// embedded UI in Debian's Chromium (playwright-core, no browser download): opens the node's logs
// from the Nodes page, adds the container as a source, sees lines arrive, counts an idle viewer's
// requests (one long-poll, not one a second) and how soon a line shows once the container prints again,
// a stderr line marked,
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

import { readFileSync } from "node:fs";
import path from "node:path";
import {
  apiClient, artifactsDir, assertAlive, byTestId as testId, docker, dockerAnswers, expectEqual, fail, IMAGE,
  launchBrowser, log, loginUi, nodeRow, plain, runContainer, runSpec, sleep, startCore, startNodeWithAgent,
  step, tempDir, waitFor,
} from "./harness.mjs";

const NODE_NAME = "browser-logs";
const CONTAINER = `capstan-logs-${process.pid}`;
/** Prints `INFO tick N` every 200 ms, and `ERROR boom N` on stderr with every fifth. Ash builtins only. */
/** Window over which an idle viewer's requests are counted (it long-polls, up to 20 s each). */
const IDLE_WINDOW_MS = 8000;
const SCRIPT = 'i=0; while :; do i=$((i+1)); echo "INFO tick $i"; case $((i % 5)) in 0) echo "ERROR boom $i" >&2;; esac; sleep 0.2; done';

async function run() {
  await dockerAnswers();

  await step(`container ${CONTAINER} prints INFO ticks and ERROR booms on stderr`, async () => {
    await runContainer(CONTAINER, [IMAGE, "sh", "-c", SCRIPT]);
    await waitFor("the container's first ERROR line", 10_000, async () => {
      const logs = await docker(["logs", CONTAINER], 5000);
      return logs.ok && logs.text.includes("ERROR boom 5");
    });
  });

  const core = await startCore();
  const api = apiClient(core);
  const node = await startNodeWithAgent(core, api, NODE_NAME);
  const page = await launchBrowser({ acceptDownloads: true });

  const byTestId = (id) => testId(page, id);
  const lines = () => page.locator(`[data-testid="logs-line"][data-source="${CONTAINER}"]`);
  /** The texts (without timestamps) of the lines in view. */
  const lineTexts = () =>
    page.$$eval(`[data-testid="logs-line"][data-source="${CONTAINER}"] .log-text`, (els) => els.map((el) => el.textContent ?? ""));
  const pageErrors = [];
  page.on("pageerror", (err) => pageErrors.push(err.message));

  await step("log in as admin: lands on /nodes", async () => {
    await loginUi(page, core);
  });

  await step("the node row's Logs link opens /nodes/{id}/logs", async () => {
    const row = nodeRow(page, NODE_NAME);
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

  await step(`an idle viewer holds one long-poll; lines appear promptly once ${CONTAINER} prints again`, async () => {
    // Every poll request of this source, from the browser's own network log.
    const pollPath = `/api/agents/${node.id}/logs/${encodeURIComponent(CONTAINER)}`;
    const starts = [];
    const onRequest = (request) => {
      if (new URL(request.url()).pathname === pollPath) starts.push(Date.now());
    };
    // Paused, the container prints nothing: the view has nothing to wait for but the core.
    const paused = await docker(["pause", CONTAINER], 10_000);
    if (!paused.ok) fail(`docker pause: ${paused.text}`);
    await sleep(1000);
    page.on("request", onRequest);
    await sleep(IDLE_WINDOW_MS);
    log(`  idle: ${starts.length} requests in ${IDLE_WINDOW_MS} ms`);
    // The feed holds each request up to 20 s: at most one new request in the window (the
    // old one-a-second polling made 7–9).
    if (starts.length > 1) fail(`${starts.length} requests in ${IDLE_WINDOW_MS} ms from an idle viewer, expected ≤ 1`);
    const before = await lines().count();
    starts.length = 0;
    const resumed = Date.now();
    const unpaused = await docker(["unpause", CONTAINER], 10_000);
    if (!unpaused.ok) fail(`docker unpause: ${unpaused.text}`);
    await waitFor("a new line after unpausing", 10_000, async () => (await lines().count()) > before);
    const shown = Date.now() - resumed;
    page.off("request", onRequest);
    log(`  unpause → new line on screen in ${shown} ms (the script prints every 200 ms)`);
    // The container's next line comes ≤ 200 ms after unpausing; 1 s polling showed it up to ~1.4 s later.
    if (shown > 1000) fail(`a new line took ${shown} ms to show, expected < 1000 ms`);
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

await runSpec(run, { name: "logs" });
