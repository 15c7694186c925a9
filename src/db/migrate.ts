// Applies prisma/migrations/*/migration.sql at start-up, recording them in `_prisma_migrations`
// exactly as `prisma migrate deploy` does (same table, same sha256 checksum of the file), so a
// database migrated here can later be managed by the Prisma CLI where its engine is available.
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../logger.js';

/** Multi-statement SQL through the underlying driver (Prisma's raw queries take one statement). */
export interface SqlDriver {
  exec(sql: string): Promise<void>;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
}

export interface Migration { name: string; sql: string; checksum: string }

export class MigrationError extends Error {}

// The DDL of Prisma's own bookkeeping table (schema-engine, postgres flavour).
const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id"                  VARCHAR(36) PRIMARY KEY NOT NULL,
  "checksum"            VARCHAR(64) NOT NULL,
  "finished_at"         TIMESTAMPTZ,
  "migration_name"      VARCHAR(255) NOT NULL,
  "logs"                TEXT,
  "rolled_back_at"      TIMESTAMPTZ,
  "started_at"          TIMESTAMPTZ NOT NULL DEFAULT now(),
  "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`;

// Prisma's migrate advisory lock key, so mqota and `prisma migrate deploy` never run together.
const ADVISORY_LOCK_KEY = 72707369;

/** prisma/migrations of this checkout or install, found from this module whether it runs from src/ or dist/. */
export const MIGRATIONS_DIR = findUp(path.dirname(fileURLToPath(import.meta.url)), path.join('prisma', 'migrations'));

function findUp(from: string, relative: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, relative))) return path.join(dir, relative);
    if (path.dirname(dir) === dir) return path.join(from, relative);
  }
}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  return Promise.all(names.map(async (name) => {
    const sql = await readFile(path.join(dir, name, 'migration.sql'), 'utf8');
    return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
  }));
}

/** Applies pending migrations in order; returns the names applied. Refuses to start on a failed or edited migration. */
export async function migrate(driver: SqlDriver, logger: Logger, opts: { lock: boolean; dir?: string }): Promise<string[]> {
  const migrations = await readMigrations(opts.dir);
  if (opts.lock) await driver.query('SELECT pg_advisory_lock($1)', [ADVISORY_LOCK_KEY]);
  try {
    await driver.exec(MIGRATIONS_TABLE);
    const rows = await driver.query<{ migration_name: string; checksum: string; finished_at: Date | null; rolled_back_at: Date | null }>(
      'SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations"');
    const applied = new Map(rows.filter((r) => r.rolled_back_at === null).map((r) => [r.migration_name, r]));
    const done: string[] = [];
    for (const m of migrations) {
      const row = applied.get(m.name);
      if (row) {
        if (row.finished_at === null) throw new MigrationError(`migration ${m.name} failed earlier; resolve it (prisma migrate resolve) before starting`);
        if (row.checksum !== m.checksum) logger.warn({ migration: m.name }, 'applied migration was edited since; keeping the database as it is');
        continue;
      }
      const id = randomUUID();
      await driver.query('INSERT INTO "_prisma_migrations" (id, checksum, migration_name) VALUES ($1, $2, $3)', [id, m.checksum, m.name]);
      try {
        // One transaction per migration, as the schema engine does for PostgreSQL.
        await driver.exec(`BEGIN;\n${m.sql}\nCOMMIT;`);
      } catch (err) {
        await driver.exec('ROLLBACK').catch(() => undefined);
        await driver.query('UPDATE "_prisma_migrations" SET logs = $2 WHERE id = $1', [id, String((err as Error).message)]);
        throw new MigrationError(`migration ${m.name} failed: ${(err as Error).message}`);
      }
      await driver.query('UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1', [id]);
      logger.info({ migration: m.name }, 'migration applied');
      done.push(m.name);
    }
    return done;
  } finally {
    if (opts.lock) await driver.query('SELECT pg_advisory_unlock($1)', [ADVISORY_LOCK_KEY]);
  }
}
