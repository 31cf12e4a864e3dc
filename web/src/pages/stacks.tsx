import { useState } from 'preact/hooks';
import { post } from '../lib/api';
import { useAction, useList, useTitle } from '../lib/hooks';
import { navigate } from '../lib/router';
import type { Credential, Stack, Template } from '../lib/types';
import { dateTime } from '../lib/format';
import { Badge, Empty, ErrorBox, Loading, PageHead, Section, Table } from '../components/ui';
import { VariableFields, setVariables, useTemplateVariables } from '../components/varfields';

export default function Stacks() {
  useTitle('Stacks');
  const stacks = useList<Stack>('/api/v1/stacks', 5000);
  return (
    <>
      <PageHead title="Stacks" />
      <Section title="Your stacks">
        {stacks.loading && <Loading />}
        <ErrorBox error={stacks.error} />
        {stacks.data && stacks.data.length === 0 && <Empty>No stacks yet: create one below from a template and a credential.</Empty>}
        {stacks.data && stacks.data.length > 0 && (
          <Table
            caption="Stacks"
            head={['Stack', 'Status', 'Machines', 'Provider', 'Updated']}
            items={stacks.data}
            row={(s) => (
              <tr key={s.id}>
                <td>
                  <a href={`/stacks/${encodeURIComponent(s.id)}`}>{s.title}</a>
                  <div class="muted small">{s.id}</div>
                </td>
                <td>
                  <Badge value={s.status} />
                  {s.reason && <div class="muted small">{s.reason}</div>}
                </td>
                <td>{(s.machines ?? []).length}</td>
                <td>{s.provider}</td>
                <td>{dateTime(s.updated_at)}</td>
              </tr>
            )}
          />
        )}
      </Section>
      <CreateStack />
    </>
  );
}

function CreateStack() {
  const templates = useList<Template>('/api/v1/templates');
  const creds = useList<Credential>('/api/v1/credentials');
  const [title, setTitle] = useState('');
  const [tplId, setTplId] = useState('');
  const [credId, setCredId] = useState('');
  const [vars, setVars] = useState<Record<string, string>>({});
  const tpl = templates.data?.find((t) => t.id === tplId);
  const usable = (creds.data ?? []).filter((c) => !tpl || c.provider === tpl.provider);
  const tvars = useTemplateVariables(tpl);
  const create = useAction(async () => {
    const s = await post<Stack>('/api/v1/stacks', { title: title.trim(), template_id: tplId, credential_id: credId || usable[0]?.id || '', variables: setVariables(vars) });
    navigate(`/stacks/${encodeURIComponent(s.id)}`);
  });
  return (
    <Section title="Create a stack">
      {(templates.loading || creds.loading) && <Loading />}
      <ErrorBox error={templates.error || creds.error} />
      {templates.data && templates.data.length === 0 && (
        <Empty>
          You need a template first: <a href="/templates">add one</a>.
        </Empty>
      )}
      {templates.data && templates.data.length > 0 && (
        <form
          class="form"
          onSubmit={(e) => {
            e.preventDefault();
            void create.run();
          }}
        >
          <div class="field">
            <label for="stack-title">Title</label>
            <input id="stack-title" name="title" required value={title} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
          </div>
          <div class="field">
            <label for="stack-template">Template</label>
            <select
              id="stack-template"
              name="template"
              required
              value={tplId}
              onChange={(e) => {
                setTplId((e.target as HTMLSelectElement).value);
                setCredId('');
                setVars({});
              }}
            >
              <option value="">Choose a template</option>
              {templates.data.map((t) => (
                <option key={t.id} value={t.id}>
                  {t.title} ({t.provider}, {t.id})
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="stack-credential">Credential</label>
            <select id="stack-credential" name="credential" required value={credId || usable[0]?.id || ''} onChange={(e) => setCredId((e.target as HTMLSelectElement).value)}>
              {usable.length === 0 && <option value="">No {tpl ? tpl.provider + ' ' : ''}credential: add one on the Credentials page</option>}
              {usable.map((c) => (
                <option key={c.id} value={c.id}>
                  {c.title} ({c.provider}, {c.id})
                </option>
              ))}
            </select>
          </div>
          {tpl && <VariableFields prefix="stack" vars={tvars} values={vars} onChange={(k, v) => setVars({ ...vars, [k]: v })} />}
          <ErrorBox error={create.error} title="The stack was not created" />
          <button type="submit" class="primary" disabled={create.busy || !tplId || usable.length === 0}>
            {create.busy ? 'Creating…' : 'Create stack'}
          </button>
        </form>
      )}
    </Section>
  );
}
