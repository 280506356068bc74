// Browser test of the monitoring pages against the real binaries and Docker: starts capstan-core
// on a free port with a fresh data dir, a capstan-agent (NGINX off) and a busybox container (a
// health check, a little CPU work, and a JSON endpoint labelled for custom metrics), then drives
// the embedded UI in Debian's Chromium (playwright-core, no browser download): the Overview lists
// the node with live figures and sparklines, the node page's charts fill with data and list the
// container (health, restarts, sortable), the container page charts it and shows its status and
// custom metrics section; both pages are saved as screenshots in test-artifacts/. A second,
// synthetic node (the test sends its beats through the real /api/heartbeat) brings what this
// tree's agent does not report yet: an unhealthy container with restarts, custom metrics with a
// failing endpoint over the series cap, and a VM, checked on the overview, node, container and VM
// pages. Every wait is bounded; the processes and the container go away on every exit path.
//
//   npm run test:browser -- monitoring   (this spec only)
//   node e2e/monitoring.spec.mjs         (the same; binaries from ../target/debug)
//   CAPSTAN_BIN_DIR=/path                (where capstan-core and capstan-agent are)
//   CHROMIUM_PATH=/usr/bin/chromium      (default)
//   E2E_TIMEOUT_SECS=180                 (watchdog for the whole run)
//
// Needs a running Docker daemon (scripts/test starts one) and busybox-static. The real
// container's custom metrics are checked when the agent reports them (see the steps), else logged.

import path from "node:path";
import {
  apiClient, artifactsDir, assertAlive, byTestId as testId, createNode, docker, dockerAnswers, expectEqual,
  fail, IMAGE, launchBrowser, log, loginUi, runContainer, runSpec, sleep, startCore, startNodeWithAgent,
  step, waitFor, webDir,
} from "./harness.mjs";
import { checkClientAgainstOpenApi } from "./openapi-check.mjs";

const NODE_NAME = "browser-monitoring";
const CONTAINER = `capstan-monitoring-${process.pid}`;
/** Port of the container's custom metrics endpoint (busybox httpd serving a JSON file). */
const METRICS_PORT = 9100;
/**
 * Serves `/metrics` (a JSON object of numbers, rewritten every 200 ms) on METRICS_PORT and keeps
 * one core somewhat busy between writes, so the CPU chart has something to draw. Ash builtins and
 * the image's applets only.
 */
const SCRIPT = [
  "mkdir -p /www",
  `echo '{"requests":0,"queue":{"depth":0}}' > /www/metrics`,
  `httpd -p ${METRICS_PORT} -h /www`,
  "n=0",
  'while :; do n=$((n+1)); echo "{\\"requests\\":$n,\\"queue\\":{\\"depth\\":$((n % 7))}}" > /www/metrics; i=0; while [ $i -lt 4000 ]; do i=$((i+1)); done; sleep 0.2; done',
].join("; ");
/** Timer of the synthetic node's heartbeats (see `startSyntheticNode`). */
let syntheticTimer = null;

// ---------- a synthetic node ----------

const SYNTH_NODE = "browser-synthetic";
const SYNTH_CONTAINER = "synthetic-app";
const SYNTH_VM = "synthetic-vm";
const SYNTH_URL = "http://172.17.0.9:9100/metrics";
const SYNTH_ERROR = "HTTP 500 from the endpoint";

/**
 * What the agent in this tree does not report yet (health, restarts, custom metrics with a
 * failing endpoint and a hit cap, VMs) comes from a second node whose beats the test sends
 * itself, once a second, through the real /api/heartbeat with that node's ID and key. Only the
 * figures are made up; the core ingests, stores and serves them as it would an agent's.
 */
function syntheticSample(n) {
  const t = Math.floor(Date.now() / 1000);
  const wave = (period, lo, hi) => lo + ((hi - lo) * (1 + Math.sin((2 * Math.PI * n) / period))) / 2;
  return {
    t,
    host: {
      "cpu.busy": wave(20, 10, 60),
      "cpu.user": wave(20, 5, 40),
      "load.1": wave(30, 0.2, 1.5),
      "mem.used": wave(40, 2e9, 3e9),
      "mem.total": 8e9,
      "fs./.used_pct": 42,
      "net.eth0.rx_bps": wave(10, 1e4, 5e5),
      "net.eth0.tx_bps": wave(10, 1e4, 2e5),
      "disk.vda.read_bps": wave(15, 0, 2e6),
      "disk.vda.write_bps": wave(15, 0, 1e6),
    },
    containers: [
      {
        name: SYNTH_CONTAINER,
        id: "0123456789ab",
        image: "example/app:1",
        state: "running",
        status: "Up 2 hours (unhealthy)",
        health: "unhealthy",
        restarts: 2,
        values: {
          "cpu.pct": wave(12, 1, 30),
          "mem.used": wave(25, 1e8, 2e8),
          "mem.limit": 5e8,
          "net.rx_bps": wave(10, 100, 5e4),
          "net.tx_bps": wave(10, 100, 2e4),
          "blk.read_bps": wave(14, 0, 1e5),
          "blk.write_bps": wave(14, 0, 5e4),
          "custom.requests": n,
          "custom.queue.depth": n % 7,
          "custom.latency.p99_ms": wave(8, 20, 90),
        },
        custom: { url: SYNTH_URL, error: SYNTH_ERROR, series: 3, dropped: 7, last_ok: t - 5 },
      },
    ],
    vms: [
      {
        name: SYNTH_VM,
        source: "libvirt",
        state: "running",
        vcpus: 2,
        values: {
          "cpu.pct": wave(16, 5, 120),
          "mem.used": wave(30, 1e9, 1.5e9),
          "mem.max": 2e9,
          "disk.read_bps": wave(9, 0, 3e6),
          "disk.write_bps": wave(9, 0, 1e6),
        },
      },
    ],
  };
}

/** Sends the synthetic node's beats every second until the test ends; resolves after the first. */
async function startSyntheticNode(base, id, key) {
  let n = 0;
  let last = null;
  const beat = async () => {
    n += 1;
    const res = await fetch(`${base}/api/heartbeat`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "x-capstan-agent-id": id, "x-capstan-agent-key": key },
      body: JSON.stringify({
        protocol: 2,
        agent_version: "0.0.0-synthetic",
        hostname: SYNTH_NODE,
        os: "synthetic",
        uptime_secs: 1000 + n,
        interval_ms: 1000,
        metrics: { samples: [syntheticSample(n)] },
      }),
      signal: AbortSignal.timeout(5000),
    });
    last = res.ok ? null : `HTTP ${res.status} ${await res.text()}`;
  };
  await beat();
  if (last !== null) fail(`the synthetic node's first beat was refused: ${last}`);
  syntheticTimer = setInterval(() => void beat().catch((err) => log(`  synthetic beat failed: ${err.message}`)), 1000);
}

// ---------- the test ----------

async function run() {
  await dockerAnswers();

  await step(`container ${CONTAINER}: health check, CPU work, custom metrics endpoint`, async () => {
    await runContainer(CONTAINER, [
      "--label", `capstan.metrics.port=${METRICS_PORT}`,
      "--health-cmd", "cat /www/metrics", "--health-interval", "1s", "--health-start-period", "1s",
      IMAGE, "sh", "-c", SCRIPT,
    ]);
    await waitFor("the container to be healthy", 20_000, async () => {
      const state = await docker(["inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", CONTAINER], 5000);
      if (state.ok && state.text.startsWith("exited")) fail(`the container exited: ${(await docker(["logs", CONTAINER])).text}`);
      return state.ok && state.text === "running healthy";
    });
  });

  const core = await startCore();
  const { base } = core;
  const api = apiClient(core);
  const node = await startNodeWithAgent(core, api, NODE_NAME);

  const synthetic = await step(`add node "${SYNTH_NODE}" (API) and send its beats: health, restarts, custom metrics, a VM`, async () => {
    const created = await createNode(api, SYNTH_NODE);
    await startSyntheticNode(base, created.id, created.key);
    return { id: created.id };
  });

  /** The container as the node's newest sample reports it (what the agent supports decides the checks below). */
  const reported = await step(`the node's newest sample lists ${CONTAINER}`, async () => {
    const found = await waitFor("the container in /metrics/latest", 25_000, async () => {
      assertAlive(node.agent);
      const res = await api("GET", `/api/agents/${node.id}/metrics/latest`);
      return res.body?.sample?.containers?.find((c) => c.name === CONTAINER) ?? null;
    });
    log(`  state ${found.state}, health ${JSON.stringify(found.health ?? "")}, restarts ${found.restarts}, custom ${JSON.stringify(found.custom ?? null)}`);
    return found;
  });

  const page = await launchBrowser({ viewport: { width: 1280, height: 900 } });

  const byTestId = (id) => testId(page, id);
  const chart = (title) => page.locator(`[data-testid="metrics-chart"][data-chart="${title}"]`);
  /** Non-null values the chart handed to uPlot. */
  const chartPoints = async (title) => Number((await chart(title).getAttribute("data-points")) ?? "0");
  /** Waits until each chart drew data and has its uPlot canvas; returns the point counts. */
  const chartsFilled = async (titles, timeoutMs) => {
    const counts = {};
    for (const title of titles) {
      counts[title] = await waitFor(`the ${title} chart to have data`, timeoutMs, async () => {
        assertAlive(node.agent);
        const n = await chartPoints(title);
        return n > 0 && (await chart(title).locator("canvas").count()) > 0 ? n : null;
      });
    }
    return counts;
  };
  const pageErrors = [];
  page.on("pageerror", (err) => pageErrors.push(err.message));

  await step("log in as admin; the Overview nav entry opens /overview", async () => {
    await loginUi(page, core);
    await byTestId("overview-nav").click();
    await page.waitForURL((url) => url.pathname === "/overview");
    expectEqual(await byTestId("overview-nav").getAttribute("aria-current"), "page", "Overview nav item's aria-current");
  });

  const row = page.locator(`[data-testid="overview-row"][data-node-name="${NODE_NAME}"]`);
  await step("the overview row is online with live CPU, memory, container count and sparklines", async () => {
    await row.waitFor({ state: "visible" });
    expectEqual(await row.getAttribute("data-node-id"), node.id, "row's data-node-id");
    expectEqual((await row.locator('[data-testid="overview-status"]').innerText()).trim(), "online", "status");
    const cpu = await waitFor("a CPU figure", 15_000, async () => {
      const text = (await row.locator('[data-testid="overview-cpu"]').innerText()).trim();
      return /^\d+(\.\d)? %$/.test(text) ? text : null;
    });
    const mem = (await row.locator('[data-testid="overview-mem"]').innerText()).trim();
    if (!/^\d+(\.\d)? %$/.test(mem)) fail(`memory reads ${JSON.stringify(mem)}`);
    const containers = await waitFor("the container count", 10_000, async () => {
      const n = Number((await row.locator('[data-testid="overview-containers"]').innerText()).trim());
      return n >= 1 ? n : null;
    });
    for (const spark of ["spark-cpu", "spark-mem"]) {
      const svg = row.locator(`svg[data-testid="${spark}"]`);
      const points = await waitFor(`the ${spark} sparkline to have a point`, 20_000, async () => {
        const n = Number((await svg.getAttribute("data-points")) ?? "0");
        return n > 0 && (await svg.locator("polyline, circle").count()) > 0 ? n : null;
      });
      log(`  ${spark}: ${points} point(s)`);
    }
    const cells = await row.locator("td").allInnerTexts();
    log(`  row: ${cells.map((cell) => cell.replace(/\s+/g, " ").trim()).join(" | ")} (cpu ${cpu}, ${containers} containers)`);
  });

  await step("the row opens the node page; its charts fill with data", async () => {
    await row.locator('[data-testid="overview-node-link"]').click();
    await page.waitForURL((url) => url.pathname === `/nodes/${node.id}`);
    await byTestId("node-metrics-page").waitFor({ state: "visible" });
    await waitFor("the node's name in the title", 10_000, async () => (await byTestId("node-title").innerText()).trim() === NODE_NAME);
    const counts = await chartsFilled(["CPU", "Load", "Memory", "Disk space", "Network"], 20_000);
    log(`  points: ${JSON.stringify(counts)}`);
    // The charts keep growing from the newest sample (polled every second), while the full 1 h
    // history is fetched again only every 30 s.
    const requests = [];
    const onRequest = (req) => requests.push(new URL(req.url()).pathname);
    page.on("request", onRequest);
    const before = await chartPoints("CPU");
    await waitFor("the CPU chart to grow", 10_000, async () => (await chartPoints("CPU")) > before + 2);
    await sleep(4000);
    page.off("request", onRequest);
    const full = requests.filter((p) => p === `/api/agents/${node.id}/metrics`).length;
    const latest = requests.filter((p) => p === `/api/agents/${node.id}/metrics/latest`).length;
    log(`  CPU ${before} → ${await chartPoints("CPU")} points; meanwhile ${latest} newest-sample and ${full} full-history requests`);
    if (latest < 3) fail(`only ${latest} newest-sample requests in the window`);
    if (full > 1) fail(`${full} full 1 h history requests in a few seconds: the live chart should append the newest sample instead`);
    // Hovering the newest points shows a figure in the uPlot legend.
    const over = chart("CPU").locator(".u-over");
    const box = await over.boundingBox();
    if (box === null) fail("the CPU chart has no plot area");
    await page.mouse.move(box.x + box.width - 2, box.y + box.height / 2);
    const legend = await waitFor("a CPU figure in the legend", 5000, async () => {
      const values = await chart("CPU").locator(".u-legend .u-value").allInnerTexts();
      return values.find((v) => /\d+(\.\d)? %/.test(v)) ?? null;
    });
    log(`  legend: ${legend}`);
    await page.mouse.move(0, 0);
  });

  const containerRow = page.locator(`[data-testid="container-row"][data-container-name="${CONTAINER}"]`);
  await step(`the containers table lists ${CONTAINER} with health and restarts, and sorts`, async () => {
    await containerRow.waitFor({ state: "visible" });
    const restarts = (await containerRow.locator('[data-testid="container-restarts"]').innerText()).trim();
    expectEqual(restarts, String(reported.restarts ?? 0), "restarts cell");
    // Docker's check passes from the start. The badge comes from the agent's `health` field, or
    // from Docker's status text ("Up 5 seconds (healthy)") for an agent that does not send it.
    const shown = await waitFor("the health badge to read healthy", 15_000, async () => {
      const h = await containerRow.locator('[data-testid="container-health"]').getAttribute("data-health");
      return h === "healthy" ? h : null;
    });
    log(`  health: ${shown} (${reported.health ? "from the agent's health field" : "from Docker's status text"})`);
    for (const key of ["restarts", "health", "cpu", "name"]) {
      const button = page.locator(`[data-testid="containers-sort"][data-sort="${key}"]`);
      await button.click();
      expectEqual(await button.getAttribute("aria-pressed"), "true", `sort by ${key} pressed`);
      await containerRow.waitFor({ state: "visible" });
    }
  });

  await step("screenshot test-artifacts/monitoring-node.png", async () => {
    // The top bar is sticky: from the top, a full-page shot shows it once, where it belongs.
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(artifactsDir, "monitoring-node.png"), fullPage: true });
  });

  await step(`the container's link opens its page: status header and filled charts`, async () => {
    await containerRow.locator('[data-testid="container-link"]').click();
    await page.waitForURL((url) => url.pathname === `/nodes/${node.id}/containers/${CONTAINER}`);
    await byTestId("container-page").waitFor({ state: "visible" });
    expectEqual((await byTestId("container-title").innerText()).trim(), CONTAINER, "container page title");
    await waitFor("the state badge to read running", 10_000, async () => (await byTestId("container-state").innerText()).trim() === "running");
    // Network and block I/O when the agent reports them for this container (a cgroup without
    // any I/O yet may have no block figures).
    const titles = ["CPU", "Memory"];
    if ("net.rx_bps" in reported.values) titles.push("Network");
    if ("blk.read_bps" in reported.values) titles.push("Block I/O");
    const counts = await chartsFilled(titles, 20_000);
    log(`  points: ${JSON.stringify(counts)}`);
    const header = (await byTestId("container-status").innerText()).replace(/\s+/g, " ").trim();
    log(`  header: ${header}`);
    if (!header.includes(`${reported.restarts ?? 0} restart`)) fail(`the header lacks the restart count: ${JSON.stringify(header)}`);
  });

  await step("the custom metrics section", async () => {
    const section = byTestId("custom-metrics");
    await section.waitFor({ state: "visible" });
    if (reported.custom) {
      // The agent polls the container's endpoint: its URL and a chart per series must show.
      await waitFor("the endpoint URL", 15_000, async () =>
        (await byTestId("custom-endpoint-url").innerText()).includes(`:${METRICS_PORT}/`),
      );
      for (const series of ["requests", "queue.depth"]) {
        const points = await waitFor(`the custom ${series} chart to have data`, 20_000, async () => {
          const n = Number((await chart(series).getAttribute("data-points").catch(() => null)) ?? "0");
          return n > 0 ? n : null;
        });
        log(`  custom.${series}: ${points} point(s)`);
      }
      log(`  endpoint: ${(await byTestId("custom-endpoint").innerText()).replace(/\s+/g, " ").trim()}`);
    } else {
      const text = (await section.innerText()).replace(/\s+/g, " ").trim();
      if (!text.includes("capstan.metrics.port")) fail(`the empty custom section does not say how to get some: ${JSON.stringify(text)}`);
      log("  this agent reports no custom metrics (the section explains the label)");
    }
  });

  await step("screenshot test-artifacts/monitoring-container.png", async () => {
    // The top bar is sticky: from the top, a full-page shot shows it once, where it belongs.
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(artifactsDir, "monitoring-container.png"), fullPage: true });
  });

  await step("range 24h: the charts reload from the 1 min tier", async () => {
    const button = page.locator('[data-testid="metrics-range"][data-range="24h"]');
    await button.click();
    expectEqual(await button.getAttribute("aria-pressed"), "true", "24h pressed");
    const counts = await chartsFilled(["CPU", "Memory"], 15_000);
    log(`  points: ${JSON.stringify(counts)}`);
  });

  await step("the breadcrumb leads back to the node page", async () => {
    await page.getByRole("link", { name: NODE_NAME }).first().click();
    await page.waitForURL((url) => url.pathname === `/nodes/${node.id}`);
    await chartsFilled(["CPU"], 15_000);
    if (pageErrors.length > 0) fail(`browser errors: ${pageErrors.join("; ")}`);
  });

  const synthRow = page.locator(`[data-testid="overview-row"][data-node-name="${SYNTH_NODE}"]`);
  await step(`overview: ${SYNTH_NODE} shows its unhealthy container and its VM`, async () => {
    await byTestId("overview-nav").click();
    await page.waitForURL((url) => url.pathname === "/overview");
    await synthRow.waitFor({ state: "visible" });
    await waitFor("the unhealthy badge", 10_000, async () =>
      (await synthRow.locator('[data-testid="overview-unhealthy"]').innerText().catch(() => "")).trim() === "1 unhealthy",
    );
    const cells = await synthRow.locator("td").allInnerTexts();
    log(`  row: ${cells.map((cell) => cell.replace(/\s+/g, " ").trim()).join(" | ")}`);
    expectEqual(cells.at(-1)?.trim(), "1", "VM count");
  });

  await step("screenshot test-artifacts/monitoring-overview.png", async () => {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(artifactsDir, "monitoring-overview.png"), fullPage: true });
  });

  await step(`node page of ${SYNTH_NODE}: the container reads unhealthy with 2 restarts; the VM is listed`, async () => {
    await synthRow.locator('[data-testid="overview-node-link"]').click();
    await page.waitForURL((url) => url.pathname === `/nodes/${synthetic.id}`);
    const row = page.locator(`[data-testid="container-row"][data-container-name="${SYNTH_CONTAINER}"]`);
    await row.waitFor({ state: "visible" });
    expectEqual(await row.locator('[data-testid="container-health"]').getAttribute("data-health"), "unhealthy", "health");
    expectEqual((await row.locator('[data-testid="container-restarts"]').innerText()).trim(), "2", "restarts");
    const vm = page.locator(`[data-testid="vm-row"][data-vm-name="${SYNTH_VM}"]`);
    await vm.waitFor({ state: "visible" });
    log(`  VM row: ${(await vm.locator("td").allInnerTexts()).map((c) => c.trim()).join(" | ")}`);
    await chartsFilled(["CPU", "Memory", "Network"], 15_000);
  });

  await step(`container page of ${SYNTH_CONTAINER}: endpoint status (URL, error, dropped) and one chart per custom series`, async () => {
    await page.locator(`[data-testid="container-row"][data-container-name="${SYNTH_CONTAINER}"] [data-testid="container-link"]`).click();
    await page.waitForURL((url) => url.pathname === `/nodes/${synthetic.id}/containers/${SYNTH_CONTAINER}`);
    await byTestId("custom-endpoint").waitFor({ state: "visible" });
    expectEqual((await byTestId("custom-endpoint-url").innerText()).trim(), SYNTH_URL, "endpoint URL");
    expectEqual((await byTestId("custom-endpoint-error").innerText()).trim(), SYNTH_ERROR, "endpoint error");
    const dropped = (await byTestId("custom-endpoint-dropped").innerText()).trim();
    if (!dropped.includes("7 more")) fail(`the dropped count reads ${JSON.stringify(dropped)}`);
    const counts = await chartsFilled(["requests", "queue.depth", "latency.p99_ms", "CPU", "Memory", "Network", "Block I/O"], 15_000);
    log(`  points: ${JSON.stringify(counts)}`);
    const memory = await chart("Memory").locator(".u-legend .u-series").allInnerTexts();
    if (!memory.some((label) => label.includes("limit"))) fail(`the memory chart has no limit line: ${JSON.stringify(memory)}`);
  });

  await step("screenshot test-artifacts/monitoring-custom.png", async () => {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(artifactsDir, "monitoring-custom.png"), fullPage: true });
  });

  await step(`VM page of ${SYNTH_VM}: CPU, memory and disk I/O charts fill`, async () => {
    await page.getByRole("link", { name: SYNTH_NODE }).first().click();
    await page.waitForURL((url) => url.pathname === `/nodes/${synthetic.id}`);
    await page.locator(`[data-testid="vm-row"][data-vm-name="${SYNTH_VM}"] [data-testid="vm-link"]`).click();
    await page.waitForURL((url) => url.pathname === `/nodes/${synthetic.id}/vms/${SYNTH_VM}`);
    const status = (await byTestId("vm-status").innerText()).replace(/\s+/g, " ").trim();
    if (!status.includes("running") || !status.includes("2 vCPUs")) fail(`the VM header reads ${JSON.stringify(status)}`);
    const counts = await chartsFilled(["CPU", "Memory", "Disk I/O"], 15_000);
    log(`  ${status}; points: ${JSON.stringify(counts)}`);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(artifactsDir, "monitoring-vm.png"), fullPage: true });
    if (pageErrors.length > 0) fail(`browser errors: ${pageErrors.join("; ")}`);
  });

  await step("API client agrees with /api/openapi.json (paths, fields, nullability)", async () => {
    const result = await checkClientAgainstOpenApi(base, path.join(webDir, "src/api"));
    if (result.skipped) log(`  skipped: ${result.skipped}`);
    else log(`  ${result.checked} calls and ${result.types} types agree with the spec`);
    if (result.pending?.length) log(`  pending (not in the spec yet): ${result.pending.join(", ")}`);
  });
}

/** The test; the synthetic node's beats stop as soon as it ends, before anything is stopped. */
async function runWithSyntheticNode() {
  try {
    await run();
  } finally {
    clearInterval(syntheticTimer);
  }
}

await runSpec(runWithSyntheticNode, { name: "monitoring", killNow: () => clearInterval(syntheticTimer) });
