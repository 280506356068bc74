import { useEffect, useState } from "react";
import { systemApi } from "../../api/endpoints";

/**
 * The URL agents should use to reach this core: the configured public URL, else the address the
 * browser uses. A trailing slash is dropped so agents can append `/api/...` to it.
 */
export function useCoreUrl(): string {
  const [url, setUrl] = useState(window.location.origin);
  useEffect(() => {
    let stopped = false;
    systemApi
      .info()
      .then((info) => {
        if (!stopped && info.public_url) setUrl(info.public_url.replace(/\/+$/, ""));
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
