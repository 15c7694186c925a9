// Generates the Prisma client after `npm install`. The client itself needs no native engine
// (Prisma 7 compiles queries in WebAssembly), but the CLI refuses to start without a schema-engine
// path; where that binary cannot be downloaded, any placeholder file satisfies `generate`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const env = { ...process.env };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY) {
  const dir = join('node_modules', '.cache', 'mqota');
  const placeholder = join(dir, 'schema-engine-placeholder');
  mkdirSync(dir, { recursive: true });
  if (!existsSync(placeholder)) writeFileSync(placeholder, '');
  env.PRISMA_SCHEMA_ENGINE_BINARY = placeholder;
}
env.PRISMA_HIDE_UPDATE_MESSAGE = '1';
execFileSync(process.execPath, [join('node_modules', 'prisma', 'build', 'index.js'), 'generate'], { stdio: 'inherit', env });
