// VariableFields asks for a template's variables (lib/tplvars), each with
// its description and default.
import type { TemplateVariable } from '../lib/tplvars';

export function VariableFields({ prefix, vars, values, onChange }: { prefix: string; vars: TemplateVariable[]; values: Record<string, string>; onChange: (name: string, v: string) => void }) {
  if (vars.length === 0) return <p class="muted small">This template declares no variables.</p>;
  return (
    <fieldset>
      <legend>Variables</legend>
      {vars.map((v) => {
        const id = `${prefix}-var-${v.name}`;
        return (
          <div class="field" key={v.name}>
            <label for={id}>
              <code>{v.name}</code>
              {v.type && <span class="muted"> ({v.type})</span>}
            </label>
            <input
              id={id}
              name={v.name}
              type={(v.sensitive ? 'password' : 'text') as 'text'}
              autoComplete="off"
              placeholder={v.default ?? ''}
              value={values[v.name] ?? ''}
              onInput={(e) => onChange(v.name, (e.target as HTMLInputElement).value)}
              aria-describedby={v.description ? `${id}-d` : undefined}
            />
            {v.description && (
              <small id={`${id}-d`} class="muted">
                {v.description}
                {v.default !== undefined && ` Default: ${v.default}.`}
              </small>
            )}
          </div>
        );
      })}
    </fieldset>
  );
}

// setVariables keeps only the variables the user filled in: the others take
// the template's defaults.
export function setVariables(values: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) if (v.trim() !== '') out[k] = v.trim();
  return out;
}
