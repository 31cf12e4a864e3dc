// VariableFields asks for a template's variables (lib/tplvars), each with
// its description and default.
import { useMemo } from 'preact/hooks';
import { useResource } from '../lib/hooks';
import { templateVariables, type TemplateVariable } from '../lib/tplvars';
import type { Template } from '../lib/types';

// useTemplateVariables is what a template's active version declares: the
// server's own reading (GET /api/v1/templates/{id}/versions/{n}, with
// required and validations) when it has one, else the page's reading of
// the template's text.
export function useTemplateVariables(t: Template | undefined): TemplateVariable[] {
  const version = useResource<{ variables?: TemplateVariable[] | null }>(t && t.active_version ? `/api/v1/templates/${encodeURIComponent(t.id)}/versions/${t.active_version}` : null);
  const parsed = useMemo(() => (t ? templateVariables(t.content, t.format) : []), [t]);
  const served = version.data?.variables;
  return served ? served.filter((v) => !v.name.startsWith('kloud_')) : parsed;
}

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
              {v.required && <span aria-hidden="true"> *</span>}
            </label>
            <input
              id={id}
              name={v.name}
              type={(v.sensitive ? 'password' : 'text') as 'text'}
              autoComplete="off"
              placeholder={v.default ?? ''}
              required={v.required === true}
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
