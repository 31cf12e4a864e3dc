// clean.mjs empties the embedded build directory but keeps the files git
// tracks there (so a clone without the assets still compiles).
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const dist = new URL('../../kloud/webui/dist/', import.meta.url).pathname;
for (const name of readdirSync(dist)) {
  if (name === '.gitkeep' || name === '.gitignore') continue;
  rmSync(join(dist, name), { recursive: true, force: true });
}
