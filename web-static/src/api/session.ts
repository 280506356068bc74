// The signed-in session. The access token lives only in memory; the refresh token lives in
// localStorage so a reload can restore the session with one refresh call. The refresh token
// rotates on every use, so refreshes are single-flight: concurrent 401s share one refresh.

import { ApiError } from "./error";
import { send } from "./transport";
import type { LoginRequest, LogoutRequest, RefreshRequest, TokenPair } from "./types";

export type SessionState =
  | { kind: "restoring" }
  | { kind: "signed-out"; reason: "none" | "logged-out" | "expired" }
  | { kind: "signed-in"; username: string }
  | { kind: "unreachable"; message: string };

const REFRESH_KEY = "capstan.refresh_token";

let accessToken: string | null = null;
let state: SessionState = readRefreshToken() ? { kind: "restoring" } : { kind: "signed-out", reason: "none" };
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
  const body: LoginRequest = { username, password };
  adopt(await send<TokenPair>("POST", "/api/auth/login", { body }));
}

/** Revokes the refresh token on the core (best effort) and forgets both tokens. */
export async function logout(): Promise<void> {
  const refreshToken = readRefreshToken();
  const token = accessToken;
  forget({ kind: "signed-out", reason: "logged-out" });
  if (!refreshToken) return;
  const body: LogoutRequest = { refresh_token: refreshToken };
  try {
    await send<void>("POST", "/api/auth/logout", { body, token });
  } catch {
    // The tokens are already gone from this browser; an unrevoked refresh token expires on its own.
  }
}

/** Restores the session after a page load from the stored refresh token. */
export async function restoreSession(): Promise<void> {
  if (!readRefreshToken()) {
    setState({ kind: "signed-out", reason: "none" });
    return;
  }
  setState({ kind: "restoring" });
  try {
    if (!(await refresh())) setState({ kind: "signed-out", reason: "none" });
  } catch (err) {
    const message = err instanceof ApiError ? err.message : "Cannot reach the Capstan core.";
    setState({ kind: "unreachable", message });
  }
}

/**
 * Trades the refresh token for a new token pair. Resolves false when the core rejects the token
 * (the session is over), rejects with an ApiError when the core could not be asked.
 */
export function refresh(): Promise<boolean> {
  inflightRefresh ??= refreshOnce().finally(() => {
    inflightRefresh = null;
  });
  return inflightRefresh;
}

/** Ends the session because the core no longer accepts it; the app then shows the login page. */
export function expireSession(): void {
  forget({ kind: "signed-out", reason: "expired" });
}

async function refreshOnce(): Promise<boolean> {
  const used = readRefreshToken();
  if (!used) return false;
  try {
    adopt(await exchange(used));
    return true;
  } catch (err) {
    if (!isRejection(err)) throw err;
  }
  // Another tab may have rotated the shared refresh token between our read and our request.
  const current = readRefreshToken();
  if (current && current !== used) {
    try {
      adopt(await exchange(current));
      return true;
    } catch (err) {
      if (!isRejection(err)) throw err;
    }
  }
  return false;
}

function exchange(refreshToken: string): Promise<TokenPair> {
  const body: RefreshRequest = { refresh_token: refreshToken };
  return send<TokenPair>("POST", "/api/auth/refresh", { body });
}

function isRejection(err: unknown): boolean {
  return err instanceof ApiError && (err.status === 401 || err.status === 400 || err.status === 403);
}

function adopt(pair: TokenPair): void {
  accessToken = pair.access_token;
  writeRefreshToken(pair.refresh_token);
  if (state.kind !== "signed-in" || state.username !== pair.username) {
    setState({ kind: "signed-in", username: pair.username });
  }
}

function forget(next: SessionState): void {
  accessToken = null;
  writeRefreshToken(null);
  setState(next);
}

function setState(next: SessionState): void {
  state = next;
  for (const listener of listeners) listener();
}

function readRefreshToken(): string | null {
  try {
    return window.localStorage.getItem(REFRESH_KEY);
  } catch {
    return null;
  }
}

function writeRefreshToken(token: string | null): void {
  try {
    if (token === null) window.localStorage.removeItem(REFRESH_KEY);
    else window.localStorage.setItem(REFRESH_KEY, token);
  } catch {
    // Storage can be disabled (private mode); the session then lasts until the page reloads.
  }
}

// Logging out in one tab logs out every tab: they share the stored refresh token.
window.addEventListener("storage", (event) => {
  if (event.key === REFRESH_KEY && event.newValue === null && state.kind === "signed-in") {
    accessToken = null;
    setState({ kind: "signed-out", reason: "logged-out" });
  }
});
