// chartdata turns a rating summary grouped by period ("time") or by day
// ("time-d") into the cost per bucket the billing chart draws: x in Unix
// seconds (uPlot's), y the cost, every bucket of the range present (an
// empty one is 0, so gaps show as gaps and not as a straight line).
import type { Summary } from './types';

export type Resolution = 'minute' | 'hour' | 'day';

export interface Series {
  xs: number[];
  ys: number[];
  total: number;
}

export const bucketSeconds: Record<Resolution, number> = { minute: 60, hour: 3600, day: 86400 };

export function bucketOf(t: number, res: Resolution): number {
  const size = bucketSeconds[res];
  return Math.floor(t / size) * size;
}

// costSeries sums the summary's rows into buckets of res from begin to
// end (Unix seconds). Costs are decimal strings; the sums are floats, fine
// for a chart (the tables show the server's exact decimals).
export function costSeries(sum: Summary, res: Resolution, begin: number, end: number): Series {
  const iBegin = sum.columns.indexOf('begin');
  const iRate = sum.columns.indexOf('rate');
  const size = bucketSeconds[res];
  const first = bucketOf(begin, res);
  const n = Math.max(1, Math.ceil((end - first) / size));
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < n; i++) {
    xs.push(first + i * size);
    ys.push(0);
  }
  let total = 0;
  if (iBegin < 0 || iRate < 0) return { xs, ys, total };
  for (const row of sum.results) {
    const at = Date.parse(row[iBegin] ?? '');
    const cost = Number(row[iRate] ?? '0');
    if (!Number.isFinite(at) || !Number.isFinite(cost)) continue;
    const i = Math.floor((bucketOf(at / 1000, res) - first) / size);
    if (i < 0 || i >= n) continue;
    ys[i] = round(ys[i]! + cost);
    total = round(total + cost);
  }
  return { xs, ys, total };
}

// xRange is the chart's time range for buckets from first to last: a
// bucket's bar starts at its x and spans the bucket, so the range ends one
// bucket after the last, or the current bucket is cut off at the edge.
export function xRange(first: number, last: number, res: Resolution): [number, number] {
  return [first, last + bucketSeconds[res]];
}

function round(x: number): number {
  return Math.round(x * 1e9) / 1e9;
}

export interface BreakdownRow {
  key: string;
  qty: string;
  cost: string;
}

// breakdown reads a summary grouped by one key into rows.
export function breakdown(sum: Summary, key: string): BreakdownRow[] {
  const iKey = sum.columns.indexOf(key);
  const iQty = sum.columns.indexOf('qty');
  const iRate = sum.columns.indexOf('rate');
  return sum.results.map((r) => ({
    key: (iKey >= 0 ? r[iKey] : null) ?? '(none)',
    qty: (iQty >= 0 ? r[iQty] : null) ?? '0',
    cost: (iRate >= 0 ? r[iRate] : null) ?? '0',
  }));
}
