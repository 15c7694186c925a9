// Generates the Prisma client after `npm install`. The client itself needs no native engine
// (Prisma 7 compiles queries in WebAssembly), but the CLI refuses to start without a schema-engine
// path; where that binary cannot be downloaded, any placeholder file satisfies `generate`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
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

// Prisma's generated client imports its query compiler's WebAssembly as a 4.5 MB base64 string in
// an ES module, which stays loaded for the life of the process: the module's source and the string
// itself, ~9 MiB of the main thread's heap at rest (bench/README.md, "Start-up and memory").
// Loading it through require and dropping it from the cache freed both on Node 20, but Node 24 keeps
// them (8.7 MiB of its large-object space at rest, "Seventh round"). So the file is read as text
// and the string sliced out of it: no module is compiled, and nothing of it outlives the decode.
// Should Prisma change the file's shape, the slice is not base64 and the module is required instead.
const client = join('src', 'generated', 'prisma', 'internal', 'class.ts');
const imported = /const \{ wasm \} = await import\("(@prisma\/client\/runtime\/query_compiler_[a-z]+_bg\.[a-z]+\.wasm-base64)\.mjs"\)/;
const source = readFileSync(client, 'utf8');
const match = source.match(imported);
if (match) {
  writeFileSync(client, source.replace(imported, [
    `const [{ readFileSync }, { createRequire }] = await Promise.all([import('node:fs'), import('node:module')])`,
    `    const require = createRequire(import.meta.url)`,
    `    const file = require.resolve(${JSON.stringify(`${match[1]}.js`)})`,
    `    // mqota: read as text, not loaded as a module, so neither its source nor the string outlives the decode (scripts/prisma-generate.mjs)`,
    `    const text = readFileSync(file, 'latin1')`,
    `    const start = text.indexOf('"') + 1`,
    `    const quoted = text.slice(start, text.indexOf('"', start))`,
    `    const wasm = /^[A-Za-z0-9+/]+=*$/.test(quoted) ? quoted : (require(file) as { wasm: string }).wasm`,
  ].join('\n')));
} else if (!source.includes('mqota: read as text')) {
  process.stderr.write(`mqota: ${client} no longer imports the query compiler as expected; it keeps its base64 copy in memory\n`);
}
