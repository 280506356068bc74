// Sign-in form. On success the session store flips to signed-in and App redirects to /nodes;
// on failure the core's own message is shown (wrong credentials, rate limited, bad input).

import { useRef, useState, type FormEvent } from "react";
import { ApiError, toApiError } from "../../api/error";
import { login } from "../../api/session";
import { Logo } from "../../app/Shell";

export function LoginPage({ notice }: { notice: string | null }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const passwordRef = useRef<HTMLInputElement>(null);

  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(username.trim(), password);
    } catch (err) {
      const apiError = toApiError(err);
      setError(apiError);
      setBusy(false);
      if (apiError.code === "invalid_credentials") passwordRef.current?.select();
    }
  };

  const fieldInvalid = (name: string) => (error?.field === name ? true : undefined);

  return (
    <div className="login-page">
      <form className="login-card" onSubmit={(event) => void submit(event)} noValidate>
        <div className="login-brand">
          <Logo />
          <span>Capstan</span>
        </div>
        <h1>Sign in</h1>
        <p className="muted">Manage your fleet of Docker hosts.</p>

        {notice !== null && error === null && <p className="notice">{notice}</p>}

        <label className="field">
          <span className="field-label">Username</span>
          <input
            name="username"
            data-testid="login-username"
            autoComplete="username"
            autoCapitalize="none"
            spellCheck={false}
            autoFocus
            required
            value={username}
            aria-invalid={fieldInvalid("username")}
            onChange={(event) => setUsername(event.target.value)}
          />
        </label>
        <label className="field">
          <span className="field-label">Password</span>
          <input
            ref={passwordRef}
            name="password"
            type="password"
            data-testid="login-password"
            autoComplete="current-password"
            required
            value={password}
            aria-invalid={fieldInvalid("password")}
            onChange={(event) => setPassword(event.target.value)}
          />
        </label>

        {error !== null && (
          <p className="form-error" role="alert" data-testid="login-error" data-code={error.code}>
            {error.message}
          </p>
        )}

        <button
          type="submit"
          className="btn btn-primary btn-block"
          data-testid="login-submit"
          disabled={busy || username.trim() === "" || password === ""}
        >
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
