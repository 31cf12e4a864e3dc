import { useState } from 'preact/hooks';
import { del, post, qs } from '../lib/api';
import { navigate } from '../lib/router';
import { useAction, useResource, useTitle } from '../lib/hooks';
import type { Job, JobRef, Stack } from '../lib/types';
import { dateTime } from '../lib/format';
import { Badge, Empty, ErrorBox, Loading, PageHead, Section } from '../components/ui';
import { JobView } from '../components/jobview';
import { MachinesTable } from '../components/machines';

export default function StackPage({ id }: { id: string }) {
  const stack = useResource<Stack>(`/api/v1/stacks/${encodeURIComponent(id)}`, 3000);
  const active = useResource<Job[]>(`/api/v1/jobs${qs({ stack_id: id, status: 'queued,running', limit: 1 })}`, 3000);
  const past = useResource<Job[]>(`/api/v1/jobs${qs({ stack_id: id, status: 'succeeded,failed', limit: 20 })}`);
  const [started, setStarted] = useState<string>('');
  const [openJob, setOpenJob] = useState<string>('');
  useTitle(stack.data?.title ?? id);

  const act = useAction(async (what: 'apply' | 'destroy') => {
    const ref = await post<JobRef>(`/api/v1/stacks/${encodeURIComponent(id)}/${what}`);
    setStarted(ref.job_id);
    active.reload();
  });
  const remove = useAction(async () => {
    await del(`/api/v1/stacks/${encodeURIComponent(id)}`);
    navigate('/stacks');
  });
  const current = started || active.data?.[0]?.id || '';
  const s = stack.data;
  const busy = s ? s.status === 'building' || s.status === 'destroying' : true;

  if (stack.loading) return <Loading />;
  if (!s) return <ErrorBox error={stack.error} title={`Stack ${id}`} />;
  return (
    <>
      <PageHead title={s.title}>
        <button type="button" class="primary" disabled={act.busy || busy} onClick={() => void act.run('apply')}>
          Apply
        </button>
        <button
          type="button"
          class="danger"
          disabled={act.busy || busy || s.status === 'destroyed'}
          onClick={() => {
            if (confirm(`Destroy every machine of ${s.title}?`)) void act.run('destroy');
          }}
        >
          Destroy
        </button>
        <button
          type="button"
          class="danger"
          disabled={remove.busy || busy}
          onClick={() => {
            if (confirm(`Delete the stack ${s.title}? Its machines must be destroyed first.`)) void remove.run();
          }}
        >
          Delete
        </button>
      </PageHead>
      <ErrorBox error={act.error || remove.error} title="Refused" />
      <ErrorBox error={stack.error} title="Refreshing failed" />
      <dl class="facts">
        <dt>Status</dt>
        <dd>
          <Badge value={s.status} /> {s.reason && <span class="muted">{s.reason}</span>}
        </dd>
        <dt>Id</dt>
        <dd>
          <code>{s.id}</code>
        </dd>
        <dt>Template</dt>
        <dd>
          <a href={`/templates/${encodeURIComponent(s.template_id)}`}>{s.template_id}</a>
        </dd>
        <dt>Credential</dt>
        <dd>{s.credential_id}</dd>
        <dt>Provider</dt>
        <dd>{s.provider}</dd>
        {s.variables && Object.keys(s.variables).length > 0 && (
          <>
            <dt>Variables</dt>
            <dd>
              {Object.entries(s.variables).map(([k, v]) => (
                <div key={k}>
                  <code>{k}</code> = {v}
                </div>
              ))}
            </dd>
          </>
        )}
      </dl>
      {current && (
        <Section title="Job now">
          <JobView
            key={current}
            jobId={current}
            openLog
            onDone={() => {
              stack.reload();
              past.reload();
              active.reload();
            }}
          />
        </Section>
      )}
      <Section title="Machines">
        <MachinesTable machines={s.machines ?? []} caption={`Machines of ${s.title}`} showStack={false} />
      </Section>
      <Section title="Past jobs">
        {past.loading && <Loading />}
        <ErrorBox error={past.error} />
        {past.data && past.data.length === 0 && <Empty>No job has ended yet.</Empty>}
        {past.data && past.data.length > 0 && (
          <ul class="jobs">
            {past.data.map((j) => (
              <li key={j.id}>
                <button type="button" class="link" aria-expanded={openJob === j.id} onClick={() => setOpenJob(openJob === j.id ? '' : j.id)}>
                  {j.kind} <code>{j.id}</code>
                </button>{' '}
                <Badge value={j.status} /> <span class="muted">{dateTime(j.finished_at ?? j.created_at)}</span>
                {j.error && <div class="error-message small">{j.error}</div>}
                {openJob === j.id && <JobView jobId={j.id} openLog />}
              </li>
            ))}
          </ul>
        )}
      </Section>
    </>
  );
}
