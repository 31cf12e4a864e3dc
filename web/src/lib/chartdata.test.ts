import { describe, expect, it } from 'vitest';
import { breakdown, costSeries, xRange } from './chartdata';
import type { Summary } from './types';

const t = (iso: string) => Date.parse(iso) / 1000;

describe('costSeries', () => {
  const sum: Summary = {
    total: 4,
    columns: ['begin', 'end', 'qty', 'rate', 'time'],
    results: [
      ['2026-12-03T10:00:00Z', '2026-12-03T10:00:10Z', '0.0027', '0.1389', '2026-12-03T10:00:00Z'],
      ['2026-12-03T10:00:10Z', '2026-12-03T10:00:20Z', '0.0027', '0.1111', '2026-12-03T10:00:10Z'],
      ['2026-12-03T10:02:30Z', '2026-12-03T10:02:40Z', '0.0027', '0.5', '2026-12-03T10:02:30Z'],
      ['2026-12-03T09:00:00Z', '2026-12-03T09:00:10Z', '1', '7', '2026-12-03T09:00:00Z'], // before the range
    ],
  };
  it('sums periods into buckets and keeps empty ones', () => {
    const s = costSeries(sum, 'minute', t('2026-12-03T10:00:00Z'), t('2026-12-03T10:04:00Z'));
    expect(s.xs).toEqual([0, 1, 2, 3].map((i) => t('2026-12-03T10:00:00Z') + 60 * i));
    expect(s.ys).toEqual([0.25, 0, 0.5, 0]);
    expect(s.total).toBe(0.75);
  });
  it('buckets by hour and by day', () => {
    expect(costSeries(sum, 'hour', t('2026-12-03T09:00:00Z'), t('2026-12-03T11:00:00Z')).ys).toEqual([7, 0.75]);
    expect(costSeries(sum, 'day', t('2026-12-02T00:00:00Z'), t('2026-12-04T00:00:00Z')).ys).toEqual([0, 7.75]);
  });
  it('draws nothing from an empty or odd summary', () => {
    const empty = costSeries({ total: 0, columns: ['begin', 'end', 'qty', 'rate'], results: [] }, 'hour', 0, 7200);
    expect(empty).toEqual({ xs: [0, 3600], ys: [0, 0], total: 0 });
    const odd = costSeries({ total: 1, columns: ['qty'], results: [['1']] }, 'hour', 0, 3600);
    expect(odd.total).toBe(0);
    const bad = costSeries(
      {
        total: 1,
        columns: ['begin', 'rate'],
        results: [
          ['not a time', 'x'],
          [null, null],
        ],
      },
      'hour',
      0,
      3600,
    );
    expect(bad.ys).toEqual([0]);
  });
});

describe('breakdown', () => {
  it('reads a summary grouped by one key', () => {
    const s: Summary = {
      total: 2,
      columns: ['begin', 'end', 'qty', 'rate', 'stack_id'],
      results: [
        ['a', 'b', '1.5', '0.075', 'stk-1'],
        ['a', 'b', '2', '0.2', null],
      ],
    };
    expect(breakdown(s, 'stack_id')).toEqual([
      { key: 'stk-1', qty: '1.5', cost: '0.075' },
      { key: '(none)', qty: '2', cost: '0.2' },
    ]);
  });
});

describe('xRange', () => {
  it('ends one bucket after the last, so its bar is drawn whole', () => {
    expect(xRange(0, 7200, 'hour')).toEqual([0, 10800]);
    expect(xRange(60, 120, 'minute')).toEqual([60, 180]);
    expect(xRange(0, 0, 'day')).toEqual([0, 86400]);
  });
});
