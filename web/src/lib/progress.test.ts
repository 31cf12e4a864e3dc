import { describe, expect, it } from 'vitest';
import { applyEvents, initialProgress, isDone, maxLines, withJob } from './progress';
import type { Job, JobEvent } from './types';

let seq = 0;
const ev = (kind: string, message = '', percentage = 0): JobEvent => ({ seq: ++seq, at: '2026-12-03T10:00:00Z', kind, message, percentage });
const job = (status: string, percentage: number, error = ''): Job => ({ id: 'j-1', kind: 'apply', status, percentage, error, created_at: '' });

describe('progress', () => {
  it('follows an apply to its end', () => {
    seq = 0;
    let p = initialProgress();
    const evs = [ev('phase', 'terraform init', 10), ev('output', 'Initializing...\nDone', 10), ev('progress', '', 63), ev('output', 'Apply complete!', 90), ev('done', 'succeeded', 100)];
    const seen: number[] = [];
    for (const e of evs) {
      p = applyEvents(p, [e]);
      seen.push(p.percentage);
    }
    expect(seen).toEqual([10, 10, 63, 90, 100]);
    expect(p.phase).toBe('terraform init');
    expect(p.lines).toEqual(['Initializing...', 'Done', 'Apply complete!']);
    expect(p.status).toBe('succeeded');
    expect(isDone(p)).toBe(true);
  });
  it('shows a failure with its error, not 100 %', () => {
    seq = 0;
    const p = applyEvents(initialProgress(), [ev('phase', 'apply', 40), ev('error', 'terraform apply: boom', 40), ev('done', 'failed', 100)]);
    expect(p.status).toBe('failed');
    expect(p.error).toBe('terraform apply: boom');
    expect(p.percentage).toBe(40);
  });
  it('skips events a reconnected stream sends again', () => {
    seq = 0;
    const a = ev('output', 'one', 5);
    const b = ev('output', 'two', 6);
    let p = applyEvents(initialProgress(), [a, b]);
    const same = applyEvents(p, [a, b]);
    expect(same).toBe(p);
    p = applyEvents(p, [a, b, ev('output', 'three', 7)]);
    expect(p.lines).toEqual(['one', 'two', 'three']);
  });
  it('keeps the last lines of a long log', () => {
    seq = 0;
    const many = Array.from({ length: maxLines + 10 }, (_, i) => ev('output', `line ${i}`));
    const p = applyEvents(initialProgress(), many);
    expect(p.lines.length).toBe(maxLines);
    expect(p.dropped).toBe(10);
    expect(p.lines[0]).toBe('line 10');
  });
  it('lets the job as the server answers it win once ended', () => {
    const p = initialProgress(job('running', 30));
    expect(withJob(p, job('running', 50)).percentage).toBe(50);
    const f = withJob(p, job('failed', 30, 'cancelled by admin'));
    expect([f.status, f.error, f.percentage]).toEqual(['failed', 'cancelled by admin', 30]);
    expect(withJob(p, job('succeeded', 100)).percentage).toBe(100);
  });
});
