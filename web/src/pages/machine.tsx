import { Fragment, type ComponentType } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { post, qs } from '../lib/api';
import { useAction, useResource, useTitle } from '../lib/hooks';
import type { Job, JobRef, Machine } from '../lib/types';
import { ago, duration } from '../lib/format';
import { Badge, ErrorBox, Loading, PageHead, Section } from '../components/ui';
import { JobView } from '../components/jobview';
import { Sharing } from '../components/sharing';

type Tab = 'overview' | 'terminal';

export default function MachinePage({ id }: { id: string }) {
  const m = useResource<Machine>(`/api/v1/machines/${encodeURIComponent(id)}`, 2000);
  const active = useResource<Job[]>(`/api/v1/jobs${qs({ machine_id: id, status: 'queued,running', limit: 1 })}`, 3000);
  const [started, setStarted] = useState('');
  const [tab, setTab] = useState<Tab>(location.hash === '#terminal' ? 'terminal' : 'overview');
  useTitle(m.data?.label ?? id);
  const act = useAction(async (what: 'start' | 'stop') => {
    const ref = await post<JobRef>(`/api/v1/machines/${encodeURIComponent(id)}/${what}`);
    setStarted(ref.job_id);
    m.reload();
  });
  const select = (t: Tab) => {
    setTab(t);
    history.replaceState(null, '', t === 'terminal' ? '#terminal' : location.pathname);
  };
  if (m.loading) return <Loading />;
  const mc = m.data;
  if (!mc) return <ErrorBox error={m.error} title={`Machine ${id}`} />;
  const current = started || active.data?.[0]?.id || '';
  const meta = mc.metadata ?? {};
  return (
    <>
      <PageHead title={mc.label || mc.id}>
        <button type="button" class="primary" disabled={act.busy || mc.state !== 'Stopped'} onClick={() => void act.run('start')}>
          Start
        </button>
        <button type="button" disabled={act.busy || mc.state !== 'Running'} onClick={() => void act.run('stop')}>
          Stop
        </button>
      </PageHead>
      <p>
        State: <Badge value={mc.state} />{' '}
        <span data-machine-state={mc.state} class="sr-only">
          {mc.state}
        </span>
        {mc.reason && <span class="muted"> {mc.reason}</span>}
      </p>
      <ErrorBox error={act.error} title="Refused" />
      <ErrorBox error={m.error} title="Refreshing failed" />
      {current && <JobView key={current} jobId={current} onDone={() => m.reload()} />}
      <div role="tablist" aria-label="machine" class="tabs">
        <TabButton id="overview" tab={tab} select={select}>
          Overview
        </TabButton>
        <TabButton id="terminal" tab={tab} select={select}>
          Terminal
        </TabButton>
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} class="card">
        {tab === 'overview' ? (
          <dl class="facts">
            <dt>Id</dt>
            <dd>
              <code>{mc.id}</code>
            </dd>
            <dt>Stack</dt>
            <dd>
              <a href={`/stacks/${encodeURIComponent(mc.stack_id)}`}>{mc.stack_id}</a>
            </dd>
            <dt>Provider</dt>
            <dd>{mc.provider}</dd>
            <dt>Uptime</dt>
            <dd>{duration(mc.uptime_seconds)}</dd>
            <dt>Always on</dt>
            <dd>{mc.always_on ? 'yes: the idle checker never stops it' : 'no'}</dd>
            <dt>Agent</dt>
            <dd>
              {mc.agent ? (
                <>
                  <Badge value={mc.agent.status} /> last seen {ago(mc.agent.last_seen_at)} {mc.agent.version && <span class="muted">({mc.agent.version})</span>}
                </>
              ) : (
                '–'
              )}
            </dd>
            {mc.last_activity_at && (
              <>
                <dt>Last activity</dt>
                <dd>{ago(mc.last_activity_at)}</dd>
              </>
            )}
            {mc.shared && (
              <>
                <dt>Shared with you</dt>
                <dd>
                  by {mc.owner_id}: {mc.permission === 'control' ? 'you may use, start and stop it' : 'you may open terminals'}
                </dd>
              </>
            )}
            {Object.entries(meta).map(([k, v]) => (
              <Fragment key={k}>
                <dt>{k}</dt>
                <dd>{typeof v === 'string' ? v : JSON.stringify(v)}</dd>
              </Fragment>
            ))}
          </dl>
        ) : mc.state === 'Running' ? (
          <LazyTerminal machineId={mc.id} />
        ) : (
          <p>The terminal opens on a Running machine; this one is {mc.state}.</p>
        )}
      </div>
      {!mc.shared && (
        <Section title="Sharing">
          <Sharing machineId={mc.id} />
        </Section>
      )}
    </>
  );
}

function TabButton({ id, tab, select, children }: { id: Tab; tab: Tab; select: (t: Tab) => void; children: string }) {
  return (
    <button
      type="button"
      role="tab"
      id={`tab-${id}`}
      aria-selected={tab === id}
      aria-controls={`panel-${id}`}
      tabIndex={tab === id ? 0 : -1}
      onClick={() => select(id)}
      onKeyDown={(e) => {
        if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
          const next: Tab = id === 'overview' ? 'terminal' : 'overview';
          select(next);
          document.getElementById(`tab-${next}`)?.focus();
        }
      }}
    >
      {children}
    </button>
  );
}

// The terminal (xterm.js, ~100 KB gzipped) loads only when its tab opens.
function LazyTerminal({ machineId }: { machineId: string }) {
  const [T, setT] = useState<ComponentType<{ machineId: string }> | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => {
    import('../components/terminal').then((mod) => setT(() => mod.default), setError);
  }, []);
  if (error) return <ErrorBox error={error} />;
  if (!T) return <Loading what="Loading the terminal" />;
  return <T machineId={machineId} />;
}
