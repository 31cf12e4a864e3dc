// forms turns a provider's credential description (GET /api/v1/providers)
// into form fields, checks what the user typed, and builds the credential's
// data object with each value in the type the description names.
import type { ProviderField } from './types';

export type Values = Record<string, string | boolean>;

export interface FieldModel {
  name: string;
  label: string;
  // input is the control that edits the field.
  input: 'text' | 'password' | 'number' | 'checkbox' | 'select' | 'textarea';
  required: boolean;
  options?: string[];
  hint?: string;
}

export function fieldModels(fields: ProviderField[] | undefined): FieldModel[] {
  return (fields ?? []).map((f) => {
    const m: FieldModel = { name: f.name, label: f.label || f.name, input: 'text', required: f.required };
    switch (f.type) {
      case 'boolean':
        m.input = 'checkbox';
        m.required = false;
        break;
      case 'integer':
      case 'number':
        m.input = 'number';
        break;
      case 'enum':
        m.input = 'select';
        m.options = f.enum ?? [];
        break;
      case 'list':
        m.input = 'textarea';
        m.hint = 'one value per line';
        break;
      case 'object':
        m.input = 'textarea';
        m.hint = 'a JSON object';
        break;
      default:
        m.input = f.secret ? 'password' : 'text';
    }
    if (f.secret && m.input === 'text') m.input = 'password';
    return m;
  });
}

export function initialValues(fields: ProviderField[] | undefined): Values {
  const v: Values = {};
  for (const f of fields ?? []) {
    if (f.type === 'boolean') v[f.name] = false;
    else if (f.type === 'enum' && f.required && f.enum && f.enum.length > 0) v[f.name] = f.enum[0]!;
    else v[f.name] = '';
  }
  return v;
}

export interface Built {
  data: Record<string, unknown>;
  // errors names the fields that are wrong, with the reason.
  errors: Record<string, string>;
}

// buildData checks values against the description and converts them: an
// empty optional field is left out, numbers become numbers, lists arrays.
export function buildData(fields: ProviderField[] | undefined, values: Values): Built {
  const data: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const f of fields ?? []) {
    const raw = values[f.name];
    const label = f.label || f.name;
    if (f.type === 'boolean') {
      data[f.name] = raw === true;
      continue;
    }
    const s = typeof raw === 'string' ? raw.trim() : '';
    if (s === '') {
      if (f.required) errors[f.name] = `${label} is required`;
      continue;
    }
    switch (f.type) {
      case 'integer': {
        if (!/^-?\d+$/.test(s)) errors[f.name] = `${label} must be a whole number`;
        else data[f.name] = Number.parseInt(s, 10);
        break;
      }
      case 'number': {
        const n = Number(s);
        if (!Number.isFinite(n)) errors[f.name] = `${label} must be a number`;
        else data[f.name] = n;
        break;
      }
      case 'enum': {
        if (f.enum && !f.enum.includes(s)) errors[f.name] = `${label} must be one of ${f.enum.join(', ')}`;
        else data[f.name] = s;
        break;
      }
      case 'list':
        data[f.name] = s
          .split('\n')
          .map((x) => x.trim())
          .filter(Boolean);
        break;
      case 'object': {
        try {
          const o: unknown = JSON.parse(s);
          if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error('not an object');
          data[f.name] = o;
        } catch {
          errors[f.name] = `${label} must be a JSON object`;
        }
        break;
      }
      default:
        data[f.name] = s;
    }
  }
  return { data, errors };
}
