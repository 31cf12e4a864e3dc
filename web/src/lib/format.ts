// format: how times, durations and money read on the page.

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '–';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '–';
  const d = Math.max(0, (now - t) / 1000);
  return d < 5 ? 'just now' : `${duration(d)} ago`;
}

export function dateTime(iso: string | undefined): string {
  if (!iso) return '–';
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? '–' : t.toLocaleString();
}

// money shows a decimal string with at most 4 decimals, without float
// rounding of the server's exact value beyond the cut.
export function money(s: string | undefined | null): string {
  if (!s) return '0';
  const [int, frac = ''] = s.split('.');
  const f = frac.slice(0, 4).replace(/0+$/, '');
  return f ? `${int}.${f}` : (int ?? '0');
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
