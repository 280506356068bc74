import { useEffect, useState } from "react";
import { systemApi } from "../../api/endpoints";

/** The URL agents should use to reach this core, and where it came from. */
export interface CoreUrl {
  url: string;
  /** `public_url`: the core's configured public URL; `browser`: the address this browser uses. */
  source: "public_url" | "browser";
  /** The host is a loopback address: agents on other hosts cannot reach it. */
  loopback: boolean;
}

function coreUrl(url: string, source: CoreUrl["source"]): CoreUrl {
  return { url, source, loopback: isLoopbackUrl(url) };
}

/**
 * The URL agents should use to reach this core: the configured public URL (`public_url` in the
 * core's config, from GET /api/info), else the address the browser uses. A trailing slash is
 * dropped so agents can append `/api/...` to it.
 */
export function useCoreUrl(): CoreUrl {
  const [url, setUrl] = useState(() => coreUrl(window.location.origin, "browser"));
  useEffect(() => {
    let stopped = false;
    systemApi
      .info()
      .then((info) => {
        if (!stopped && info.public_url) setUrl(coreUrl(info.public_url.replace(/\/+$/, ""), "public_url"));
      })
      .catch(() => {
        // Keep the browser's origin: it is right whenever no public URL is configured.
      });
    return () => {
      stopped = true;
    };
  }, []);
  return url;
}

/** `localhost` (and its subdomains), 127.0.0.0/8, ::1 and the unspecified addresses. */
export function isLoopbackUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase();
  } catch {
    return false;
  }
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  if (/^127(\.\d{1,3}){3}$/.test(host) || host === "0.0.0.0") return true;
  return host === "::1" || host === "::" || host === "::ffff:127.0.0.1" || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(host);
}
