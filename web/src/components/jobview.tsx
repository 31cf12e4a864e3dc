// JobView is a job's live progress: its events arrive over SSE
// (GET /api/v1/jobs/{id}/events?follow=1), the bar and the Terraform log
// move as they come, and a failed job shows its error in red above them.
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, errorMessage, post } from '../lib/api';
import { applyEvents, initialProgress, isDone, withJob, type Progress } from '../lib/progress';
import type { Job, JobEvent } from '../lib/types';
import { Badge, ProgressBar } from './ui';

const kinds = ['phase', 'output', 'progress', 'error', 'done'];

export function JobView({ jobId, onDone, openLog = false }: { jobId: string; onDone?: (job: Job) => void; openLog?: boolean }) {
  const [job, setJob] = useState<Job | undefined>(undefined);
  const [p, setP] = useState<Progress>(() => initialProgress());
  const [streamError, setStreamError] = useState('');
  const doneRef = useRef(onDone);
  doneRef.current = onDone;
  const logRef = useRef<HTMLPreElement>(null);

  useEffect(() => {
    let closed = false;
    let es: EventSource | undefined;
    setP(initialProgress());
    setJob(undefined);
    setStreamError('');
    // check asks for the job: once it has ended, the stream closes and
    // onDone runs; before, a dropped stream reconnects by itself (events
    // sent again are skipped by their seq).
    const check = async () => {
      try {
        const j = await get<Job>(`/api/v1/jobs/${encodeURIComponent(jobId)}`);
        if (closed) return;
        setJob(j);
        setP((prev) => withJob(prev, j));
        if (j.status === 'succeeded' || j.status === 'failed') {
          es?.close();
          doneRef.current?.(j);
        } else if (es && es.readyState === EventSource.CLOSED) {
          setStreamError('the live event stream was refused; reload the page to see progress');
        }
      } catch (e) {
        if (!closed) setStreamError(errorMessage(e));
      }
    };
    get<Job>(`/api/v1/jobs/${encodeURIComponent(jobId)}`).then(
      (j) => {
        if (closed) return;
        setJob(j);
        setP((prev) => withJob(prev, j));
      },
      (e: unknown) => !closed && setStreamError(errorMessage(e)),
    );
    es = new EventSource(`/api/v1/jobs/${encodeURIComponent(jobId)}/events?follow=1`);
    const onEvent = (m: MessageEvent<string>) => {
      let e: JobEvent;
      try {
        e = JSON.parse(m.data) as JobEvent;
      } catch {
        return;
      }
      setP((prev) => applyEvents(prev, [e]));
      if (e.kind === 'done') void check();
    };
    for (const k of kinds) es.addEventListener(k, onEvent as EventListener);
    es.onmessage = onEvent;
    // The server ends the stream once the job has ended: the browser would
    // reconnect and get every event again; ask the job instead.
    es.onerror = () => {
      if (!closed) void check();
    };
    return () => {
      closed = true;
      es?.close();
    };
  }, [jobId]);

  useEffect(() => {
    const el = logRef.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 80) el.scrollTop = el.scrollHeight;
  }, [p.lines.length]);

  const status = job && isDone(withJob(p, job)) ? job.status : p.status;
  const [cancelError, setCancelError] = useState('');
  const cancel = async () => {
    setCancelError('');
    try {
      await post(`/api/v1/jobs/${encodeURIComponent(jobId)}/cancel`);
    } catch (e) {
      setCancelError(errorMessage(e));
    }
  };
  return (
    <div class="job" data-job={jobId} data-status={status}>
      <div class="job-head">
        <span>
          {job ? job.kind : 'job'} <code>{jobId}</code>
        </span>
        <span class="actions">
          <Badge value={status} />
          {(status === 'queued' || status === 'running') && (
            <button type="button" class="link" onClick={() => void cancel()} aria-label={`Cancel ${job?.kind ?? 'job'} ${jobId}`}>
              Cancel
            </button>
          )}
        </span>
      </div>
      {cancelError && <div class="error">{cancelError}</div>}
      <ProgressBar value={p.percentage} label={`${job?.kind ?? 'job'} progress`} />
      {p.phase && <p class="muted job-phase">{p.phase}</p>}
      {(p.error || (status === 'failed' && job?.error)) && (
        <div class="error" role="alert">
          <strong>{job?.kind ?? 'job'} failed: </strong>
          <span class="error-message">{p.error || job?.error}</span>
        </div>
      )}
      {streamError && <div class="error">{streamError}</div>}
      <details open={openLog}>
        <summary>Terraform log ({p.lines.length + p.dropped} lines)</summary>
        <pre class="log" ref={logRef} tabIndex={0} aria-label="Terraform log">
          {p.dropped > 0 && `… ${p.dropped} earlier lines not shown\n`}
          {p.lines.join('\n')}
        </pre>
      </details>
    </div>
  );
}
