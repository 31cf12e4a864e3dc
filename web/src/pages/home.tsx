import { useList, useResource, useTitle } from '../lib/hooks';
import { useUser } from '../lib/session';
import type { Job, Machine, Stack } from '../lib/types';
import { Badge, ErrorBox, Loading, PageHead, Section } from '../components/ui';

export default function Home() {
  useTitle('Overview');
  const user = useUser();
  const stacks = useList<Stack>('/api/v1/stacks', 5000);
  const machines = useList<Machine>('/api/v1/machines?limit=1000', 5000);
  const jobs = useResource<Job[]>('/api/v1/jobs?status=queued,running&limit=20', 3000);
  const byState = new Map<string, number>();
  for (const m of machines.data ?? []) byState.set(m.state, (byState.get(m.state) ?? 0) + 1);
  return (
    <>
      <PageHead title={`Hello, ${user.name}`} />
      <div class="grid">
        <Section title="Stacks">
          {stacks.loading ? <Loading /> : <ErrorBox error={stacks.error} />}
          {stacks.data && (
            <p>
              <a href="/stacks" class="big">
                {stacks.data.length}
              </a>{' '}
              stack{stacks.data.length === 1 ? '' : 's'}
            </p>
          )}
        </Section>
        <Section title="Machines">
          {machines.loading ? <Loading /> : <ErrorBox error={machines.error} />}
          {machines.data && (
            <>
              <p>
                <a href="/machines" class="big">
                  {machines.data.length}
                </a>{' '}
                machine{machines.data.length === 1 ? '' : 's'}
              </p>
              <ul class="inline">
                {[...byState].map(([s, n]) => (
                  <li key={s}>
                    <Badge value={s} /> {n}
                  </li>
                ))}
              </ul>
            </>
          )}
        </Section>
        <Section title="Jobs running now">
          {jobs.loading ? <Loading /> : <ErrorBox error={jobs.error} />}
          {jobs.data && jobs.data.length === 0 && <p class="muted">Nothing is running.</p>}
          {jobs.data && jobs.data.length > 0 && (
            <ul>
              {jobs.data.map((j) => (
                <li key={j.id}>
                  {j.kind} <Badge value={j.status} /> {j.percentage} % {j.stack_id && <a href={`/stacks/${j.stack_id}`}>{j.stack_id}</a>}
                  {j.machine_id && <a href={`/machines/${j.machine_id}`}>{j.machine_id}</a>}
                </li>
              ))}
            </ul>
          )}
        </Section>
      </div>
    </>
  );
}
