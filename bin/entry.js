// Which code runs: the compiled build in dist/ when it is at least as new as every source file,
// so a start does not compile TypeScript through a loader (bench/README.md, "Start-up and
// memory"); otherwise, as in a checkout being edited, the sources through tsx, so a start is never
// stale. The container image has dist/ and no sources.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

/** The newest modification time under what the build compiles or copies. */
function newestSource() {
  let newest = 0;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (!file.endsWith('.md')) newest = Math.max(newest, statSync(file).mtimeMs);
    }
  };
  for (const dir of ['src', 'broker']) if (existsSync(path.join(root, dir))) walk(path.join(root, dir));
  const certs = path.join(root, 'certs');
  if (existsSync(certs)) for (const name of readdirSync(certs)) if (name.endsWith('.ts')) newest = Math.max(newest, statSync(path.join(certs, name)).mtimeMs);
  return newest;
}

/** Whether runEntry(module) runs the compiled build (true) or the sources through tsx. */
export function runsCompiled(module = 'main') {
  const source = path.join(root, 'src', `${module}.ts`);
  const compiled = path.join(root, 'dist', 'src', `${module}.js`);
  return existsSync(compiled) && (!existsSync(source) || statSync(compiled).mtimeMs >= newestSource());
}

/** Imports `src/<module>.ts` or `dist/src/<module>.js`, e.g. runEntry('main'). */
export async function runEntry(module) {
  if (runsCompiled(module)) {
    await import(pathToFileURL(path.join(root, 'dist', 'src', `${module}.js`)).href);
  } else {
    const source = path.join(root, 'src', `${module}.ts`);
    const { register } = await import('tsx/esm/api');
    register();
    await import(pathToFileURL(source).href);
  }
}
