// Shared helpers of the browser specs (each spec runs in its own Node process, so the
// module state here, the temp-dir list, is per spec).
import { execFile, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const IMAGE = "capstan-test/busybox:1";

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
