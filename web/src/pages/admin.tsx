import { useState } from 'preact/hooks';
import { del, post, put } from '../lib/api';
import { useAction, useList, useTitle } from '../lib/hooks';
import type { HashmapField, HashmapGroup, HashmapMapping, HashmapService, HashmapThreshold, Job, Quote, RatingModule, User } from '../lib/types';
import { dateTime, money } from '../lib/format';
import { Badge, Empty, ErrorBox, Loading, PageHead, Section, Table } from '../components/ui';

const hm = '/api/v1/rating/modules/hashmap';

export default function Admin() {
  useTitle('Admin');
  return (
    <>
      <PageHead title="Admin" />
      <RunningJobs />
      <Users />
      <Modules />
      <Hashmap />
      <QuoteForm />
    </>
  );
}

function RunningJobs() {
  const jobs = useList<Job>('/api/v1/jobs?status=queued,running&limit=1000', 3000);
  const cancel = useAction(async (id: string) => {
    await post(`/api/v1/jobs/${encodeURIComponent(id)}/cancel`);
    jobs.reload();
  });
  return (
    <Section title="Running and queued jobs">
      {jobs.loading && <Loading />}
      <ErrorBox error={jobs.error || cancel.error} />
      {jobs.data && jobs.data.length === 0 && <Empty>No job is running or queued.</Empty>}
      {jobs.data && jobs.data.length > 0 && (
        <Table
          caption="Running and queued jobs"
          head={['Job', 'Status', 'Progress', 'Target', 'Queued', 'Actions']}
          items={jobs.data}
          row={(j) => (
            <tr key={j.id}>
              <td>
                {j.kind} <code>{j.id}</code>
              </td>
              <td>
                <Badge value={j.status} />
              </td>
              <td>{j.percentage} %</td>
              <td>
                {j.stack_id && <a href={`/stacks/${j.stack_id}`}>{j.stack_id}</a>}
                {j.machine_id && <a href={`/machines/${j.machine_id}`}>{j.machine_id}</a>}
                {j.credential_id}
              </td>
              <td>{dateTime(j.created_at)}</td>
              <td>
                <button type="button" class="danger" disabled={cancel.busy} onClick={() => void cancel.run(j.id)} aria-label={`Cancel ${j.id}`}>
                  Cancel
                </button>
              </td>
            </tr>
          )}
        />
      )}
    </Section>
  );
}

function Users() {
  const users = useList<User>('/api/v1/users');
  const [name, setName] = useState('');
  const [role, setRole] = useState('member');
  const [made, setMade] = useState<User | null>(null);
  const create = useAction(async () => {
    setMade(await post<User>('/api/v1/users', { name: name.trim(), role }));
    setName('');
    users.reload();
  });
  return (
    <Section title="Users">
      {users.loading && <Loading />}
      <ErrorBox error={users.error} />
      {users.data && (
        <Table
          caption="Users"
          head={['Name', 'Role', 'Id', 'Created']}
          items={users.data}
          row={(u) => (
            <tr key={u.id}>
              <td>{u.name}</td>
              <td>{u.role}</td>
              <td>
                <code>{u.id}</code>
              </td>
              <td>{dateTime(u.created_at)}</td>
            </tr>
          )}
        />
      )}
      <form
        class="form row"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <div class="field">
          <label for="user-name">Name</label>
          <input id="user-name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field">
          <label for="user-role">Role</label>
          <select id="user-role" value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value)}>
            <option value="member">member</option>
            <option value="admin">admin</option>
          </select>
        </div>
        <button type="submit" class="primary" disabled={create.busy}>
          Create user
        </button>
      </form>
      <ErrorBox error={create.error} title="The user was not created" />
      {made?.token && (
        <div class="note" role="status">
          <p>
            <strong>{made.name}</strong>'s token, shown only now: <code class="secret">{made.token}</code>
          </p>
          <p class="small">
            Sign-in link: <code>{`${location.origin}/login#token=${made.token}`}</code>
          </p>
        </div>
      )}
    </Section>
  );
}

function Modules() {
  const mods = useList<RatingModule>('/api/v1/rating/modules');
  const save = useAction(async (m: RatingModule, change: Partial<Pick<RatingModule, 'enabled' | 'priority'>>) => {
    await put(`/api/v1/rating/modules/${encodeURIComponent(m.module_id)}`, change);
    mods.reload();
  });
  return (
    <Section title="Rating modules">
      {mods.loading && <Loading />}
      <ErrorBox error={mods.error || save.error} />
      {mods.data && (
        <Table
          caption="Rating modules"
          head={['Module', 'Enabled', 'Priority']}
          items={mods.data}
          row={(m) => (
            <tr key={m.module_id}>
              <td>
                <strong>{m.module_id}</strong>
                <div class="muted small">{m.description}</div>
              </td>
              <td>
                <input
                  type="checkbox"
                  aria-label={`${m.module_id} enabled`}
                  checked={m.enabled}
                  disabled={save.busy}
                  onChange={(e) => void save.run(m, { enabled: (e.target as HTMLInputElement).checked })}
                />
              </td>
              <td>
                <input
                  type="number"
                  class="narrow"
                  aria-label={`${m.module_id} priority`}
                  value={m.priority}
                  onChange={(e) => {
                    const n = Number.parseInt((e.target as HTMLInputElement).value, 10);
                    if (Number.isFinite(n)) void save.run(m, { priority: n });
                  }}
                />
              </td>
            </tr>
          )}
        />
      )}
    </Section>
  );
}

// Hashmap edits CloudKitty's hashmap rules: services, their fields, groups,
// mappings and thresholds.
function Hashmap() {
  const services = useList<HashmapService>(`${hm}/services`);
  const fields = useList<HashmapField>(`${hm}/fields`);
  const groups = useList<HashmapGroup>(`${hm}/groups`);
  const mappings = useList<HashmapMapping>(`${hm}/mappings`);
  const thresholds = useList<HashmapThreshold>(`${hm}/thresholds`);
  const reloadAll = () => {
    services.reload();
    fields.reload();
    groups.reload();
    mappings.reload();
    thresholds.reload();
  };
  const [fieldSvc, setFieldSvc] = useState('');
  const [fieldName, setFieldName] = useState('');
  const [m, setM] = useState({ target: '', value: '', type: 'flat', cost: '', group_id: '' });
  const [th, setTh] = useState({ target: '', level: '', type: 'rate', cost: '', group_id: '' });
  const act = useAction(async (f: () => Promise<unknown>) => {
    await f();
    reloadAll();
  });
  const svcOf = (id?: string) => services.data?.find((s) => s.service_id === id)?.name ?? id;
  const fieldOf = (id?: string) => {
    const f = fields.data?.find((x) => x.field_id === id);
    return f ? `${svcOf(f.service_id)}.${f.name}` : id;
  };
  const targetBody = (t: string) => (t.startsWith('f:') ? { field_id: t.slice(2) } : { service_id: t.slice(2) });
  const targets = [
    ...(services.data ?? []).map((s) => ({ v: `s:${s.service_id}`, label: `service ${s.name}` })),
    ...(fields.data ?? []).map((f) => ({ v: `f:${f.field_id}`, label: `field ${svcOf(f.service_id)}.${f.name}` })),
  ];
  const loading = services.loading || fields.loading || mappings.loading || thresholds.loading || groups.loading;
  return (
    <Section title="Hashmap rules">
      {loading && <Loading />}
      <ErrorBox error={services.error || fields.error || groups.error || mappings.error || thresholds.error} />
      <ErrorBox error={act.error} title="Refused" />
      <div class="grid">
        <div>
          <h3>Services and fields</h3>
          <ul>
            {(services.data ?? []).map((s) => (
              <li key={s.service_id}>
                <strong>{s.name}</strong>{' '}
                <button type="button" class="link" aria-label={`Delete service ${s.name}`} onClick={() => void act.run(() => del(`${hm}/services/${s.service_id}`))}>
                  delete
                </button>
                <ul>
                  {(fields.data ?? [])
                    .filter((f) => f.service_id === s.service_id)
                    .map((f) => (
                      <li key={f.field_id}>
                        {f.name}{' '}
                        <button type="button" class="link" aria-label={`Delete field ${f.name}`} onClick={() => void act.run(() => del(`${hm}/fields/${f.field_id}`))}>
                          delete
                        </button>
                      </li>
                    ))}
                </ul>
              </li>
            ))}
          </ul>
          <NameForm id="hm-svc" label="New service" placeholder="instance" onAdd={(name) => act.run(() => post(`${hm}/services`, { name }))} />
          <form
            class="form row"
            onSubmit={(e) => {
              e.preventDefault();
              void act.run(() => post(`${hm}/fields`, { service_id: fieldSvc || services.data?.[0]?.service_id, name: fieldName.trim() })).then(() => setFieldName(''));
            }}
          >
            <div class="field">
              <label for="hm-field-svc">Service</label>
              <select id="hm-field-svc" value={fieldSvc || services.data?.[0]?.service_id || ''} onChange={(e) => setFieldSvc((e.target as HTMLSelectElement).value)}>
                {(services.data ?? []).map((s) => (
                  <option key={s.service_id} value={s.service_id}>
                    {s.name}
                  </option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="hm-field">New field</label>
              <input id="hm-field" required placeholder="size" value={fieldName} onInput={(e) => setFieldName((e.target as HTMLInputElement).value)} />
            </div>
            <button type="submit" disabled={!services.data?.length}>
              Add
            </button>
          </form>
          <h3>Groups</h3>
          <ul class="inline">
            {(groups.data ?? []).map((g) => (
              <li key={g.group_id}>
                {g.name}{' '}
                <button type="button" class="link" aria-label={`Delete group ${g.name}`} onClick={() => void act.run(() => del(`${hm}/groups/${g.group_id}`))}>
                  delete
                </button>
              </li>
            ))}
          </ul>
          <NameForm id="hm-group" label="New group" onAdd={(name) => act.run(() => post(`${hm}/groups`, { name }))} />
        </div>
        <div>
          <h3>Mappings</h3>
          {mappings.data && mappings.data.length === 0 && <p class="muted">No mappings.</p>}
          <ul>
            {(mappings.data ?? []).map((x) => (
              <li key={x.mapping_id}>
                {x.field_id ? `${fieldOf(x.field_id)} = ${x.value}` : `service ${svcOf(x.service_id)}`}: {x.type}{' '}
                <input
                  class="narrow"
                  aria-label={`cost of mapping ${x.mapping_id}`}
                  defaultValue={x.cost}
                  onChange={(e) => {
                    const { mapping_id: _id, ...rest } = x;
                    void act.run(() => put(`${hm}/mappings/${x.mapping_id}`, { ...rest, cost: (e.target as HTMLInputElement).value }));
                  }}
                />{' '}
                <button type="button" class="link" aria-label={`Delete mapping ${x.mapping_id}`} onClick={() => void act.run(() => del(`${hm}/mappings/${x.mapping_id}`))}>
                  delete
                </button>
              </li>
            ))}
          </ul>
          <form
            class="form"
            onSubmit={(e) => {
              e.preventDefault();
              const body: Record<string, unknown> = { ...targetBody(m.target || targets[0]?.v || ''), type: m.type, cost: m.cost.trim() };
              if (m.value) body.value = m.value;
              if (m.group_id) body.group_id = m.group_id;
              void act.run(() => post(`${hm}/mappings`, body));
            }}
          >
            <RuleTarget id="hm-map-target" targets={targets} value={m.target || targets[0]?.v || ''} onChange={(v) => setM({ ...m, target: v })} />
            <div class="row">
              <div class="field">
                <label for="hm-map-value">Field value</label>
                <input id="hm-map-value" placeholder="small" value={m.value} onInput={(e) => setM({ ...m, value: (e.target as HTMLInputElement).value })} />
              </div>
              <TypeCost prefix="hm-map" type={m.type} cost={m.cost} onChange={(type, cost) => setM({ ...m, type, cost })} />
              <GroupSelect id="hm-map-group" groups={groups.data ?? []} value={m.group_id} onChange={(g) => setM({ ...m, group_id: g })} />
            </div>
            <button type="submit" disabled={targets.length === 0}>
              Add mapping
            </button>
          </form>
          <h3>Thresholds</h3>
          {thresholds.data && thresholds.data.length === 0 && <p class="muted">No thresholds.</p>}
          <ul>
            {(thresholds.data ?? []).map((x) => (
              <li key={x.threshold_id}>
                {x.field_id ? fieldOf(x.field_id) : `service ${svcOf(x.service_id)}`} ≥ {x.level}: {x.type} {x.cost}{' '}
                <button type="button" class="link" aria-label={`Delete threshold ${x.threshold_id}`} onClick={() => void act.run(() => del(`${hm}/thresholds/${x.threshold_id}`))}>
                  delete
                </button>
              </li>
            ))}
          </ul>
          <form
            class="form"
            onSubmit={(e) => {
              e.preventDefault();
              const body: Record<string, unknown> = { ...targetBody(th.target || targets[0]?.v || ''), level: th.level.trim(), type: th.type, cost: th.cost.trim() };
              if (th.group_id) body.group_id = th.group_id;
              void act.run(() => post(`${hm}/thresholds`, body));
            }}
          >
            <RuleTarget id="hm-th-target" targets={targets} value={th.target || targets[0]?.v || ''} onChange={(v) => setTh({ ...th, target: v })} />
            <div class="row">
              <div class="field">
                <label for="hm-th-level">Level</label>
                <input id="hm-th-level" required inputMode="decimal" value={th.level} onInput={(e) => setTh({ ...th, level: (e.target as HTMLInputElement).value })} />
              </div>
              <TypeCost prefix="hm-th" type={th.type} cost={th.cost} onChange={(type, cost) => setTh({ ...th, type, cost })} />
              <GroupSelect id="hm-th-group" groups={groups.data ?? []} value={th.group_id} onChange={(g) => setTh({ ...th, group_id: g })} />
            </div>
            <button type="submit" disabled={targets.length === 0}>
              Add threshold
            </button>
          </form>
        </div>
      </div>
    </Section>
  );
}

// NameForm adds a rule that is only a name (a service, a group).
function NameForm({ id, label, placeholder, onAdd }: { id: string; label: string; placeholder?: string; onAdd: (name: string) => Promise<unknown> }) {
  const [name, setName] = useState('');
  return (
    <form
      class="form row"
      onSubmit={(e) => {
        e.preventDefault();
        void onAdd(name.trim()).then(() => setName(''));
      }}
    >
      <div class="field">
        <label for={id}>{label}</label>
        <input id={id} required placeholder={placeholder} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      </div>
      <button type="submit">Add</button>
    </form>
  );
}

function RuleTarget({ id, targets, value, onChange }: { id: string; targets: { v: string; label: string }[]; value: string; onChange: (v: string) => void }) {
  return (
    <div class="field">
      <label for={id}>Applies to</label>
      <select id={id} value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)}>
        {targets.map((t) => (
          <option key={t.v} value={t.v}>
            {t.label}
          </option>
        ))}
      </select>
    </div>
  );
}

function TypeCost({ prefix, type, cost, onChange }: { prefix: string; type: string; cost: string; onChange: (type: string, cost: string) => void }) {
  return (
    <>
      <div class="field">
        <label for={`${prefix}-type`}>Type</label>
        <select id={`${prefix}-type`} value={type} onChange={(e) => onChange((e.target as HTMLSelectElement).value, cost)}>
          <option value="flat">flat</option>
          <option value="rate">rate</option>
        </select>
      </div>
      <div class="field">
        <label for={`${prefix}-cost`}>Cost</label>
        <input id={`${prefix}-cost`} required inputMode="decimal" value={cost} onInput={(e) => onChange(type, (e.target as HTMLInputElement).value)} />
      </div>
    </>
  );
}

function GroupSelect({ id, groups, value, onChange }: { id: string; groups: HashmapGroup[]; value: string; onChange: (v: string) => void }) {
  return (
    <div class="field">
      <label for={id}>Group</label>
      <select id={id} value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)}>
        <option value="">(default)</option>
        {groups.map((g) => (
          <option key={g.group_id} value={g.group_id}>
            {g.name}
          </option>
        ))}
      </select>
    </div>
  );
}

function QuoteForm() {
  const [service, setService] = useState('instance');
  const [qty, setQty] = useState('1');
  const [desc, setDesc] = useState('{"size": "small"}');
  const [quote, setQuote] = useState<Quote | null>(null);
  const run = useAction(async () => {
    let d: unknown;
    try {
      d = desc.trim() ? JSON.parse(desc) : {};
    } catch {
      throw new Error('the description must be a JSON object, e.g. {"size": "small"}');
    }
    setQuote(await post<Quote>('/api/v1/rating/quote', { points: [{ service: service.trim(), qty: qty.trim(), unit: 'hour', desc: d }] }));
  });
  return (
    <Section title="Quote">
      <form
        class="form row"
        onSubmit={(e) => {
          e.preventDefault();
          void run.run();
        }}
      >
        <div class="field">
          <label for="q-service">Service</label>
          <input id="q-service" value={service} onInput={(e) => setService((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field">
          <label for="q-qty">Quantity (hours)</label>
          <input id="q-qty" inputMode="decimal" value={qty} onInput={(e) => setQty((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field grow">
          <label for="q-desc">Description (JSON)</label>
          <input id="q-desc" class="mono" value={desc} onInput={(e) => setDesc((e.target as HTMLInputElement).value)} />
        </div>
        <button type="submit" class="primary" disabled={run.busy}>
          Quote
        </button>
      </form>
      <ErrorBox error={run.error} title="No quote" />
      {quote && (
        <p role="status">
          Price: <strong>{money(quote.total)}</strong>
        </p>
      )}
    </Section>
  );
}
