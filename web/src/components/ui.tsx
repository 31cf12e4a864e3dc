import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError, errorMessage } from '../lib/api';

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p class="muted" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" /> {what}…
    </p>
  );
}

// ErrorBox shows the server's own message (and its diagnostics, state and
// allowed methods when it gave them).
export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const e = error instanceof ApiError ? error : undefined;
  return (
    <div class="error" role="alert">
      {title && <strong>{title}: </strong>}
      <span class="error-message">{errorMessage(error)}</span>
      {e?.field && <span class="muted"> (field: {e.field})</span>}
      {e?.allowed && e.allowed.length > 0 && <div class="muted">allowed now: {e.allowed.join(', ')}</div>}
      {e?.diagnostics && e.diagnostics.length > 0 && (
        <ul>
          {e.diagnostics.map((d, i) => (
            <li key={i}>
              {d.file}:{d.line}:{d.column}: {d.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}

const stateClass: Record<string, string> = {
  Running: 'ok',
  initialized: 'ok',
  succeeded: 'ok',
  connected: 'ok',
  Stopped: 'off',
  destroyed: 'off',
  Terminated: 'off',
  NotInitialized: 'off',
  not_initialized: 'off',
  never: 'off',
  failed: 'bad',
  Unknown: 'bad',
  silent: 'warn',
};

export function Badge({ value }: { value: string }) {
  const cls = stateClass[value] ?? 'busy';
  return <span class={`badge badge-${cls}`}>{value}</span>;
}

export function ProgressBar({ value, label }: { value: number; label: string }) {
  const v = Math.max(0, Math.min(100, Math.round(value)));
  return (
    <div class="progress" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={v} aria-label={label}>
      <div class="progress-fill" style={{ width: `${v}%` }} />
      <span class="progress-text">{v} %</span>
    </div>
  );
}

// Pager pages a long list on the client: lists of thousands of machines
// render one page at a time.
export function usePage<T>(items: T[], size = 50) {
  const [page, setPage] = useState(0);
  const pages = Math.max(1, Math.ceil(items.length / size));
  const p = Math.min(page, pages - 1);
  return { rows: items.slice(p * size, p * size + size), page: p, pages, setPage, total: items.length, size };
}

export function Pager({ page, pages, setPage, total, size }: { page: number; pages: number; setPage: (n: number) => void; total: number; size: number }) {
  if (pages <= 1) return null;
  return (
    <nav class="pager" aria-label="pages">
      <button type="button" onClick={() => setPage(0)} disabled={page === 0}>
        « First
      </button>
      <button type="button" onClick={() => setPage(page - 1)} disabled={page === 0}>
        ‹ Previous
      </button>
      <span aria-live="polite">
        {page * size + 1}–{Math.min(total, (page + 1) * size)} of {total}
      </span>
      <button type="button" onClick={() => setPage(page + 1)} disabled={page >= pages - 1}>
        Next ›
      </button>
      <button type="button" onClick={() => setPage(pages - 1)} disabled={page >= pages - 1}>
        Last »
      </button>
    </nav>
  );
}

export function Section({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="card">
      <div class="card-head">
        <h2>{title}</h2>
        {actions && <div class="actions">{actions}</div>}
      </div>
      {children}
    </section>
  );
}

export function PageHead({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="page-head">
      <h1 tabIndex={-1} id="page-title">
        {title}
      </h1>
      {children && <div class="actions">{children}</div>}
    </div>
  );
}

// Table is a list as a table, paged when long: a caption for screen
// readers, the column heads, and one row per item.
export function Table<T>({
  caption,
  head,
  items,
  row,
  pageSize = 50,
}: {
  caption: string;
  head: (string | { label: string; num?: boolean })[];
  items: T[];
  row: (item: T) => ComponentChildren;
  pageSize?: number;
}) {
  const pg = usePage(items, pageSize);
  return (
    <>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">{caption}</caption>
          <thead>
            <tr>
              {head.map((h) => {
                const c = typeof h === 'string' ? { label: h } : h;
                return (
                  <th key={c.label} scope="col" class={c.num ? 'num' : undefined}>
                    {c.label}
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>{pg.rows.map(row)}</tbody>
        </table>
      </div>
      <Pager {...pg} />
    </>
  );
}
