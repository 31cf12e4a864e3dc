// session: who is signed in, shared by every page.
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { User } from './types';

export const SessionContext = createContext<User | null>(null);

export function useUser(): User {
  const u = useContext(SessionContext);
  if (!u) throw new Error('no signed-in user');
  return u;
}

export function isAdmin(u: User | null): boolean {
  return u?.role === 'admin';
}
