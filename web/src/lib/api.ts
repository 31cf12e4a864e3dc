// api speaks Kloud's HTTP API from the browser: same origin, the session
// cookie (HttpOnly, so this code never sees it) for authentication, JSON
// both ways, the server's error message kept for the page to show.
import type { Diagnostic } from './types';

export class ApiError extends Error {
  readonly status: number;
  readonly field?: string;
  readonly diagnostics?: Diagnostic[];
  readonly state?: string;
  readonly allowed?: string[];
  readonly jobId?: string;

  constructor(status: number, body: Record<string, unknown>, fallback: string) {
    super(typeof body.error === 'string' && body.error ? body.error : fallback);
    this.name = 'ApiError';
    this.status = status;
    if (typeof body.field === 'string') this.field = body.field;
    if (Array.isArray(body.diagnostics)) this.diagnostics = body.diagnostics as Diagnostic[];
    if (typeof body.state === 'string') this.state = body.state;
    if (Array.isArray(body.allowed)) this.allowed = body.allowed as string[];
    if (typeof body.job_id === 'string') this.jobId = body.job_id;
  }
}

type Unauthorized = () => void;
let onUnauthorized: Unauthorized = () => {};

// whenUnauthorized sets what happens when the session has ended (a 401
// from anything but the sign-in itself): the app sends the user to /login.
export function whenUnauthorized(f: Unauthorized): void {
  onUnauthorized = f;
}

export async function api<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  return (await request<T>(method, path, body, signal)).data;
}

// request is api with the answer's headers (a list's Link to its next page).
async function request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<{ data: T; headers: Headers }> {
  const init: RequestInit = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  };
  if (signal) init.signal = signal;
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
  }
  let resp: Response;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, {}, `cannot reach the Kloud server (${String(e)})`);
  }
  if (resp.status === 204) return { data: undefined as T, headers: resp.headers };
  const text = await resp.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!resp.ok) {
    const obj = parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
    const err = new ApiError(resp.status, obj, text.trim() || `${method} ${path}: ${resp.status} ${resp.statusText}`);
    if (resp.status === 401 && path !== '/api/v1/sessions') onUnauthorized();
    throw err;
  }
  return { data: parsed as T, headers: resp.headers };
}

// maxListItems bounds what one list read gathers over its pages.
export const maxListItems = 50000;

// getAll reads a whole list: the first page, then every next page the
// server links to (Link: <…>; rel="next"), up to maxListItems items.
export async function getAll<T>(path: string, signal?: AbortSignal): Promise<T[]> {
  const out: T[] = [];
  const seen = new Set<string>();
  for (let next: string | null = path; next && !seen.has(next) && out.length < maxListItems;) {
    seen.add(next);
    const { data, headers } = await request<T[]>('GET', next, undefined, signal);
    if (!Array.isArray(data)) throw new ApiError(0, {}, `GET ${next}: the answer is not a list`);
    out.push(...data);
    next = nextPage(headers.get('Link'), typeof location === 'undefined' ? '' : location.origin);
  }
  return out;
}

// nextPage returns the same-origin path of a Link header's rel="next"
// target, or null.
export function nextPage(link: string | null, origin: string): string | null {
  if (!link) return null;
  for (const part of link.split(',')) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (!m || !/rel="?next"?/.test(m[2]!)) continue;
    try {
      const u = new URL(m[1]!, origin || 'http://localhost');
      if (origin && u.origin !== origin) return null;
      return u.pathname + u.search;
    } catch {
      return null;
    }
  }
  return null;
}

export const get = <T>(path: string, signal?: AbortSignal) => api<T>('GET', path, undefined, signal);
export const post = <T>(path: string, body?: unknown) => api<T>('POST', path, body ?? {});
export const put = <T>(path: string, body: unknown) => api<T>('PUT', path, body);
export const del = <T = void>(path: string) => api<T>('DELETE', path);

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

// qs builds a query string from the set values of params.
export function qs(params: Record<string, string | number | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  }
  const s = u.toString();
  return s ? '?' + s : '';
}
