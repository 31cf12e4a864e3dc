// CodeView shows a template's text with line numbers, and each policy
// diagnostic under the line it names.
import type { Diagnostic } from '../lib/types';

export function CodeView({ text, diagnostics = [], label }: { text: string; diagnostics?: Diagnostic[]; label: string }) {
  const lines = text.split('\n');
  const byLine = new Map<number, Diagnostic[]>();
  for (const d of diagnostics) byLine.set(d.line, [...(byLine.get(d.line) ?? []), d]);
  return (
    <div class="code" role="region" aria-label={label} tabIndex={0}>
      <ol>
        {lines.map((l, i) => {
          const ds = byLine.get(i + 1);
          return (
            <li key={i} class={ds ? 'code-bad' : undefined} id={`L${i + 1}`}>
              <span class="code-line">{l || ' '}</span>
              {ds?.map((d, j) => (
                <div key={j} class="code-diag" role="note">
                  {' '.repeat(Math.max(0, d.column - 1))}^ {d.severity}: {d.message}
                </div>
              ))}
            </li>
          );
        })}
      </ol>
      {diagnostics
        .filter((d) => d.line < 1 || d.line > lines.length)
        .map((d, j) => (
          <div key={j} class="code-diag">
            {d.file}: {d.message}
          </div>
        ))}
    </div>
  );
}
