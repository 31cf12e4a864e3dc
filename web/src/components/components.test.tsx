// Component tests: the credential form built from a provider description,
// and the job progress view fed by a fake event stream.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/preact';
import { useState } from 'preact/hooks';
import { FieldInputs } from './schemaform';
import { JobView } from './jobview';
import { fieldModels, initialValues, buildData, type Values } from '../lib/forms';
import type { ProviderField } from '../lib/types';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const fields: ProviderField[] = [
  { name: 'token', label: 'API Token', type: 'string', secret: true, required: true },
  { name: 'region', label: 'Region', type: 'enum', secret: false, required: true, enum: ['nyc1', 'ams3'] },
  { name: 'vpc', label: 'Use a VPC', type: 'boolean', secret: false, required: false },
];

function Form({ onData }: { onData: (d: unknown) => void }) {
  const [values, setValues] = useState<Values>(initialValues(fields));
  const [errors, setErrors] = useState<Record<string, string>>({});
  return (
    <form
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        const b = buildData(fields, values);
        setErrors(b.errors);
        if (Object.keys(b.errors).length === 0) onData(b.data);
      }}
    >
      <FieldInputs prefix="t" fields={fieldModels(fields)} values={values} errors={errors} onChange={(k, v) => setValues({ ...values, [k]: v })} />
      <button type="submit">Save</button>
    </form>
  );
}

describe('FieldInputs', () => {
  it('renders labelled controls and names what is missing', async () => {
    let got: unknown;
    render(<Form onData={(d) => (got = d)} />);
    const token = screen.getByLabelText(/API Token/) as HTMLInputElement;
    expect(token.type).toBe('password');
    expect((screen.getByLabelText(/Region/) as HTMLSelectElement).value).toBe('nyc1');
    fireEvent.click(screen.getByText('Save'));
    await screen.findByText('API Token is required');
    expect(token.getAttribute('aria-invalid')).toBe('true');
    expect(token.getAttribute('aria-describedby')).toBe('t-token-err');
    fireEvent.input(token, { target: { value: 'dop_v1_x' } });
    fireEvent.change(screen.getByLabelText(/Region/), { target: { value: 'ams3' } });
    fireEvent.click(screen.getByLabelText('Use a VPC'));
    fireEvent.click(screen.getByText('Save'));
    await waitFor(() => expect(got).toEqual({ token: 'dop_v1_x', region: 'ams3', vpc: true }));
  });
});

// FakeEventSource stands in for the browser's EventSource: the test sends
// the server's events by hand.
class FakeEventSource {
  static last: FakeEventSource | undefined;
  static readonly CLOSED = 2;
  readyState = 1;
  onmessage: ((m: MessageEvent) => void) | null = null;
  onerror: (() => void) | null = null;
  private listeners = new Map<string, ((m: MessageEvent) => void)[]>();
  constructor(readonly url: string) {
    FakeEventSource.last = this;
  }
  addEventListener(kind: string, f: (m: MessageEvent) => void) {
    this.listeners.set(kind, [...(this.listeners.get(kind) ?? []), f]);
  }
  close() {
    this.readyState = 2;
  }
  send(kind: string, data: object) {
    for (const f of this.listeners.get(kind) ?? []) f(new MessageEvent(kind, { data: JSON.stringify(data) }));
  }
}

describe('JobView', () => {
  it('moves with the stream and shows how the job ended', async () => {
    let status = 'running';
    vi.stubGlobal('EventSource', FakeEventSource);
    vi.stubGlobal(
      'fetch',
      vi.fn(
        async () =>
          new Response(JSON.stringify({ id: 'j-1', kind: 'apply', status, percentage: status === 'failed' ? 40 : 0, error: status === 'failed' ? 'terraform apply: boom' : '', created_at: '' }), {
            status: 200,
          }),
      ),
    );
    const done = vi.fn();
    render(<JobView jobId="j-1" onDone={done} />);
    const es = FakeEventSource.last!;
    expect(es.url).toBe('/api/v1/jobs/j-1/events?follow=1');
    const bar = screen.getByRole('progressbar');
    es.send('phase', { seq: 1, kind: 'phase', message: 'terraform apply', percentage: 40 });
    es.send('output', { seq: 2, kind: 'output', message: 'sandbox_machine.web: Creating...', percentage: 40 });
    await waitFor(() => expect(bar.getAttribute('aria-valuenow')).toBe('40'));
    screen.getByText('terraform apply');
    screen.getByText(/Creating/);
    status = 'failed';
    es.send('error', { seq: 3, kind: 'error', message: 'terraform apply: boom', percentage: 40 });
    es.send('done', { seq: 4, kind: 'done', message: 'failed', percentage: 100 });
    await waitFor(() => expect(done).toHaveBeenCalledOnce());
    expect(screen.getByRole('alert').textContent).toContain('terraform apply: boom');
    expect(bar.getAttribute('aria-valuenow')).toBe('40');
    expect(es.readyState).toBe(2);
  });
});

describe('terminal wire format', async () => {
  const { terminalURL, sessionName, parseControl } = await import('./terminal');
  it('addresses the machine over ws or wss with the session and size', () => {
    expect(terminalURL('m-1', {}, { protocol: 'http:', host: 'k:8080' })).toBe('ws://k:8080/api/v1/machines/m-1/terminal');
    expect(terminalURL('m 1', { session: 'web-ab', cols: 80, rows: 24 }, { protocol: 'https:', host: 'k' })).toBe('wss://k/api/v1/machines/m%201/terminal?session=web-ab&cols=80&rows=24');
  });
  it('keeps one session name per machine and tab', () => {
    const m = new Map<string, string>();
    const store = { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v) };
    const a = sessionName('m-1', store);
    expect(a).toMatch(/^web-[0-9a-f]{12}$/);
    expect(sessionName('m-1', store)).toBe(a);
    expect(sessionName('m-2', store)).not.toBe(a);
  });
  it('reads control frames and ignores anything else', () => {
    expect(parseControl('{"type":"exit","code":3}')).toEqual({ type: 'exit', code: 3 });
    expect(parseControl('not json')).toBeNull();
    expect(parseControl('{"code":1}')).toBeNull();
  });
});

describe('MachinesTable', async () => {
  const { MachinesTable } = await import('./machines');
  it('renders 10,000 machines a page at a time', async () => {
    const ms = Array.from({ length: 10000 }, (_, i) => ({
      id: `m-${i}`,
      stack_id: 'stk-1',
      owner_id: 'u',
      label: `web-${i}`,
      provider: 'sandbox',
      state: i % 2 ? 'Running' : 'Stopped',
      reason: '',
      always_on: false,
      metadata: null,
      uptime_seconds: i,
    }));
    render(<MachinesTable machines={ms} caption="machines" />);
    expect(document.querySelectorAll('tr[data-machine]').length).toBe(50);
    screen.getByText('1–50 of 10000');
    fireEvent.click(screen.getByText('Last »'));
    await screen.findByText('9951–10000 of 10000');
    expect(document.querySelector('tr[data-machine]')?.getAttribute('data-machine')).toBe('m-9950');
  });
});
