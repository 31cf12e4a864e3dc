import { describe, expect, it } from 'vitest';
import { buildData, fieldModels, initialValues } from './forms';
import type { ProviderField } from './types';

// aws is the AWS provider's credential description as GET /api/v1/providers
// answers it.
const aws: ProviderField[] = [
  { name: 'access_key', label: 'Access Key ID', type: 'string', secret: false, required: true },
  { name: 'secret_key', label: 'Secret Access Key', type: 'string', secret: true, required: true },
  { name: 'region', label: 'Region', type: 'enum', secret: false, required: true, enum: ['us-east-1', 'eu-west-1'] },
  { name: 'port', label: 'Port', type: 'integer', secret: false, required: false },
  { name: 'ratio', label: 'Ratio', type: 'number', secret: false, required: false },
  { name: 'tags', label: 'Tags', type: 'list', secret: false, required: false },
  { name: 'extra', label: 'Extra', type: 'object', secret: false, required: false },
  { name: 'debug', label: 'Debug', type: 'boolean', secret: false, required: true },
];

describe('fieldModels', () => {
  it('picks a control for each type', () => {
    const m = Object.fromEntries(fieldModels(aws).map((f) => [f.name, f]));
    expect(m.access_key!.input).toBe('text');
    expect(m.secret_key!.input).toBe('password');
    expect(m.region!.input).toBe('select');
    expect(m.region!.options).toEqual(['us-east-1', 'eu-west-1']);
    expect(m.port!.input).toBe('number');
    expect(m.tags!.input).toBe('textarea');
    expect(m.extra!.hint).toContain('JSON');
    expect(m.debug!.input).toBe('checkbox');
    expect(m.debug!.required).toBe(false);
  });
  it('has no fields for a provider without any', () => {
    expect(fieldModels(undefined)).toEqual([]);
    expect(buildData(undefined, {})).toEqual({ data: {}, errors: {} });
  });
});

describe('buildData', () => {
  const cases: { name: string; values: Record<string, string | boolean>; data?: Record<string, unknown>; errors?: string[] }[] = [
    {
      name: 'a complete form, converted to the described types',
      values: { ...initialValues(aws), access_key: ' AKIA ', secret_key: 's3cret', port: '22', ratio: '0.5', tags: 'a\n\n b \n', extra: '{"k":1}', debug: true },
      data: { access_key: 'AKIA', secret_key: 's3cret', region: 'us-east-1', port: 22, ratio: 0.5, tags: ['a', 'b'], extra: { k: 1 }, debug: true },
    },
    { name: 'required fields missing', values: initialValues(aws), errors: ['access_key', 'secret_key'] },
    {
      name: 'wrong types',
      values: { ...initialValues(aws), access_key: 'a', secret_key: 'b', region: 'mars-1', port: '2.5', ratio: 'x', extra: '[1]' },
      errors: ['extra', 'port', 'ratio', 'region'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const b = buildData(aws, c.values);
      expect(Object.keys(b.errors).sort()).toEqual(c.errors ?? []);
      if (c.data) expect(b.data).toEqual(c.data);
    });
  }
  it('names the field in its message', () => {
    expect(buildData(aws, initialValues(aws)).errors.access_key).toBe('Access Key ID is required');
  });
});
