// The one fetch wrapper for authenticated calls: attaches the access token, and on a 401 refreshes
// the session once and retries; when the session cannot be refreshed it ends it, which sends the
// user to the login page.

import { ApiError } from "./error";
import { expireSession, getAccessToken, refresh } from "./session";
import { send, type Method, type SendOptions } from "./transport";

export type CallOptions = Omit<SendOptions, "token">;

export async function call<T>(method: Method, template: string, opts: CallOptions = {}): Promise<T> {
  let token = getAccessToken();
  if (token === null) token = await renew();
  try {
    return await send<T>(method, template, { ...opts, token });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
  }
  // A concurrent call may already have refreshed; then retrying with its token is enough.
  const current = getAccessToken();
  const retryToken = current !== null && current !== token ? current : await renew();
  try {
    return await send<T>(method, template, { ...opts, token: retryToken });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      expireSession();
      throw ApiError.sessionEnded();
    }
    throw err;
  }
}

async function renew(): Promise<string> {
  const ok = await refresh();
  const token = getAccessToken();
  if (!ok || token === null) {
    expireSession();
    throw ApiError.sessionEnded();
  }
  return token;
}
