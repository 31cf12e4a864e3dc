// Login trades a token for the session cookie. /login#token=TOKEN signs in
// at once: the fragment never reaches the server (nor its logs), and it is
// wiped from the address bar and the history before anything else runs.
import { useEffect, useState } from 'preact/hooks';
import { get, post } from '../lib/api';
import type { Session, User } from '../lib/types';
import { ErrorBox, Loading } from '../components/ui';
import { useTitle } from '../lib/hooks';

export function tokenFromHash(hash: string): string {
  const h = hash.startsWith('#') ? hash.slice(1) : hash;
  return new URLSearchParams(h).get('token')?.trim() ?? '';
}

export function Login({ onSignedIn }: { onSignedIn: (u: User) => void }) {
  useTitle('Sign in');
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);

  const signIn = async (t: string) => {
    setBusy(true);
    setError(undefined);
    try {
      await post('/api/v1/sessions', { token: t });
      const s = await get<Session>('/api/v1/sessions');
      onSignedIn(s.user);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };

  useEffect(() => {
    const t = tokenFromHash(location.hash);
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    if (t) void signIn(t);
  }, []);

  return (
    <main class="login">
      <form
        class="card"
        onSubmit={(e) => {
          e.preventDefault();
          if (token.trim()) void signIn(token.trim());
        }}
      >
        <h1 id="page-title" tabIndex={-1}>
          Sign in to Kloud
        </h1>
        <p class="muted">
          Use your API token (an admin's is in <code>&lt;data-dir&gt;/admin.token</code>; <code>kloud user create</code> makes one for a member).
        </p>
        <div class="field">
          <label for="token">Token</label>
          <input id="token" name="token" type="password" autoComplete="current-password" required value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
        </div>
        <ErrorBox error={error} title="Sign-in failed" />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {busy && <Loading what="Signing in" />}
      </form>
    </main>
  );
}
