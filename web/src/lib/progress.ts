// progress folds a job's events (as they stream in over SSE) into what the
// progress view shows: the percentage, the phase, the Terraform log (its
// last maxLines lines), and how the job ended.
import type { Job, JobEvent } from './types';

export const maxLines = 2000;

export interface Progress {
  percentage: number;
  phase: string;
  lines: string[];
  // dropped counts the log lines cut to keep the last maxLines.
  dropped: number;
  error: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  lastSeq: number;
}

export function initialProgress(job?: Job): Progress {
  return {
    percentage: job?.percentage ?? 0,
    phase: '',
    lines: [],
    dropped: 0,
    error: job?.error ?? '',
    status: (job?.status as Progress['status']) ?? 'queued',
    lastSeq: 0,
  };
}

// applyEvents returns p with events applied; events it has already seen
// (a reconnected stream sends them again) are skipped.
export function applyEvents(p: Progress, events: JobEvent[]): Progress {
  let next: Progress | null = null;
  for (const e of events) {
    if (e.seq <= (next ?? p).lastSeq) continue;
    if (!next) next = { ...p, lines: p.lines.slice() };
    next.lastSeq = e.seq;
    if (next.status === 'queued') next.status = 'running';
    // The done event says 100 % however the job ended: it counts only
    // for a job that succeeded.
    if (e.kind !== 'done' && e.percentage > next.percentage) next.percentage = Math.min(100, e.percentage);
    switch (e.kind) {
      case 'phase':
        next.phase = e.message;
        break;
      case 'output':
        for (const line of e.message.split('\n')) next.lines.push(line);
        break;
      case 'error':
        next.error = e.message;
        next.status = 'failed';
        break;
      case 'done':
        // The message is the job's final status.
        if (e.message === 'failed') next.status = 'failed';
        if (next.status !== 'failed') {
          next.status = 'succeeded';
          next.percentage = 100;
        }
        break;
    }
  }
  if (!next) return p;
  if (next.lines.length > maxLines) {
    next.dropped += next.lines.length - maxLines;
    next.lines = next.lines.slice(next.lines.length - maxLines);
  }
  return next;
}

// withJob reconciles p with the job as the server last answered it: the
// job's own status wins once it has ended.
export function withJob(p: Progress, job: Job): Progress {
  const status = job.status as Progress['status'];
  if (status !== 'succeeded' && status !== 'failed') {
    return job.percentage > p.percentage ? { ...p, percentage: job.percentage } : p;
  }
  return {
    ...p,
    status,
    percentage: status === 'succeeded' ? 100 : Math.max(p.percentage, job.percentage),
    error: status === 'failed' ? job.error || p.error : '',
  };
}

export function isDone(p: Progress): boolean {
  return p.status === 'succeeded' || p.status === 'failed';
}
