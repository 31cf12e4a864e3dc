// size.mjs prints how much JavaScript the dashboard's first page loads,
// gzipped, and fails the build past the 300 KB budget. A first load is
// the entry script with its static imports plus the page the URL names
// with its own; the figure printed is that of / and of the heaviest page.
// (The terminal loads only when a machine's Terminal tab opens; it is
// printed too.) It reads Vite's manifest, then removes it from the
// embedded directory.
import { readFileSync, rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

const dist = new URL('../../kloud/webui/dist/', import.meta.url).pathname;
const budget = 300 * 1024;
const manifestPath = join(dist, '.vite', 'manifest.json');
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
rmSync(join(dist, '.vite'), { recursive: true, force: true });

const gz = new Map();
function size(file) {
  if (!gz.has(file)) gz.set(file, gzipSync(readFileSync(join(dist, file)), { level: 9 }).length);
  return gz.get(file);
}
// closure is the set of JS files a chunk loads before it runs.
function closure(key, out = new Set()) {
  const c = manifest[key];
  if (!c || out.has(c.file)) return out;
  out.add(c.file);
  for (const i of c.imports ?? []) closure(i, out);
  return out;
}
const entryKey = Object.keys(manifest).find((k) => manifest[k].isEntry);
const entry = closure(entryKey);
const pages = Object.keys(manifest).filter((k) => k.startsWith('src/pages/') && manifest[k].isDynamicEntry);
const kb = (n) => (n / 1024).toFixed(1) + ' KB';
const total = (files) => [...files].reduce((n, f) => n + size(f), 0);
let heaviest = { page: '', bytes: 0 };
let home = 0;
for (const p of pages) {
  const files = closure(p, new Set(entry));
  const bytes = total(files);
  if (p.endsWith('/home.tsx')) home = bytes;
  if (bytes > heaviest.bytes) heaviest = { page: p, bytes };
}
const term = Object.keys(manifest).find((k) => k.endsWith('components/terminal.tsx'));
console.log(`first page JavaScript, gzipped: / ${kb(home)}; heaviest page (${heaviest.page.replace('src/pages/', '')}) ${kb(heaviest.bytes)}; budget ${kb(budget)}`);
if (term) console.log(`the terminal, loaded when its tab opens: ${kb(total(closure(term)))} more`);
if (!entryKey || home === 0 || heaviest.bytes > budget) {
  console.error('over the budget, or no entry found');
  process.exit(1);
}
