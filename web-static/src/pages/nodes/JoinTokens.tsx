// Join tokens let a host register itself (`JOIN_TOKEN=… capstan-agent run`) instead of being added
// by name first. The section stays collapsed until opened, and hides itself on a core without
// join tokens.

import { useCallback, useState, type FormEvent } from "react";
import { joinTokensApi } from "../../api/endpoints";
import { toApiError } from "../../api/error";
import type { JoinToken, JoinTokenWithSecret } from "../../api/types";
import { CopyButton } from "../../components/CopyButton";
import { joinCommand } from "./agentCommand";
import { CoreUrlNote } from "./CoreUrlNote";
import { formatTimestamp } from "./lastSeen";
import type { CoreUrl } from "./useCoreUrl";

const TTL_CHOICES: { label: string; secs: number }[] = [
  { label: "1 hour", secs: 3600 },
  { label: "24 hours", secs: 86400 },
  { label: "7 days", secs: 7 * 86400 },
];

export function JoinTokens({ coreUrl }: { coreUrl: CoreUrl }) {
  const [tokens, setTokens] = useState<JoinToken[] | null>(null);
  const [unsupported, setUnsupported] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [created, setCreated] = useState<JoinTokenWithSecret | null>(null);
  const [ttl, setTtl] = useState(3600);
  const [maxUses, setMaxUses] = useState("1");
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      setTokens(await joinTokensApi.list());
      setError(null);
    } catch (err) {
      const apiError = toApiError(err);
      if (apiError.status === 404 || apiError.status === 405) setUnsupported(true);
      else setError(apiError.message);
    }
  }, []);

  if (unsupported) return null;

  const create = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const uses = Number(maxUses);
    if (!Number.isInteger(uses) || uses < 1) {
      setError("Max uses must be a whole number of at least 1.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      setCreated(await joinTokensApi.create({ ttl_secs: ttl, max_uses: uses }));
      await load();
    } catch (err) {
      setError(toApiError(err).message);
    } finally {
      setBusy(false);
    }
  };

  const revoke = async (id: string) => {
    try {
      await joinTokensApi.remove(id);
      if (created?.id === id) setCreated(null);
      await load();
    } catch (err) {
      setError(toApiError(err).message);
    }
  };

  return (
    <details
      className="panel"
      onToggle={(event) => {
        if (event.currentTarget.open) void load();
      }}
    >
      <summary>
        <span className="panel-title">Join tokens</span>
        <span className="muted small">Let hosts register themselves with a short-lived token</span>
      </summary>
      <div className="panel-body">
        <form className="inline-form" onSubmit={(event) => void create(event)}>
          <label className="field field-inline">
            <span className="field-label">Valid for</span>
            <select value={ttl} onChange={(event) => setTtl(Number(event.target.value))}>
              {TTL_CHOICES.map((choice) => (
                <option key={choice.secs} value={choice.secs}>
                  {choice.label}
                </option>
              ))}
            </select>
          </label>
          <label className="field field-inline">
            <span className="field-label">Max uses</span>
            <input
              type="number"
              min={1}
              step={1}
              inputMode="numeric"
              required
              value={maxUses}
              onChange={(event) => setMaxUses(event.target.value)}
            />
          </label>
          <button type="submit" className="btn btn-secondary" disabled={busy}>
            {busy ? "Creating…" : "Create join token"}
          </button>
        </form>

        {error !== null && (
          <p className="form-error" role="alert">
            {error}
          </p>
        )}

        {created !== null && (
          <div className="created-token">
            <div className="callout callout-warning" role="note">
              <strong>The token is shown only once.</strong> Run this on each host that should join:
            </div>
            <CoreUrlNote coreUrl={coreUrl} />
            <div className="command">
              <pre>
                <code data-testid="join-command">{joinCommand(coreUrl.url, created.token)}</code>
              </pre>
              <CopyButton text={joinCommand(coreUrl.url, created.token)} what="join command" />
            </div>
          </div>
        )}

        {tokens !== null && tokens.length > 0 && (
          <ul className="token-list">
            {tokens.map((token) => (
              <li key={token.id}>
                <code title={token.id}>{token.id.slice(0, 8)}</code>
                <span>
                  used {token.uses} of {token.max_uses}
                </span>
                <span className="muted">expires {formatTimestamp(token.expires_at)}</span>
                <button type="button" className="btn btn-danger-ghost btn-small" onClick={() => void revoke(token.id)}>
                  Revoke
                </button>
              </li>
            ))}
          </ul>
        )}
        {tokens !== null && tokens.length === 0 && created === null && <p className="muted small">No active join tokens.</p>}
      </div>
    </details>
  );
}
