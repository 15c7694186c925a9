// The embedded PGlite's folder, opened: locked for this process, PGlite started in its worker
// thread (pglite-thread.ts) and migrated. Kept free of Prisma and the HTTP stack so main.ts can
// begin it first and the worker starts PostgreSQL while the main thread loads the rest of mqota
// (bench/README.md, "Start-up and memory"); database.ts then takes it over.
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.js';
import { migrate, type SqlDriver } from './migrate.js';
import { openPgliteThread, type PGliteThread } from './pglite-thread.js';

export class DatabaseLockedError extends Error {}

/** Where the embedded database lives in the data folder. */
export function pgliteDir(dataDir: string): string {
  return path.join(dataDir, 'pglite');
}

export interface PgliteStore { db: PGliteThread; releaseLock: () => Promise<void> }

export async function openPgliteStore(dir: string, log: Logger): Promise<PgliteStore> {
  await mkdir(dir, { recursive: true });
  const releaseLock = await lockDirectory(dir);
  let db: PGliteThread | null = null;
  try {
    db = await openPgliteThread(dir);
    await migrate(pgliteDriver(db), log, { lock: false });
    return { db, releaseLock };
  } catch (err) {
    await db?.close().catch(() => undefined);
    await releaseLock();
    throw err;
  }
}

const early = new Map<string, Promise<PgliteStore>>();

/** Begins openPgliteStore(dir) now; the next takeEarlyPglite(dir) gets it. */
export function openPgliteEarly(dir: string, log: Logger): void {
  const opening = openPgliteStore(dir, log);
  opening.catch(() => undefined); // reported where it is taken; unhandled if start-up fails before that
  early.set(dir, opening);
}

/** The store begun by openPgliteEarly(dir), once; null if none was. */
export function takeEarlyPglite(dir: string): Promise<PgliteStore> | null {
  const opening = early.get(dir) ?? null;
  early.delete(dir);
  return opening;
}

// PGlite is one in-process PostgreSQL: two processes on one folder would corrupt it.
async function lockDirectory(dir: string): Promise<() => Promise<void>> {
  const lockFile = path.join(dir, '..', 'pglite.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(lockFile, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => rm(lockFile, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(lockFile, 'utf8').catch(() => '')).trim());
      if (pid && pid !== process.pid && isAlive(pid)) {
        throw new DatabaseLockedError(`the embedded database in ${dir} is in use by process ${pid}; use the API (or DATABASE_URL) while the service runs`);
      }
      await rm(lockFile, { force: true }); // stale lock from a crashed process
    }
  }
  throw new DatabaseLockedError(`could not lock ${dir}`);
}

function isAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
}

function pgliteDriver(db: PGliteThread): SqlDriver {
  return {
    exec: async (sql) => { await db.exec(sql); },
    query: async <T>(sql: string, params?: unknown[]) => (await db.query<T>(sql, params)).rows,
  };
}
