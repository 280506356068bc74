// Says which core URL the agent commands carry and where it came from, and warns when it is a
// loopback address, which only an agent on the core's own host can reach.

import type { CoreUrl } from "./useCoreUrl";

export function CoreUrlNote({ coreUrl }: { coreUrl: CoreUrl }) {
  return (
    <>
      <p className="muted small" data-testid="core-url-note" data-source={coreUrl.source}>
        Agents reach the core at <code data-testid="core-url">{coreUrl.url}</code>{" "}
        {coreUrl.source === "public_url" ? "(the core's configured public URL)." : "(the address this browser uses)."}
      </p>
      {coreUrl.loopback && (
        <div className="callout callout-warning" role="alert" data-testid="core-url-warning">
          <strong>{coreUrl.url} is a loopback address:</strong> only an agent on the core's own host can reach it. For
          agents on other hosts, set the core's public URL (<code>public_url</code> in its config, or{" "}
          <code>CAPSTAN_PUBLIC_URL</code>) to an address they can reach, or open this UI at such an address, or change{" "}
          <code>CORE_URL</code> in the command.
        </div>
      )}
    </>
  );
}
