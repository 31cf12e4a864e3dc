import { useMemo, useState } from 'preact/hooks';
import { post, qs } from '../lib/api';
import { breakdown, costSeries, type Resolution } from '../lib/chartdata';
import { bytes, dateTime, money } from '../lib/format';
import { useAction, useList, useResource, useTitle } from '../lib/hooks';
import { isAdmin, useUser } from '../lib/session';
import type { Report, Summary } from '../lib/types';
import { Empty, ErrorBox, Loading, PageHead, Section } from '../components/ui';
import { CostChart } from '../components/chart';

// ranges: how far back each resolution looks.
const ranges: Record<Resolution, { seconds: number; groupby: string; label: string }> = {
  minute: { seconds: 30 * 60, groupby: 'time', label: 'last 30 minutes, by minute' },
  hour: { seconds: 48 * 3600, groupby: 'time', label: 'last 48 hours, by hour' },
  day: { seconds: 30 * 86400, groupby: 'time-d', label: 'last 30 days, by day' },
};

const maxRows = 10000;

export default function Billing() {
  useTitle('Billing');
  const user = useUser();
  const [res, setRes] = useState<Resolution>('hour');
  const [tick, setTick] = useState(0);
  // The range ends now (rounded to the minute so polling reuses the URL).
  const end = useMemo(() => Math.ceil(Date.now() / 60000) * 60, [res, tick]);
  const begin = end - ranges[res].seconds;
  const beginISO = new Date(begin * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  const sum = useResource<Summary>(`/api/v1/rating/summary${qs({ begin: beginISO, groupby: ranges[res].groupby, limit: maxRows })}`, 30000);
  const series = useMemo(() => (sum.data ? costSeries(sum.data, res, begin, end) : null), [sum.data, res, begin, end]);
  const process = useAction(async () => {
    await post('/api/v1/rating/process');
    setTick((n) => n + 1);
  });
  return (
    <>
      <PageHead title="Billing">
        {isAdmin(user) && (
          <button type="button" disabled={process.busy} onClick={() => void process.run()}>
            {process.busy ? 'Rating…' : 'Rate closed periods now'}
          </button>
        )}
      </PageHead>
      <ErrorBox error={process.error} />
      <Section
        title="Cost over time"
        actions={
          <div role="group" aria-label="resolution" class="seg">
            {(Object.keys(ranges) as Resolution[]).map((r) => (
              <button key={r} type="button" aria-pressed={res === r} onClick={() => setRes(r)} title={ranges[r].label}>
                by {r}
              </button>
            ))}
          </div>
        }
      >
        <p class="muted small">{ranges[res].label}. Costs come from rated periods; a period is rated once it has closed.</p>
        {sum.loading && <Loading />}
        <ErrorBox error={sum.error} />
        {sum.data && sum.data.total > sum.data.results.length && (
          <p class="muted small">
            Showing the first {sum.data.results.length} of {sum.data.total} periods: choose a coarser resolution.
          </p>
        )}
        {series && (series.total === 0 && sum.data?.results.length === 0 ? <Empty>No rated usage in this range yet.</Empty> : <CostChart series={series} resolution={res} currency="USD" />)}
      </Section>
      <div class="grid">
        <Breakdown title="By stack" groupby="stack_id" begin={beginISO} link={(k) => `/stacks/${encodeURIComponent(k)}`} />
        <Breakdown title="By machine" groupby="machine_id" begin={beginISO} link={(k) => `/machines/${encodeURIComponent(k)}`} />
        <Breakdown title="By user" groupby="owner" begin={beginISO} />
      </div>
      <Reports />
    </>
  );
}

function Breakdown({ title, groupby, begin, link }: { title: string; groupby: string; begin: string; link?: (k: string) => string }) {
  const size = 10;
  const [offset, setOffset] = useState(0);
  const sum = useResource<Summary>(`/api/v1/rating/summary${qs({ begin, groupby, offset, limit: size })}`, 30000);
  const rows = sum.data ? breakdown(sum.data, groupby) : [];
  const total = sum.data?.total ?? 0;
  return (
    <Section title={title}>
      {sum.loading && <Loading />}
      <ErrorBox error={sum.error} />
      {sum.data && rows.length === 0 && <Empty>Nothing rated yet.</Empty>}
      {rows.length > 0 && (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Cost {title.toLowerCase()}</caption>
            <thead>
              <tr>
                <th scope="col">{groupby}</th>
                <th scope="col" class="num">
                  Hours
                </th>
                <th scope="col" class="num">
                  Cost
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.key}>
                  <td>{link && r.key !== '(none)' ? <a href={link(r.key)}>{r.key}</a> : r.key}</td>
                  <td class="num">{money(r.qty)}</td>
                  <td class="num">{money(r.cost)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {total > size && (
        <nav class="pager" aria-label={`${title} pages`}>
          <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - size))}>
            ‹ Previous
          </button>
          <span>
            {offset + 1}–{Math.min(total, offset + size)} of {total}
          </span>
          <button type="button" disabled={offset + size >= total} onClick={() => setOffset(offset + size)}>
            Next ›
          </button>
        </nav>
      )}
    </Section>
  );
}

function Reports() {
  const reports = useList<Report>('/api/v1/reports', 60000);
  return (
    <Section title="Reports">
      <p class="muted small">Monthly reports the writers keep: CSV (AWS detailed-billing style) and JSON.</p>
      {reports.loading && <Loading />}
      <ErrorBox error={reports.error} />
      {reports.data && reports.data.length === 0 && <Empty>No report written yet.</Empty>}
      {reports.data && reports.data.length > 0 && (
        <ul class="reports">
          {reports.data.map((r) => (
            <li key={r.name}>
              <a href={`/api/v1/reports/${encodeURIComponent(r.name)}`} download={r.name}>
                {r.name}
              </a>{' '}
              <span class="muted small">
                {r.format.toUpperCase()} · {r.month} · {bytes(r.size)} · {dateTime(r.modified_at)}
              </span>
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}
