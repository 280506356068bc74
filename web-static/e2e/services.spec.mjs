// Browser test of the Services flow against the real binaries and a real NGINX: starts
// capstan-core on a free port with a fresh data dir and a busybox container serving a fixed body,
// drives the embedded UI in Debian's Chromium (playwright-core, no browser download), adds a node,
// starts a real capstan-agent managing its own NGINX on loopback ports, makes the node an edge,
// creates a service routing a domain to the container, waits for the node to report it applied,
// then sends a request with that Host header to the agent's NGINX and checks the container
// answered. Finally a domain with an injection attempt and a domain already taken must be refused
// at the domains field, with nothing created. Every wait is bounded; the processes, the NGINX
// master and the container go away on every exit path.
//
//   npm run test:browser                 (runs this after nodes.spec.mjs)
//   node e2e/services.spec.mjs           (this test alone; binaries from ../target/debug)
//   CAPSTAN_BIN_DIR=/path                (where capstan-core and capstan-agent are)
//   CHROMIUM_PATH=/usr/bin/chromium      (default)
//   E2E_TIMEOUT_SECS=180                 (watchdog for the whole run)
//
// Needs a running Docker daemon (scripts/test starts one), NGINX and busybox-static.

import { existsSync, readFileSync } from "node:fs";
import { copyFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import {
  addNodeInDialog, apiClient, artifactsDir, assertAlive, byTestId as testId, docker, dockerAnswers,
  expectEqual, fail, freePort, IMAGE, launchBrowser, log, loginUi, nodeRow as nodeRowOf, plain, runContainer,
  runSpec, sleep, startAgent, startCore, step, tempDir, waitFor, waitRowOnline,
} from "./harness.mjs";

const NODE_NAME = "browser-edge";
const SERVICE_NAME = "web";
const DOMAIN = "browser.capstan.test";
const BODY = "hello-from-capstan";
const CONTAINER = `capstan-browser-${process.pid}`;
/** NGINX dirs whose master to stop (the agent starts it; it outlives the agent). */
const nginxDirs = [];

/**
 * The PID of the NGINX master the agent started under `nginxDir`, or null. Checked against
 * /proc (the process is an nginx running this dir's config), so a stale pid file never gets us
 * to signal an unrelated process.
 */
function nginxMasterPid(nginxDir) {
  try {
    const pid = Number(readFileSync(path.join(nginxDir, "run/nginx.pid"), "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 1) return null;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
    return cmdline.includes("nginx") && cmdline.includes(nginxDir) ? pid : null;
  } catch {
    return null;
  }
}

function processExists(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `kill -QUIT` the NGINX master (graceful), then wait up to 5 s for it to exit, else SIGKILL. */
async function stopNginx(nginxDir) {
  const pid = nginxMasterPid(nginxDir);
  if (pid === null) {
    const pidFile = path.join(nginxDir, "run/nginx.pid");
    if (existsSync(pidFile)) {
      const recorded = readFileSync(pidFile, "utf8").trim();
      log(`warning: ${pidFile} names pid ${recorded}, which is not an NGINX running ${nginxDir}; not signalled`);
    }
    return;
  }
  process.kill(pid, "SIGQUIT");
  const deadline = Date.now() + 5000;
  while (processExists(pid) && Date.now() < deadline) await sleep(100);
  if (processExists(pid)) {
    log(`NGINX master ${pid} ignored SIGQUIT for 5 s; killing`);
    process.kill(pid, "SIGKILL");
  } else {
    log(`stopped NGINX master (pid ${pid})`);
  }
}

/** One `GET path` to host:port with the given Host header over a fresh connection (≤ 5 s). */
function httpGet(host, port, hostHeader, urlPath = "/") {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port, path: urlPath, method: "GET", headers: { Host: hostHeader, Connection: "close" }, agent: false, timeout: 5000 },
      (res) => {
        const chunks = [];
        res.on("data", (chunk) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer within 5 s")));
    req.on("error", reject);
    req.end();
  });
}

// ---------- the test ----------

async function run() {
  await dockerAnswers();

  await step(`container ${CONTAINER} serves "${BODY}" on port 80`, async () => {
    const script = `mkdir -p /www && echo ${BODY} > /www/index.html && exec httpd -f -p 80 -h /www`;
    await runContainer(CONTAINER, [IMAGE, "sh", "-c", script]);
    const inspect = await docker(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", CONTAINER]);
    if (!inspect.ok || inspect.text === "") fail(`no IP address for ${CONTAINER}: ${inspect.text}`);
    const ip = inspect.text;
    await waitFor(`the container to answer at ${ip}:80`, 10_000, async () => {
      const res = await httpGet(ip, 80, ip);
      return res.status === 200 && res.body.trim() === BODY;
    });
    log(`  ${CONTAINER} at ${ip}`);
  });

  const core = await startCore();
  const api = apiClient(core);

  /** The service list straight from the API, with a token of our own (not the browser's). */
  const listServices = async () => {
    const res = await api("GET", "/api/services");
    if (res.status !== 200) fail(`GET /api/services: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };

  const page = await launchBrowser();

  const byTestId = (id) => testId(page, id);
  const nodeRow = () => nodeRowOf(page, NODE_NAME);
  const serviceRow = (name) => page.locator(`[data-testid="service-row"][data-service-name="${name}"]`);

  await step("log in as admin: lands on /nodes", async () => {
    await loginUi(page, core);
    await byTestId("add-node-button").waitFor({ state: "visible" });
  });

  const created = await step(`add node "${NODE_NAME}" in the dialog: read its ID and key`, async () => {
    const { id, key } = await addNodeInDialog(page, NODE_NAME);
    await byTestId("dialog-close").click();
    await byTestId("new-node-id").waitFor({ state: "detached" });
    await nodeRow().waitFor({ state: "visible" });
    expectEqual(await nodeRow().getAttribute("data-node-id"), id, "row's data-node-id");
    log(`  id ${id}`);
    return { id, key };
  });

  const proxy = await step("start capstan-agent with NGINX on loopback: the row turns online within 20 s", async () => {
    const stateDir = await tempDir("capstan-e2e-agent-");
    const httpPort = await freePort();
    const httpsPort = await freePort();
    // Registered before the agent starts, so every exit path stops the NGINX it will start.
    const nginxDir = path.join(stateDir, "nginx");
    nginxDirs.push(nginxDir);
    const agent = await startAgent(core, created, {
      stateDir,
      env: {
        CAPSTAN_AGENT_NGINX: "true",
        CAPSTAN_AGENT_NGINX_LISTEN: "127.0.0.1",
        CAPSTAN_AGENT_NGINX_HTTP_PORT: String(httpPort),
        CAPSTAN_AGENT_NGINX_HTTPS_PORT: String(httpsPort),
        ADVERTISE_ADDRESS: "127.0.0.1",
      },
      options: { cwd: stateDir },
    });
    await waitRowOnline(page, NODE_NAME, agent, core);
    log(`  NGINX on 127.0.0.1:${httpPort} (https ${httpsPort}), state dir ${stateDir}`);
    return { agent, stateDir, nginxDir, httpPort };
  });

  await step("toggle the node to edge: the switch stays on and its NGINX reads applied", async () => {
    const toggle = nodeRow().locator('[data-testid="edge-toggle"]');
    expectEqual(await toggle.isChecked(), false, "edge switch before the toggle");
    await toggle.check();
    // Kept on while the PATCH settles, and still on once the poll agrees (enabled again).
    await waitFor("the edge switch to settle on", 10_000, async () => (await toggle.isChecked()) && (await toggle.isEnabled()));
    await sleep(2500); // one more poll of the node list: the core's answer, not the optimistic one
    expectEqual(await toggle.isChecked(), true, "edge switch after the poll");
    const routing = nodeRow().locator('[data-testid="node-routing-state"]');
    try {
      await waitFor("the node's NGINX state to read applied", 20_000, async () => {
        assertAlive(proxy.agent);
        return (await routing.textContent())?.trim() === "applied";
      });
    } catch (err) {
      const shown = (await routing.textContent().catch(() => null))?.trim();
      fail(`${err.message}; shows ${JSON.stringify(shown)}; agent's last output:\n${plain(proxy.agent.tail)}`);
    }
  });

  await step("open Services: the empty state", async () => {
    await byTestId("services-nav").click();
    await page.waitForURL((url) => url.pathname === "/services");
    await byTestId("empty-add-service-button").waitFor({ state: "visible" });
  });

  /** Fills the service form (on /services/new) with one placement on the node, one container target. */
  const fillServiceForm = async (name, domains) => {
    await byTestId("service-name").fill(name);
    await byTestId("service-domains").fill(domains);
    const select = byTestId("placement-node-select");
    await select.locator(`option[value="${created.id}"]`).waitFor({ state: "attached" });
    await select.selectOption(created.id);
    await byTestId("target-kind").selectOption("container");
    await byTestId("target-container").fill(CONTAINER);
    await byTestId("target-port").fill("80");
  };

  const service = await step(`add service "${SERVICE_NAME}" for ${DOMAIN} → ${CONTAINER}:80 on the node`, async () => {
    await byTestId("add-service-button").click();
    await page.waitForURL((url) => url.pathname === "/services/new");
    await fillServiceForm(SERVICE_NAME, DOMAIN);
    await byTestId("service-submit").click();
    await page.waitForURL((url) => url.pathname === "/services").catch(async () => {
      const shown = await byTestId("service-form-error").allInnerTexts().catch(() => []);
      const fields = await byTestId("field-error").allInnerTexts().catch(() => []);
      fail(`still on ${new URL(page.url()).pathname} after submitting; form errors: ${JSON.stringify([...shown, ...fields])}`);
    });
    const submitted = Date.now();
    await serviceRow(SERVICE_NAME).waitFor({ state: "visible" });
    const id = await serviceRow(SERVICE_NAME).getAttribute("data-service-id");
    if (!id) fail("the service row has no data-service-id");
    const domains = await serviceRow(SERVICE_NAME).locator(".domain-list").innerText();
    expectEqual(domains.trim(), DOMAIN, "domains shown in the row");
    log(`  id ${id}`);
    return { id, submitted };
  });

  await step("the service's state on the node turns applied within 20 s", async () => {
    const state = serviceRow(SERVICE_NAME).locator(`[data-testid="service-node-state"][data-node-id="${created.id}"]`);
    try {
      await waitFor("the service-node-state to read applied", 20_000, async () => {
        assertAlive(proxy.agent);
        assertAlive(core.process);
        return (await state.textContent())?.trim() === "applied";
      });
    } catch (err) {
      const shown = (await state.textContent().catch(() => null))?.trim();
      const title = await state.getAttribute("title").catch(() => null);
      fail(`${err.message}; shows ${JSON.stringify(shown)} (${JSON.stringify(title)}); agent's last output:\n${plain(proxy.agent.tail)}`);
    }
    log(`  applied ${Date.now() - service.submitted} ms after the form was saved`);
    expectEqual(await state.getAttribute("data-node-name"), NODE_NAME, "state chip's node name");
    // The edge carries the service's domain itself: it is its placement node, so one chip, role node.
    expectEqual(await state.getAttribute("data-role"), "node", "state chip's role");
    expectEqual(await serviceRow(SERVICE_NAME).locator('[data-testid="service-node-state"]').count(), 1, "state chips");
    const routed = page.locator(`[data-testid="routing-domain-row"][data-domain="${DOMAIN}"]`);
    await routed.waitFor({ state: "visible" });
    expectEqual(await routed.getAttribute("data-service-id"), service.id, "routing row's service");
  });

  await step(`GET / with Host: ${DOMAIN} through the agent's NGINX answers 200 "${BODY}"`, async () => {
    let attempts = 0;
    let last = null;
    // The state reads applied once NGINX was told to reload; allow its new workers a moment.
    await waitFor(`NGINX on 127.0.0.1:${proxy.httpPort} to answer with the container's body`, 5000, async () => {
      attempts += 1;
      last = await httpGet("127.0.0.1", proxy.httpPort, DOMAIN, "/");
      return last.status === 200 && last.body.trim() === BODY;
    }).catch((err) => {
      fail(`${err.message}; last answer: ${last === null ? "none" : `HTTP ${last.status} ${JSON.stringify(last.body.slice(0, 200))}`}`);
    });
    if (attempts > 1) log(`  note: answered correctly only at attempt ${attempts} (first: HTTP ${last?.status})`);
    // An unknown name is not routed to the service.
    const other = await httpGet("127.0.0.1", proxy.httpPort, "unknown.capstan.test", "/");
    if (other.status === 200 && other.body.trim() === BODY) fail("an unknown Host header reached the service's container");
    log(`  unknown host name: HTTP ${other.status}`);
  });

  await step("screenshot test-artifacts/services-applied.png", async () => {
    await page.screenshot({ path: path.join(artifactsDir, "services-applied.png"), fullPage: true });
  });

  await step('a domain with an injection ("evil.com;") is refused at the domains field; nothing is created', async () => {
    await byTestId("add-service-button").click();
    await page.waitForURL((url) => url.pathname === "/services/new");
    await fillServiceForm("evil", "evil.com;");
    const posts = [];
    const onRequest = (req) => {
      if (req.method() === "POST" && new URL(req.url()).pathname === "/api/services") posts.push(req.url());
    };
    page.on("request", onRequest);
    try {
      await byTestId("service-submit").click();
      const fieldError = page.locator('[data-testid="field-error"][data-field="domains"]');
      await fieldError.waitFor({ state: "visible" });
      const text = (await fieldError.innerText()).trim();
      if (!text.includes("com;")) fail(`the domains error does not name the bad label: ${JSON.stringify(text)}`);
      expectEqual(await byTestId("service-domains").getAttribute("aria-invalid"), "true", "domains box aria-invalid");
      const top = byTestId("service-form-error");
      await top.waitFor({ state: "visible" });
      const code = await top.getAttribute("data-code");
      log(`  domains error (${code}): ${JSON.stringify(text)}`);
      await sleep(500);
      expectEqual(new URL(page.url()).pathname, "/services/new", "path after the refused save");
      if (code === "client_validation") expectEqual(posts.length, 0, "POSTs sent for a domain the form refused");
      else expectEqual(await top.getAttribute("data-field"), "domains[0]", "server error's field");
    } finally {
      page.off("request", onRequest);
    }
    const list = await listServices();
    expectEqual(list.map((s) => s.name).join(","), SERVICE_NAME, "services in the API after the refused save");
  });

  await step(`a domain another service has (${DOMAIN}) gets the core's error at the domains field`, async () => {
    // Still on the form: the same draft with a valid but taken domain, which only the core can refuse.
    await byTestId("service-domains").fill(DOMAIN);
    await byTestId("service-submit").click();
    const top = byTestId("service-form-error");
    await waitFor("the core's error at the top of the form", 10_000, async () => {
      const code = await top.getAttribute("data-code").catch(() => null);
      return code !== null && code !== "client_validation";
    });
    expectEqual(await top.getAttribute("data-code"), "domain_taken", "error code");
    expectEqual(await top.getAttribute("data-field"), "domains[0]", "error field");
    const fieldError = page.locator('[data-testid="field-error"][data-field="domains"]');
    await fieldError.waitFor({ state: "visible" });
    const text = (await fieldError.innerText()).trim();
    if (!text.includes(DOMAIN)) fail(`the domains error does not name ${DOMAIN}: ${JSON.stringify(text)}`);
    log(`  domains error: ${JSON.stringify(text)}`);
    expectEqual(new URL(page.url()).pathname, "/services/new", "path after the refused save");
    const list = await listServices();
    expectEqual(list.map((s) => s.name).join(","), SERVICE_NAME, "services in the API after the refused save");
  });

  await step("back on Services: still the one service, still applied", async () => {
    await byTestId("services-nav").click();
    await page.waitForURL((url) => url.pathname === "/services");
    await serviceRow(SERVICE_NAME).waitFor({ state: "visible" });
    await sleep(2500); // a poll later, nothing else appeared
    expectEqual(await byTestId("service-row").count(), 1, "service rows");
    const state = serviceRow(SERVICE_NAME).locator('[data-testid="service-node-state"]');
    expectEqual((await state.textContent())?.trim(), "applied", "state after the refused saves");
    const res = await httpGet("127.0.0.1", proxy.httpPort, DOMAIN, "/");
    expectEqual(`${res.status} ${res.body.trim()}`, `200 ${BODY}`, "answer through NGINX after the refused saves");
  });
}

await runSpec(run, {
  name: "services",
  // Once the agent is stopped (so it cannot restart it), its NGINX: error log kept, master stopped.
  afterAgent: async () => {
    for (const dir of nginxDirs.splice(0)) {
      await copyFile(path.join(dir, "logs/error.log"), path.join(artifactsDir, "services-nginx-error.log")).catch(() => undefined);
      await stopNginx(dir).catch((err) => log(`could not stop NGINX under ${dir}: ${err.message}`));
    }
  },
  killNow: () => {
    for (const dir of nginxDirs.splice(0)) {
      const pid = nginxMasterPid(dir);
      if (pid !== null) {
        try {
          process.kill(pid, "SIGQUIT");
        } catch {
          // Already gone.
        }
      }
    }
  },
});
