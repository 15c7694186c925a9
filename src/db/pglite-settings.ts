// How the embedded PGlite is opened: its PostgreSQL settings and the initialised cluster it starts
// from on a first start. Measured by bench/startup.ts (bench/README.md, "Start-up and memory").
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { PGliteOptions } from '@electric-sql/pglite';

/**
 * PGlite's own start parameters (`defaultStartParams` in @electric-sql/pglite 0.4, not exported;
 * passing startParams replaces them) with PostgreSQL's fsync on, not off (`-F`), and the WAL
 * synced by fsync(), which PGlite's file layer is given (pglite-durability.ts; its fdatasync()
 * stays a no-op): a COMMIT, and so an acknowledgement, waits for the disk. Plus a smaller buffer
 * pool. PostgreSQL's default of 128 MB of shared buffers sits in PGlite's WebAssembly memory in
 * this process; mqota's catalog is a few MB even at 20,000 devices. 16 MB took the idle process from 457 to ~330 MiB RSS after a restart;
 * 8 MB touches 10 MiB less of the WebAssembly memory (29.7 → 19.4 MiB resident), and a 1,000-device
 * fan-out took as long and as much CPU as with 16 MB (bench/README.md, "Start-up and memory").
 */
export const PGLITE_START_PARAMS = [
  '--single', '-O', '-j', '-c', 'search_path=public', '-c', 'wal_sync_method=fsync', '-c', 'exit_on_error=false', '-c', 'log_checkpoints=false',
  '-c', 'max_worker_processes=0', '-c', 'max_parallel_workers=0', '-c', 'max_parallel_workers_per_gather=0',
  '-c', 'shared_buffers=8MB',
];

const require = createRequire(import.meta.url);

/**
 * A freshly initialised, empty cluster (PGlite's dumpDataDir) of this PGlite version, made once
 * by `npm run build` and after `npm install` (scripts/pglite-template.mjs). Starting from it skips
 * initdb, which took 15–18 s and peaked near 800 MiB on a first start.
 */
export function pgliteTemplatePath(): string {
  const pkg = pglitePackageJson(require.resolve('@electric-sql/pglite'));
  const version = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  return path.join(path.dirname(pkg), '..', '..', '.cache', 'mqota', `pglite-${version}-template.tgz`);
}

/** @electric-sql/pglite's package.json (not in its exports) from its resolved entry point. */
function pglitePackageJson(entry: string): string {
  const marker = `${path.sep}@electric-sql${path.sep}pglite${path.sep}`;
  return path.join(entry.slice(0, entry.lastIndexOf(marker) + marker.length), 'package.json');
}

/** The template as PGlite's loadDataDir, when `dir` holds no cluster yet and a template was made. */
export function firstStartTemplate(dir: string): Pick<PGliteOptions, 'loadDataDir'> {
  if (existsSync(path.join(dir, 'PG_VERSION'))) return {};
  const template = pgliteTemplatePath();
  if (!existsSync(template)) return {};
  return { loadDataDir: new Blob([readFileSync(template)]) };
}
