import { useMemo, useState } from 'preact/hooks';
import { useList, useTitle } from '../lib/hooks';
import type { Machine } from '../lib/types';
import { ErrorBox, Loading, PageHead, Section } from '../components/ui';
import { MachinesTable } from '../components/machines';

export default function Machines() {
  useTitle('Machines');
  // States change on screen without a reload: the list is asked for again
  // every few seconds while the page is visible.
  const ms = useList<Machine>('/api/v1/machines?limit=1000', 3000);
  const [filter, setFilter] = useState('');
  const [state, setState] = useState('');
  const states = useMemo(() => [...new Set((ms.data ?? []).map((m) => m.state))].sort(), [ms.data]);
  const shown = useMemo(() => {
    const f = filter.trim().toLowerCase();
    return (ms.data ?? []).filter((m) => (!state || m.state === state) && (!f || m.label.toLowerCase().includes(f) || m.id.includes(f) || m.stack_id.includes(f)));
  }, [ms.data, filter, state]);
  return (
    <>
      <PageHead title="Machines" />
      <Section title="All machines">
        <div class="row filters">
          <div class="field">
            <label for="m-filter">Filter</label>
            <input id="m-filter" type="search" placeholder="label, machine or stack id" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
          </div>
          <div class="field">
            <label for="m-state">State</label>
            <select id="m-state" value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value)}>
              <option value="">any</option>
              {states.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </div>
        </div>
        {ms.loading && <Loading />}
        <ErrorBox error={ms.error} />
        {ms.data && <MachinesTable machines={shown} caption="Machines" />}
      </Section>
    </>
  );
}
