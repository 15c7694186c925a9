// After `npm install`/`npm ci`: the Prisma client, then, in a checkout with the sources, the
// compiled build `npm start` prefers (bin/entry.js) and the PGlite template a first start
// copies (scripts/pglite-template.mjs). The build is best effort: without it `npm start` runs the
// sources through tsx, as it always could.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const run = (script, args = []) => execFileSync(process.execPath, [script, ...args], { stdio: 'inherit' });
run('scripts/prisma-generate.mjs');
if (existsSync('src/main.ts') && existsSync('tsconfig.build.json') && existsSync('node_modules/typescript/bin/tsc')) {
  try {
    run('node_modules/typescript/bin/tsc', ['-p', 'tsconfig.build.json']);
    execFileSync('cp', ['-r', 'src/http/dashboard', 'dist/src/http/'], { stdio: 'inherit' });
  } catch {
    process.stderr.write('mqota: the build failed; `npm start` will run the sources through tsx\n');
  }
}
if (existsSync('scripts/pglite-template.mjs')) run('scripts/pglite-template.mjs');
