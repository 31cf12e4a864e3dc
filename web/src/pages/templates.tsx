import { useState } from 'preact/hooks';
import { ApiError, post } from '../lib/api';
import { useAction, useList, useTitle } from '../lib/hooks';
import { navigate } from '../lib/router';
import type { Provider, Template } from '../lib/types';
import { dateTime } from '../lib/format';
import { Empty, ErrorBox, Loading, PageHead, Section, Table } from '../components/ui';
import { CodeView } from '../components/code';

export default function Templates() {
  useTitle('Templates');
  const tpls = useList<Template>('/api/v1/templates');
  return (
    <>
      <PageHead title="Templates" />
      <Section title="Your templates">
        {tpls.loading && <Loading />}
        <ErrorBox error={tpls.error} />
        {tpls.data && tpls.data.length === 0 && <Empty>No templates yet: add one below.</Empty>}
        {tpls.data && tpls.data.length > 0 && (
          <Table
            caption="Templates"
            head={['Template', 'Provider', 'Format', 'Created']}
            items={tpls.data}
            row={(t) => (
              <tr key={t.id}>
                <td>
                  <a href={`/templates/${encodeURIComponent(t.id)}`}>{t.title}</a>
                  <div class="muted small">{t.id}</div>
                </td>
                <td>{t.provider}</td>
                <td>{t.format}</td>
                <td>{dateTime(t.created_at)}</td>
              </tr>
            )}
          />
        )}
      </Section>
      <CreateTemplate />
    </>
  );
}

const example = `resource "sandbox_machine" "web" {
  name = "web"
  size = "small"
}
`;

function CreateTemplate() {
  const providers = useList<Provider>('/api/v1/providers');
  const [title, setTitle] = useState('');
  const [provider, setProvider] = useState('sandbox');
  const [format, setFormat] = useState('hcl');
  const [content, setContent] = useState(example);
  const create = useAction(async () => {
    const t = await post<Template>('/api/v1/templates', { title: title.trim(), provider, format, content });
    navigate(`/templates/${encodeURIComponent(t.id)}`);
  });
  const diags = create.error instanceof ApiError ? (create.error.diagnostics ?? []) : [];
  return (
    <Section title="Add a template">
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <div class="field">
          <label for="tpl-title">Title</label>
          <input id="tpl-title" name="title" required value={title} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
        </div>
        <div class="row">
          <div class="field">
            <label for="tpl-provider">Provider</label>
            <select id="tpl-provider" name="provider" value={provider} onChange={(e) => setProvider((e.target as HTMLSelectElement).value)}>
              {(providers.data ?? [{ name: 'sandbox' } as Provider]).map((p) => (
                <option key={p.name} value={p.name}>
                  {p.name}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="tpl-format">Format</label>
            <select id="tpl-format" name="format" value={format} onChange={(e) => setFormat((e.target as HTMLSelectElement).value)}>
              <option value="hcl">HCL (.tf)</option>
              <option value="json">JSON (.tf.json)</option>
            </select>
          </div>
        </div>
        <div class="field">
          <label for="tpl-content">Terraform</label>
          <textarea id="tpl-content" name="content" class="mono" rows={14} spellcheck={false} required value={content} onInput={(e) => setContent((e.target as HTMLTextAreaElement).value)} />
        </div>
        <ErrorBox error={create.error} title="The template was refused" />
        {diags.length > 0 && <CodeView text={content} diagnostics={diags} label="Template with its diagnostics" />}
        <button type="submit" class="primary" disabled={create.busy}>
          {create.busy ? 'Checking…' : 'Add template'}
        </button>
      </form>
    </Section>
  );
}
