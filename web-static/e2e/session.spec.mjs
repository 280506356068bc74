// Browser test of the session and the page policy against the real binaries: the refresh token
// lives only in an HttpOnly, SameSite=Strict cookie scoped to /api/auth (never in localStorage or
// sessionStorage, never readable by page scripts), a reload keeps the session through that cookie,
// logout revokes it and clears the cookie, and the pages (login, nodes, overview, the node page
// with its uPlot charts, services) render under the core's Content-Security-Policy without a
// single violation.
//
//   npm run test:browser -- session      (this spec only)
//   CAPSTAN_BIN_DIR=/path                (where capstan-core and capstan-agent are)
//   CHROMIUM_PATH=/usr/bin/chromium      (default)

import {
  apiClient, byTestId as testId, expectEqual, fail, launchBrowser, log, loginUi, runSpec, startCore,
  sleep, startNodeWithAgent, step, waitFor,
} from "./harness.mjs";

const NODE_NAME = "browser-session";

async function run() {
  const core = await startCore();
  const api = apiClient(core);
  const node = await startNodeWithAgent(core, api, NODE_NAME);
  const page = await launchBrowser();
  const byTestId = (id) => testId(page, id);
  const context = page.context();

  // Every CSP violation the pages cause, from the DOM event and from the console.
  const violations = [];
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
  page.on("console", (msg) => {
    const text = msg.text();
    if (/Content Security Policy|CSP violation/i.test(text)) violations.push(text);
  });

  // All cookies (by URL, "/" would not match the cookie's Path=/api/auth).
  const refreshCookie = async () => (await context.cookies()).find((c) => c.name === "capstan_refresh") ?? null;
  const storage = () =>
    page.evaluate(() => ({
      local: Object.fromEntries(Object.keys(localStorage).map((k) => [k, localStorage.getItem(k)])),
      session: Object.fromEntries(Object.keys(sessionStorage).map((k) => [k, sessionStorage.getItem(k)])),
      cookie: document.cookie,
    }));

  await step("the UI document carries the security headers", async () => {
    const res = await page.goto(`${core.base}/`);
    const headers = res?.headers() ?? {};
    const csp = headers["content-security-policy"] ?? "";
    if (!csp.includes("default-src 'self'") || !csp.includes("frame-ancestors 'none'")) fail(`CSP: ${JSON.stringify(csp)}`);
    expectEqual(headers["x-frame-options"], "DENY", "X-Frame-Options");
    expectEqual(headers["x-content-type-options"], "nosniff", "X-Content-Type-Options");
    expectEqual(headers["referrer-policy"], "no-referrer", "Referrer-Policy");
    log(`  CSP: ${csp}`);
  });

  const first = await step("log in: the refresh token is an HttpOnly cookie, nowhere in JS-reachable storage", async () => {
    await loginUi(page, core);
    const cookie = await refreshCookie();
    if (cookie === null) fail("no capstan_refresh cookie after login");
    expectEqual(cookie.httpOnly, true, "cookie HttpOnly");
    expectEqual(cookie.sameSite, "Strict", "cookie SameSite");
    expectEqual(cookie.path, "/api/auth", "cookie Path");
    const seen = await storage();
    const dump = JSON.stringify(seen);
    if (dump.includes(cookie.value)) fail(`the refresh token is readable by page scripts: ${dump}`);
    if (/refresh/i.test(Object.keys(seen.local).join(" ") + Object.keys(seen.session).join(" "))) {
      fail(`a refresh entry in web storage: ${dump}`);
    }
    if (seen.cookie.includes("capstan_refresh")) fail(`document.cookie shows the refresh cookie: ${seen.cookie}`);
    log(`  storage: ${dump}`);
    return cookie.value;
  });

  await step("reload: the session survives through the cookie (rotated), still nothing in storage", async () => {
    await page.reload();
    await page.waitForURL((url) => url.pathname === "/nodes");
    await page.locator(`[data-testid="node-row"][data-node-name="${NODE_NAME}"]`).waitFor({ state: "visible" });
    const cookie = await refreshCookie();
    if (cookie === null) fail("the cookie is gone after a reload");
    if (cookie.value === first) fail("the reload did not rotate the refresh token");
    const dump = JSON.stringify(await storage());
    if (dump.includes(cookie.value)) fail(`the refresh token is readable by page scripts: ${dump}`);
  });

  await step("overview, node page (uPlot charts) and services render without CSP violations", async () => {
    await page.goto(`${core.base}/overview`);
    await page.locator(`svg[data-testid="spark-cpu"]`).first().waitFor({ state: "attached", timeout: 15_000 });
    await page.goto(`${core.base}/nodes/${node.id}`);
    await byTestId("node-metrics-page").waitFor({ state: "visible" });
    const chart = page.locator('[data-testid="metrics-chart"][data-chart="CPU"]');
    await waitFor("the CPU chart to draw", 20_000, async () => {
      const points = Number((await chart.getAttribute("data-points")) ?? "0");
      return points > 0 && (await chart.locator("canvas").count()) > 0;
    });
    const box = await chart.locator(".u-over").boundingBox();
    if (box === null || box.width < 50 || box.height < 20) fail(`the chart's plot area is not laid out: ${JSON.stringify(box)}`);
    await page.goto(`${core.base}/services`);
    await byTestId("services-nav").waitFor({ state: "visible" });
    if (violations.length > 0) fail(`CSP violations:\n${violations.join("\n")}`);
    log("  no CSP violation on login, nodes, overview, node and services pages");
  });

  await step("the violation detector itself works (an inline style element is reported)", async () => {
    await page.evaluate(() => {
      const style = document.createElement("style");
      style.textContent = "body { outline: 1px solid red; }";
      document.head.append(style);
    });
    await waitFor("the injected inline style to be reported", 5_000, async () => violations.length > 0);
    // Chromium reports it twice (its own console line and the DOM event): let both arrive.
    await sleep(500);
    log(`  detected: ${violations.join(" | ")}`);
    violations.length = 0;
  });

  await step("log out: the session is revoked and the cookie cleared; a reload asks to sign in", async () => {
    const before = await refreshCookie();
    await byTestId("logout-button").click();
    await page.waitForURL((url) => url.pathname === "/login");
    await waitFor("the cookie to be cleared", 5_000, async () => (await refreshCookie()) === null);
    const stale = await fetch(`${core.base}/api/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: before.value }),
    });
    expectEqual(stale.status, 401, "refresh with the logged-out token");
    await page.reload();
    await page.waitForURL((url) => url.pathname === "/login");
    await byTestId("login-username").waitFor({ state: "visible" });
    if (violations.length > 0) fail(`CSP violations:\n${violations.join("\n")}`);
  });
}

await runSpec(run, { name: "session" });
