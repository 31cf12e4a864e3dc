import { useMemo, useState } from 'preact/hooks';
import { del, post } from '../lib/api';
import { buildData, fieldModels, initialValues, type Values } from '../lib/forms';
import { useAction, useList, useTitle } from '../lib/hooks';
import type { Credential, JobRef, Provider } from '../lib/types';
import { dateTime } from '../lib/format';
import { Empty, ErrorBox, Loading, PageHead, Section, Table } from '../components/ui';
import { FieldInputs } from '../components/schemaform';
import { JobView } from '../components/jobview';

export default function Credentials() {
  useTitle('Credentials');
  const creds = useList<Credential>('/api/v1/credentials');
  const providers = useList<Provider>('/api/v1/providers');
  const [job, setJob] = useState('');
  const [note, setNote] = useState('');
  const act = useAction(async (what: 'verify' | 'bootstrap' | 'unbootstrap' | 'delete', c: Credential) => {
    setNote('');
    const base = `/api/v1/credentials/${encodeURIComponent(c.id)}`;
    switch (what) {
      case 'verify': {
        const r = await post<{ verified: boolean; message: string }>(`${base}/verify`);
        setNote(`${c.title}: ${r.verified ? 'verified' : 'not verified'}${r.message ? ' – ' + r.message : ''}`);
        break;
      }
      case 'bootstrap':
        setJob((await post<JobRef>(`${base}/bootstrap`)).job_id);
        break;
      case 'unbootstrap':
        setJob((await del<JobRef>(`${base}/bootstrap`)).job_id);
        break;
      case 'delete':
        if (!confirm(`Delete the credential ${c.title}?`)) return;
        await del(base);
        break;
    }
    creds.reload();
  });
  return (
    <>
      <PageHead title="Credentials" />
      <Section title="Your credentials">
        {creds.loading && <Loading />}
        <ErrorBox error={creds.error} />
        <ErrorBox error={act.error} title="Refused" />
        {note && (
          <p role="status" class="note">
            {note}
          </p>
        )}
        {job && <JobView key={job} jobId={job} onDone={() => creds.reload()} />}
        {creds.data && creds.data.length === 0 && <Empty>No credentials yet: add one below.</Empty>}
        {creds.data && creds.data.length > 0 && (
          <Table
            caption="Credentials"
            head={['Credential', 'Provider', 'Verified', 'Bootstrapped', 'Created', 'Actions']}
            items={creds.data}
            row={(c) => (
              <tr key={c.id} data-credential={c.id}>
                <td>
                  {c.title}
                  <div class="muted small">{c.id}</div>
                </td>
                <td>{c.provider}</td>
                <td>
                  {c.verified ? 'yes' : 'no'}
                  {c.verify_message && <div class="muted small">{c.verify_message}</div>}
                </td>
                <td>{c.bootstrapped ? 'yes' : 'no'}</td>
                <td>{dateTime(c.created_at)}</td>
                <td class="actions">
                  <button type="button" disabled={act.busy} onClick={() => void act.run('verify', c)} aria-label={`Verify ${c.title}`}>
                    Verify
                  </button>
                  <button
                    type="button"
                    disabled={act.busy}
                    onClick={() => void act.run(c.bootstrapped ? 'unbootstrap' : 'bootstrap', c)}
                    aria-label={`${c.bootstrapped ? 'Unbootstrap' : 'Bootstrap'} ${c.title}`}
                  >
                    {c.bootstrapped ? 'Unbootstrap' : 'Bootstrap'}
                  </button>
                  <button type="button" class="danger" disabled={act.busy} onClick={() => void act.run('delete', c)} aria-label={`Delete ${c.title}`}>
                    Delete
                  </button>
                </td>
              </tr>
            )}
          />
        )}
      </Section>
      {providers.data && <AddCredential providers={providers.data} onAdded={() => creds.reload()} />}
      <ErrorBox error={providers.error} />
    </>
  );
}

function AddCredential({ providers, onAdded }: { providers: Provider[]; onAdded: () => void }) {
  // The sandbox, the embedded default, comes first when there is one.
  const [name, setName] = useState(providers.find((x) => x.name === 'sandbox')?.name ?? providers[0]?.name ?? '');
  const p = providers.find((x) => x.name === name);
  const fields = useMemo(() => fieldModels(p?.credential), [p]);
  const [title, setTitle] = useState('');
  const [values, setValues] = useState<Values>(() => initialValues(p?.credential));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const add = useAction(async () => {
    const built = buildData(p?.credential, values);
    setErrors(built.errors);
    if (Object.keys(built.errors).length > 0) return;
    await post<Credential>('/api/v1/credentials', { provider: name, title: title.trim(), data: built.data });
    setTitle('');
    setValues(initialValues(p?.credential));
    onAdded();
  });
  return (
    <Section title="Add a credential">
      <form
        class="form"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          void add.run();
        }}
      >
        <div class="row">
          <div class="field">
            <label for="cred-provider">Provider</label>
            <select
              id="cred-provider"
              name="provider"
              value={name}
              onChange={(e) => {
                const n = (e.target as HTMLSelectElement).value;
                setName(n);
                setValues(initialValues(providers.find((x) => x.name === n)?.credential));
                setErrors({});
              }}
            >
              {providers.map((x) => (
                <option key={x.name} value={x.name}>
                  {x.name}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="cred-title">Title</label>
            <input id="cred-title" name="title" required value={title} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
          </div>
        </div>
        {fields.length === 0 ? (
          <p class="muted small">The {name} provider needs no fields.</p>
        ) : (
          <FieldInputs prefix="cred" fields={fields} values={values} errors={errors} onChange={(k, v) => setValues({ ...values, [k]: v })} />
        )}
        <ErrorBox error={add.error} title="The credential was refused" />
        <button type="submit" class="primary" disabled={add.busy}>
          {add.busy ? 'Adding…' : 'Add credential'}
        </button>
      </form>
    </Section>
  );
}
