// Opens the catalog database: embedded PGlite in the data folder by default, PostgreSQL when
// DATABASE_URL is set. Same Prisma schema and migrations on both.
import type { PGlite } from '@electric-sql/pglite';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import type pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.js';
import type { HeapReleased } from '../heap-release.js';
import type { Logger } from '../logger.js';
import { migrate, type SqlDriver } from './migrate.js';
import { openPgliteStore, pgliteDir, takeEarlyPglite } from './pglite-store.js';
import type { PreparedQueries } from './pglite-thread.js';

export { PrismaClient };

/** A statement of a write batch, run on the driver itself (Database.batch). */
export interface BatchSql {
  /**
   * `count`: the rows the statement inserted, updated or deleted. `planEachRun`: planned for the
   * tables as they are at each run. On PGlite batch statements are otherwise prepared once, and
   * PostgreSQL keeps the generic plan it made for the table sizes of their first runs; PGlite runs
   * no autovacuum, whose statistics would make it plan again. (PostgreSQL's statements here are
   * unnamed, planned at each run anyway.)
   */
  query<T = Record<string, unknown>>(sql: string, params: unknown[], opts?: { planEachRun?: boolean }): Promise<{ rows: T[]; count: number }>;
}

export type BatchStep = (sql: BatchSql) => Promise<void>;

export interface Database {
  readonly kind: 'pglite' | 'postgres';
  readonly prisma: PrismaClient;
  /**
   * Runs the steps in order in one transaction (one step alone: without BEGIN and COMMIT) on the
   * driver itself. The group commit's batches take this path, not Prisma's raw queries: Prisma
   * encodes a raw statement's parameters as JSON and decodes them again on the event loop, about
   * 0.5 ms of CPU a statement and ~8 % of the main thread in a 10,000-device fan-out.
   */
  batch(steps: readonly BatchStep[]): Promise<void>;
  ping(): Promise<void>;
  /**
   * Start-up's leftovers in the database's own isolate (PGlite's worker), collected once
   * (heap-release.ts); PostgreSQL runs in its own process and has none here.
   */
  releaseHeap(): Promise<HeapReleased | null>;
  close(): Promise<void>;
}

export { DatabaseLockedError } from './pglite-store.js';

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
  return opts.databaseUrl ? openPostgres(opts.databaseUrl, log) : openPglite(pgliteDir(opts.dataDir), log);
}

async function openPostgres(url: string, log: Logger): Promise<Database> {
  // Loaded only here: the embedded default never needs them (bench/README.md, "Start-up and memory").
  const [{ default: pg }, { PrismaPg }] = await Promise.all([import('pg'), import('@prisma/adapter-pg')]);
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
    batch: async (steps) => {
      const client = await pool.connect();
      let broken = false;
      // The pool listens for errors of idle clients only: one that loses its server while checked
      // out emits 'error', and with no listener that would end the process (a stopped PostgreSQL).
      const lost = (err: Error) => { broken = true; log.warn({ err }, 'PostgreSQL connection failed during a batch'); };
      client.on('error', lost);
      const sql: BatchSql = {
        query: async <T>(text: string, params: unknown[]) => {
          const r = await client.query(text, params);
          return { rows: r.rows as T[], count: r.rowCount ?? 0 };
        },
      };
      try {
        if (steps.length === 1) { await steps[0]!(sql); return; }
        await client.query('BEGIN');
        try {
          for (const step of steps) await step(sql);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => { broken = true; });
          throw err;
        }
      } catch (err) {
        if (isDatabaseUnavailable(err)) broken = true; // not back into the pool
        throw err;
      } finally {
        client.off('error', lost);
        client.release(broken);
      }
    },
    ping: () => withTimeout(pool.query('SELECT 1').then(() => undefined), 2_000, 'PostgreSQL did not answer within 2 s'),
    releaseHeap: async () => null,
    close: async () => { await prisma.$disconnect(); await pool.end(); },
  };
}

async function openPglite(dir: string, log: Logger): Promise<Database> {
  // Begun early by main.ts (pglite-store.ts) while the other modules load, or here.
  const { db, releaseLock } = await (takeEarlyPglite(dir) ?? openPgliteStore(dir, log));
  try {
    const prisma = new PrismaClient({ adapter: new PrismaPGlite(db as unknown as PGlite) });
    log.info({ dir }, 'PGlite ready');
    // The batch statements are a few constants run thousands of times: prepared once (pglite-worker.ts).
    const on = (q: PreparedQueries & Pick<PGlite, 'query'>): BatchSql => ({
      query: async <T>(text: string, params: unknown[], opts?: { planEachRun?: boolean }) => {
        const r = opts?.planEachRun ? await q.query<T>(text, params) : await q.queryPrepared<T>(text, params);
        return { rows: r.rows, count: r.affectedRows ?? 0 };
      },
    });
    return {
      kind: 'pglite',
      prisma,
      batch: async (steps) => {
        if (steps.length === 1) await steps[0]!(on(db));
        else await db.transaction(async (tx) => { for (const step of steps) await step(on(tx)); });
      },
      ping: () => withTimeout(db.query('SELECT 1').then(() => undefined), 2_000, 'PGlite did not answer within 2 s'),
      releaseHeap: () => db.releaseHeap(),
      close: async () => { await prisma.$disconnect(); await db.close(); await releaseLock(); },
    };
  } catch (err) {
    await db.close().catch(() => undefined);
    await releaseLock();
    throw err;
  }
}

function pgDriver(client: pg.PoolClient): SqlDriver {
  return {
    exec: async (sql) => { await client.query(sql); },
    query: async <T>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as T[],
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
