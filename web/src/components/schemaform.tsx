// FieldInputs renders a provider description's fields (lib/forms) as
// labelled controls.
import type { FieldModel, Values } from '../lib/forms';

export function FieldInputs({
  prefix,
  fields,
  values,
  errors,
  onChange,
}: {
  prefix: string;
  fields: FieldModel[];
  values: Values;
  errors: Record<string, string>;
  onChange: (name: string, v: string | boolean) => void;
}) {
  return (
    <>
      {fields.map((f) => {
        const id = `${prefix}-${f.name}`;
        const err = errors[f.name];
        const describedBy = [f.hint ? `${id}-hint` : '', err ? `${id}-err` : ''].filter(Boolean).join(' ') || undefined;
        const v = values[f.name];
        let control;
        switch (f.input) {
          case 'checkbox':
            return (
              <div class="field field-check" key={f.name}>
                <input id={id} name={f.name} type="checkbox" checked={v === true} onChange={(e) => onChange(f.name, (e.target as HTMLInputElement).checked)} />
                <label for={id}>{f.label}</label>
              </div>
            );
          case 'select':
            control = (
              <select
                id={id}
                name={f.name}
                required={f.required}
                aria-invalid={!!err}
                aria-describedby={describedBy}
                value={String(v ?? '')}
                onChange={(e) => onChange(f.name, (e.target as HTMLSelectElement).value)}
              >
                {!f.required && <option value="">(none)</option>}
                {(f.options ?? []).map((o) => (
                  <option key={o} value={o}>
                    {o}
                  </option>
                ))}
              </select>
            );
            break;
          case 'textarea':
            control = (
              <textarea
                id={id}
                name={f.name}
                rows={3}
                required={f.required}
                aria-invalid={!!err}
                aria-describedby={describedBy}
                value={String(v ?? '')}
                onInput={(e) => onChange(f.name, (e.target as HTMLTextAreaElement).value)}
              />
            );
            break;
          default:
            control = (
              <input
                id={id}
                name={f.name}
                type={f.input as 'text'}
                autoComplete={f.input === 'password' ? 'new-password' : 'off'}
                required={f.required}
                aria-invalid={!!err}
                aria-describedby={describedBy}
                value={String(v ?? '')}
                onInput={(e) => onChange(f.name, (e.target as HTMLInputElement).value)}
              />
            );
        }
        return (
          <div class="field" key={f.name}>
            <label for={id}>
              {f.label}
              {f.required && <span aria-hidden="true"> *</span>}
            </label>
            {control}
            {f.hint && (
              <small id={`${id}-hint`} class="muted">
                {f.hint}
              </small>
            )}
            {err && (
              <small id={`${id}-err`} class="field-error">
                {err}
              </small>
            )}
          </div>
        );
      })}
    </>
  );
}
