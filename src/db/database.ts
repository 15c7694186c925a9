// Opens the catalog database: embedded PGlite in the data folder by default, PostgreSQL when
// DATABASE_URL is set. Same Prisma schema and migrations on both.
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { migrate, type SqlDriver } from './migrate.js';
import { openPgliteThread } from './pglite-thread.js';

export { PrismaClient };

export interface Database {
  readonly kind: 'pglite' | 'postgres';
  readonly prisma: PrismaClient;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class DatabaseLockedError extends Error {}

// Connection-level failures: the server is down, restarting or unreachable. PostgreSQL's class 08
// (connection exception) and 57P01-3 (shutting down, cannot connect now), the socket's errno,
// Prisma's P1001/P1002/P1017, and pg-pool's connect timeout.
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', '57P01', '57P02', '57P03',
  '08000', '08001', '08003', '08004', '08006', 'P1001', 'P1002', 'P1017']);
const UNAVAILABLE_MESSAGES = /connection terminated|timeout exceeded when trying to connect|can't reach database server|server closed the connection|connection refused/i;

/** Whether an error says the database cannot be reached now (as opposed to a bad query). */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown; message?: unknown } | undefined, depth = 0; e && depth < 6; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && UNAVAILABLE_CODES.has(e.code)) return true;
    if (typeof e.message === 'string' && UNAVAILABLE_MESSAGES.test(e.message)) return true;
    const original = (e as { originalCode?: unknown }).originalCode;
    if (typeof original === 'string' && UNAVAILABLE_CODES.has(original)) return true;
  }
  return false;
}

export async function openDatabase(opts: { databaseUrl: string | null; dataDir: string; logger: Logger }): Promise<Database> {
  const log = opts.logger.child({ component: 'db' });
  return opts.databaseUrl ? openPostgres(opts.databaseUrl, log) : openPglite(path.join(opts.dataDir, 'pglite'), log);
}

async function openPostgres(url: string, log: Logger): Promise<Database> {
  // A bounded connect wait: during an outage a commit fails and is retried, instead of hanging.
  const pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5_000 });
  pool.on('error', (err) => log.warn({ err }, 'idle PostgreSQL connection failed'));
  const client = await pool.connect();
  try {
    await migrate(pgDriver(client), log, { lock: true });
  } finally {
    client.release();
  }
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  log.info({ database: redactUrl(url) }, 'PostgreSQL ready');
  return {
    kind: 'postgres',
    prisma,
    ping: () => withTimeout(pool.query('SELECT 1').then(() => undefined), 2_000, 'PostgreSQL did not answer within 2 s'),
    close: async () => { await prisma.$disconnect(); await pool.end(); },
  };
}

async function openPglite(dir: string, log: Logger): Promise<Database> {
  await mkdir(dir, { recursive: true });
  const releaseLock = await lockDirectory(dir);
  try {
    // In a worker thread (pglite-thread.ts), so its SQL does not stall the event loop.
    const db = await openPgliteThread(dir);
    await migrate(pgliteDriver(db), log, { lock: false });
    const prisma = new PrismaClient({ adapter: new PrismaPGlite(db as PGlite) });
    log.info({ dir }, 'PGlite ready');
    return {
      kind: 'pglite',
      prisma,
      ping: async () => { await db.query('SELECT 1'); },
      close: async () => { await prisma.$disconnect(); await db.close(); await releaseLock(); },
    };
  } catch (err) {
    await releaseLock();
    throw err;
  }
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

function pgDriver(client: pg.PoolClient): SqlDriver {
  return {
    exec: async (sql) => { await client.query(sql); },
    query: async <T>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as T[],
  };
}

function pgliteDriver(db: Pick<PGlite, 'exec' | 'query'>): SqlDriver {
  return {
    exec: async (sql) => { await db.exec(sql); },
    query: async <T>(sql: string, params?: unknown[]) => (await db.query<T>(sql, params)).rows,
  };
}

function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

function redactUrl(url: string): string {
  try { const u = new URL(url); if (u.password) u.password = '***'; return u.toString(); } catch { return 'postgres://…'; }
}
