// hooks: loading what a page shows, and keeping it fresh.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { get, getAll } from './api';

export interface Resource<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

// useResource GETs path (nothing when null), again on reload(), and every
// pollMs while the page is visible. A failed refresh keeps the last data
// and shows the error.
export function useResource<T>(path: string | null, pollMs = 0, all = false): Resource<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState<boolean>(path !== null);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  const lastPath = useRef<string | null>(null);

  useEffect(() => {
    if (path === null) {
      setLoading(false);
      return;
    }
    if (lastPath.current !== path) {
      lastPath.current = path;
      setData(undefined);
      setLoading(true);
    }
    const ctl = new AbortController();
    (all ? (getAll<unknown>(path, ctl.signal) as Promise<T>) : get<T>(path, ctl.signal)).then(
      (d) => {
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (e: unknown) => {
        if (e instanceof DOMException && e.name === 'AbortError') return;
        setError(e);
        setLoading(false);
      },
    );
    return () => ctl.abort();
  }, [path, tick, all]);

  useEffect(() => {
    if (!pollMs || path === null) return;
    const id = window.setInterval(() => {
      if (document.visibilityState === 'visible') reload();
    }, pollMs);
    return () => window.clearInterval(id);
  }, [pollMs, path, reload]);

  return { data, error, loading, reload };
}

// useList is useResource for a list endpoint: every page of it.
export function useList<T>(path: string | null, pollMs = 0): Resource<T[]> {
  return useResource<T[]>(path, pollMs, true);
}

// useAction runs an API call for a button: busy while it runs, its error
// kept for the page to show.
export function useAction<A extends unknown[], R>(f: (...args: A) => Promise<R>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const run = useCallback(
    async (...args: A): Promise<R | undefined> => {
      setBusy(true);
      setError(undefined);
      try {
        return await f(...args);
      } catch (e) {
        setError(e);
        return undefined;
      } finally {
        setBusy(false);
      }
    },
    [f],
  );
  return { run, busy, error, clear: () => setError(undefined) };
}

export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Kloud` : 'Kloud';
  }, [title]);
}
