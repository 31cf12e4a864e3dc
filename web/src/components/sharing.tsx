// Sharing is a machine's sharing dialog: who may use it (terminals) or
// control it (terminals, start, stop), granted and revoked by its owner or
// an admin (POST/GET/DELETE /api/v1/machines/{id}/shares). On a server
// without sharing it says so and offers nothing.
import { useState } from 'preact/hooks';
import { ApiError, del, post } from '../lib/api';
import { useAction, useList } from '../lib/hooks';
import { dateTime } from '../lib/format';
import { isAdmin, useUser } from '../lib/session';
import type { User } from '../lib/types';
import { Empty, ErrorBox, Loading } from './ui';

export interface Share {
  machine_id: string;
  user_id: string;
  owner_id: string;
  permission: 'use' | 'control' | string;
  created_by: string;
  created_at: string;
}

export function Sharing({ machineId }: { machineId: string }) {
  const me = useUser();
  const base = `/api/v1/machines/${encodeURIComponent(machineId)}/shares`;
  const shares = useList<Share>(base);
  // Admins pick from the users; members type the id they were given.
  const users = useList<User>(isAdmin(me) ? '/api/v1/users' : null);
  const [userId, setUserId] = useState('');
  const [perm, setPerm] = useState('use');
  const share = useAction(async () => {
    await post<Share>(base, { user_id: userId.trim(), permission: perm });
    setUserId('');
    shares.reload();
  });
  const revoke = useAction(async (u: string) => {
    await del(`${base}/${encodeURIComponent(u)}`);
    shares.reload();
  });
  if (shares.error instanceof ApiError && shares.error.status === 404 && shares.error.message.startsWith('no such endpoint')) {
    return <p class="muted small">This server does not share machines.</p>;
  }
  const name = (id: string) => users.data?.find((u) => u.id === id)?.name ?? id;
  const others = (users.data ?? []).filter((u) => u.id !== me.id);
  return (
    <div class="sharing">
      {shares.loading && <Loading />}
      <ErrorBox error={shares.error} />
      {shares.data && shares.data.length === 0 && <Empty>Shared with nobody.</Empty>}
      {shares.data && shares.data.length > 0 && (
        <ul>
          {shares.data.map((s) => (
            <li key={s.user_id}>
              <strong>{name(s.user_id)}</strong> may {s.permission === 'control' ? 'use, start and stop it' : 'open terminals'} <span class="muted small">(since {dateTime(s.created_at)})</span>{' '}
              <button type="button" class="link" disabled={revoke.busy} onClick={() => void revoke.run(s.user_id)} aria-label={`Revoke the share of ${name(s.user_id)}`}>
                revoke
              </button>
            </li>
          ))}
        </ul>
      )}
      <ErrorBox error={revoke.error} title="Not revoked" />
      <form
        class="form row"
        onSubmit={(e) => {
          e.preventDefault();
          void share.run();
        }}
      >
        <div class="field">
          <label for="share-user">User</label>
          {others.length > 0 ? (
            <select id="share-user" required value={userId} onChange={(e) => setUserId((e.target as HTMLSelectElement).value)}>
              <option value="">Choose a user</option>
              {others.map((u) => (
                <option key={u.id} value={u.id}>
                  {u.name} ({u.id})
                </option>
              ))}
            </select>
          ) : (
            <input id="share-user" required placeholder="usr-…" value={userId} onInput={(e) => setUserId((e.target as HTMLInputElement).value)} />
          )}
        </div>
        <div class="field">
          <label for="share-perm">Permission</label>
          <select id="share-perm" value={perm} onChange={(e) => setPerm((e.target as HTMLSelectElement).value)}>
            <option value="use">use: terminals</option>
            <option value="control">control: terminals, start and stop</option>
          </select>
        </div>
        <button type="submit" disabled={share.busy || !userId.trim()}>
          Share
        </button>
      </form>
      <ErrorBox error={share.error} title="Not shared" />
    </div>
  );
}
