// tplvars finds the variables a template declares, so a stack's form can
// ask for them. Kloud's own variables (kloud_*) are filled in by Kloud and
// never asked for.

export interface TemplateVariable {
  name: string;
  type?: string;
  description?: string;
  default?: string;
  sensitive: boolean;
  required?: boolean;
}

export function templateVariables(content: string, format: string): TemplateVariable[] {
  const vars = format === 'json' ? fromJSON(content) : fromHCL(content);
  return vars.filter((v) => !v.name.startsWith('kloud_'));
}

function fromJSON(content: string): TemplateVariable[] {
  let doc: unknown;
  try {
    doc = JSON.parse(content);
  } catch {
    return [];
  }
  if (!doc || typeof doc !== 'object') return [];
  const raw = (doc as Record<string, unknown>).variable;
  const out: TemplateVariable[] = [];
  const add = (name: string, body: unknown) => {
    const b = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
    const v: TemplateVariable = { name, sensitive: b.sensitive === true };
    if (typeof b.type === 'string') v.type = b.type;
    if (typeof b.description === 'string') v.description = b.description;
    if (b.default !== undefined && b.default !== null) v.default = typeof b.default === 'string' ? b.default : JSON.stringify(b.default);
    out.push(v);
  };
  if (Array.isArray(raw)) {
    for (const item of raw) if (item && typeof item === 'object') for (const [k, v] of Object.entries(item)) add(k, v);
  } else if (raw && typeof raw === 'object') {
    for (const [k, v] of Object.entries(raw)) add(k, v);
  }
  return out;
}

// fromHCL reads variable blocks: enough of HCL for their name and their
// simple attributes (type, description, default, sensitive); comments and
// strings are skipped so braces inside them do not count.
function fromHCL(src: string): TemplateVariable[] {
  const out: TemplateVariable[] = [];
  const re = /(^|\n)\s*variable\s+"([A-Za-z_][A-Za-z0-9_-]*)"\s*\{/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(src)) !== null) {
    const start = m.index + m[0].length;
    const end = blockEnd(src, start);
    const body = src.slice(start, end);
    const v: TemplateVariable = { name: m[2]!, sensitive: /(^|\n)\s*sensitive\s*=\s*true\b/.test(body) };
    const attr = (name: string) => {
      const a = new RegExp(`(^|\\n)\\s*${name}\\s*=\\s*(.+)`).exec(body);
      return a ? a[2]!.trim() : undefined;
    };
    const type = attr('type');
    if (type) v.type = type;
    const desc = attr('description');
    if (desc) v.description = unquote(desc);
    const def = attr('default');
    if (def !== undefined) v.default = unquote(def);
    out.push(v);
    re.lastIndex = end;
  }
  return out;
}

function unquote(s: string): string {
  const t = s.replace(/\s+(#|\/\/).*$/, '').trim();
  if (t.startsWith('"')) {
    try {
      return JSON.parse(t) as string;
    } catch {
      return t.slice(1, t.lastIndexOf('"') > 0 ? t.lastIndexOf('"') : undefined);
    }
  }
  return t;
}

// blockEnd returns the index of the brace closing the block whose body
// starts at i.
function blockEnd(s: string, i: number): number {
  let depth = 1;
  while (i < s.length) {
    const c = s[i]!;
    if (c === '"') {
      i++;
      while (i < s.length && s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
    } else if (c === '#' || (c === '/' && s[i + 1] === '/')) {
      while (i < s.length && s[i] !== '\n') i++;
    } else if (c === '/' && s[i + 1] === '*') {
      const e = s.indexOf('*/', i + 2);
      i = e < 0 ? s.length : e + 1;
    } else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
    i++;
  }
  return s.length;
}
