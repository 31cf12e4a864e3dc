import { useState } from 'preact/hooks';
import { ApiError, post } from '../lib/api';
import { useAction, useList, useResource, useTitle } from '../lib/hooks';
import type { Credential, PlanResult, Template } from '../lib/types';
import { money } from '../lib/format';
import { ErrorBox, Loading, PageHead, Section } from '../components/ui';
import { CodeView } from '../components/code';
import { VariableFields, setVariables, useTemplateVariables } from '../components/varfields';

export default function TemplatePage({ id }: { id: string }) {
  const tpl = useResource<Template>(`/api/v1/templates/${encodeURIComponent(id)}`);
  const creds = useList<Credential>('/api/v1/credentials');
  const [credId, setCredId] = useState('');
  const [vars, setVars] = useState<Record<string, string>>({});
  const [plan, setPlan] = useState<PlanResult | null>(null);
  useTitle(tpl.data?.title ?? id);
  const t = tpl.data;
  const tvars = useTemplateVariables(t);
  const usable = (creds.data ?? []).filter((c) => !t || c.provider === t.provider);
  const doPlan = useAction(async () => {
    setPlan(null);
    setPlan(await post<PlanResult>(`/api/v1/templates/${encodeURIComponent(id)}/plan`, { credential_id: credId || usable[0]?.id || '', variables: setVariables(vars) }));
  });
  if (tpl.loading) return <Loading />;
  if (!t) return <ErrorBox error={tpl.error} title={`Template ${id}`} />;
  const diags = doPlan.error instanceof ApiError ? (doPlan.error.diagnostics ?? []) : [];
  return (
    <>
      <PageHead title={t.title} />
      <p class="muted">
        <code>{t.id}</code> · {t.provider} · {t.format}
      </p>
      <Section title="Template">
        <CodeView text={t.content} diagnostics={diags} label={`Text of ${t.title}`} />
      </Section>
      <Section title="Plan">
        <form
          class="form"
          onSubmit={(e) => {
            e.preventDefault();
            void doPlan.run();
          }}
        >
          <div class="field">
            <label for="plan-credential">Credential</label>
            <select id="plan-credential" value={credId || usable[0]?.id || ''} onChange={(e) => setCredId((e.target as HTMLSelectElement).value)}>
              {usable.length === 0 && <option value="">No {t.provider} credential yet</option>}
              {usable.map((c) => (
                <option key={c.id} value={c.id}>
                  {c.title} ({c.id})
                </option>
              ))}
            </select>
          </div>
          <VariableFields prefix="plan" vars={tvars} values={vars} onChange={(k, v) => setVars({ ...vars, [k]: v })} />
          <ErrorBox error={doPlan.error} title="Plan failed" />
          <button type="submit" class="primary" disabled={doPlan.busy || usable.length === 0}>
            {doPlan.busy ? 'Planning… (Terraform runs)' : 'Plan'}
          </button>
        </form>
        {doPlan.busy && <Loading what="Terraform is planning" />}
        {plan && (
          <div class="plan">
            <p>
              Estimated cost: <strong>{money(plan.cost_estimate.hourly)}</strong> {plan.cost_estimate.currency} an hour, <strong>{money(plan.cost_estimate.monthly)}</strong> a month.
            </p>
            <div class="table-wrap">
              <table>
                <caption class="sr-only">Planned machines</caption>
                <thead>
                  <tr>
                    <th scope="col">Machine</th>
                    <th scope="col">Action</th>
                    <th scope="col">Type</th>
                    <th scope="col">Size</th>
                    <th scope="col">Region</th>
                    <th scope="col">Always on</th>
                  </tr>
                </thead>
                <tbody>
                  {plan.machines.map((m) => (
                    <tr key={m.label}>
                      <td>{m.label}</td>
                      <td>{m.action}</td>
                      <td>{m.type}</td>
                      <td>{m.size ?? '–'}</td>
                      <td>{m.region ?? '–'}</td>
                      <td>{m.always_on ? 'yes' : 'no'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </div>
        )}
      </Section>
    </>
  );
}
