// Browser test of the Nodes flow against the real binaries: starts capstan-core on a free port
// with a fresh data dir, drives the embedded UI in Debian's Chromium (playwright-core, no browser
// download), adds a node, starts a real capstan-agent with the key read from the dialog, and waits
// for the row to turn online. Every wait is bounded; both processes die on every exit path.
//
//   npm run test:browser                 (binaries from ../target/debug)
//   CAPSTAN_BIN_DIR=/path npm run test:browser
//   CHROMIUM_PATH=/usr/bin/chromium      (default)
//   E2E_TIMEOUT_SECS=180                 (watchdog for the whole run)

import path from "node:path";
import {
  addNodeInDialog, artifactsDir, assertAlive, byTestId as testId, expectEqual, fail, launchBrowser, log,
  nodeRow as nodeRowOf, openLogin, runSpec, startAgent, startCore, step, stop, waitFor, waitRowOnline,
  webDir,
} from "./harness.mjs";
import { checkClientAgainstOpenApi } from "./openapi-check.mjs";

const NODE_NAME = "browser-node";

async function run() {
  const core = await startCore();
  const { base, password } = core;
  const page = await launchBrowser();

  const byTestId = (id) => testId(page, id);
  const nodeRow = () => nodeRowOf(page, NODE_NAME);

  await step("open the UI: redirected to /login", async () => {
    await openLogin(page, core);
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
    const { id, key } = await addNodeInDialog(page, NODE_NAME);
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
    // This test is about nodes, not the proxy: the agent does not start NGINX on :80.
    const agent = await startAgent(core, created);
    await waitRowOnline(page, NODE_NAME, agent, core);
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
      assertAlive(core.process);
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

await runSpec(run);
