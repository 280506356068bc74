// The signed-in session. The access token lives only in memory. The refresh token never reaches
// JavaScript: the core sets it as an HttpOnly, SameSite=Strict cookie scoped to /api/auth, and
// the browser sends it with refresh and logout calls. A reload restores the session with one
// refresh call. localStorage holds only a marker ("a session may exist"), which avoids a pointless
// refresh call on the login page and tells other tabs about a logout.
//
// The refresh token rotates on every use and presenting a used one ends the session (the core
// treats it as theft), so refreshes are single-flight within a tab and, where the browser offers
// Web Locks (secure contexts: https or localhost), across tabs too: tabs share one cookie.

import { ApiError } from "./error";
import { send } from "./transport";
import type { LoginRequest, RefreshRequest, TokenPair } from "./types";

export type SessionState =
  | { kind: "restoring" }
  | { kind: "signed-out"; reason: "none" | "logged-out" | "expired" }
  | { kind: "signed-in"; username: string }
  | { kind: "unreachable"; message: string };

/** Not a secret: only says that this browser signed in and has not logged out since. */
const MARKER_KEY = "capstan.session";
const REFRESH_LOCK = "capstan.refresh";
/** Where versions before the cookie kept the refresh token; removed on sight. */
const LEGACY_REFRESH_KEY = "capstan.refresh_token";

try {
  window.localStorage.removeItem(LEGACY_REFRESH_KEY);
} catch {
  // Storage disabled: nothing was stored either.
}

let accessToken: string | null = null;
let state: SessionState = hasMarker() ? { kind: "restoring" } : { kind: "signed-out", reason: "none" };
let inflightRefresh: Promise<boolean> | null = null;
const listeners = new Set<() => void>();

export function getSession(): SessionState {
  return state;
}

export function subscribeSession(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function getAccessToken(): string | null {
  return accessToken;
}

export async function login(username: string, password: string): Promise<void> {
  const body: LoginRequest = { username, password, session_cookie: true };
  adopt(await send<TokenPair>("POST", "/api/auth/login", { body }));
}

/** Revokes the session on the core (which also clears the cookie) and forgets the access token. */
export async function logout(): Promise<void> {
  const token = accessToken;
  forget({ kind: "signed-out", reason: "logged-out" });
  const body: RefreshRequest = {};
  try {
    await send<void>("POST", "/api/auth/logout", { body, token });
  } catch {
    // The access token is gone from this page; an unrevoked refresh cookie expires on its own.
  }
}

/** Restores the session after a page load through the refresh cookie. */
export async function restoreSession(): Promise<void> {
  if (!hasMarker()) {
    setState({ kind: "signed-out", reason: "none" });
    return;
  }
  setState({ kind: "restoring" });
  try {
    if (!(await refresh())) forget({ kind: "signed-out", reason: "none" });
  } catch (err) {
    const message = err instanceof ApiError ? err.message : "Cannot reach the Capstan core.";
    setState({ kind: "unreachable", message });
  }
}

/**
 * Trades the refresh cookie for a new access token (and a new cookie). Resolves false when the
 * core rejects it (the session is over), rejects with an ApiError when the core could not be asked.
 */
export function refresh(): Promise<boolean> {
  inflightRefresh ??= withRefreshLock(refreshOnce).finally(() => {
    inflightRefresh = null;
  });
  return inflightRefresh;
}

/** Ends the session because the core no longer accepts it; the app then shows the login page. */
export function expireSession(): void {
  forget({ kind: "signed-out", reason: "expired" });
}

async function refreshOnce(): Promise<boolean> {
  const body: RefreshRequest = {};
  try {
    adopt(await send<TokenPair>("POST", "/api/auth/refresh", { body }));
    return true;
  } catch (err) {
    if (isRejection(err)) return false;
    throw err;
  }
}

/** Runs `task` holding the cross-tab refresh lock when the browser has one. */
function withRefreshLock(task: () => Promise<boolean>): Promise<boolean> {
  const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
  if (locks === undefined) return task();
  return locks.request(REFRESH_LOCK, task);
}

function isRejection(err: unknown): boolean {
  return err instanceof ApiError && (err.status === 401 || err.status === 400 || err.status === 403);
}

function adopt(pair: TokenPair): void {
  accessToken = pair.access_token;
  setMarker(true);
  if (state.kind !== "signed-in" || state.username !== pair.username) {
    setState({ kind: "signed-in", username: pair.username });
  }
}

function forget(next: SessionState): void {
  accessToken = null;
  setMarker(false);
  setState(next);
}

function setState(next: SessionState): void {
  state = next;
  for (const listener of listeners) listener();
}

function hasMarker(): boolean {
  try {
    return window.localStorage.getItem(MARKER_KEY) !== null;
  } catch {
    // Storage disabled: try the cookie anyway.
    return true;
  }
}

function setMarker(on: boolean): void {
  try {
    if (on) window.localStorage.setItem(MARKER_KEY, "1");
    else window.localStorage.removeItem(MARKER_KEY);
  } catch {
    // Storage can be disabled (private mode); the cookie still carries the session.
  }
}

// Logging out in one tab logs out every tab: the core revoked the session they share.
window.addEventListener("storage", (event) => {
  if (event.key === MARKER_KEY && event.newValue === null && state.kind === "signed-in") {
    accessToken = null;
    setState({ kind: "signed-out", reason: "logged-out" });
  }
});
