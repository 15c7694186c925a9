// The databases a run covers: PGlite (mqota's default, in the server's data dir) and PostgreSQL,
// from MQOTA_BENCH_DATABASE_URL or MQOTA_TEST_DATABASE_URL when set, else a throwaway local
// cluster started once per run. Each server gets a fresh database, dropped afterwards.
import pg from 'pg';
import { postgresBinaries, startPostgresCluster, type PostgresCluster } from '../tests/support/postgres-cluster.js';

export type DatabaseKind = 'pglite' | 'postgres';

export const DATABASE_KINDS: DatabaseKind[] = ['pglite', 'postgres'];

export interface BenchDatabase {
  kind: DatabaseKind;
  /** DATABASE_URL for the server; none for PGlite. */
  url?: string;
  /** For the report, e.g. "PostgreSQL 15.8 (throwaway local cluster)". */
  description: string;
  drop(): Promise<void>;
}

export class Databases {
  private cluster: Promise<PostgresCluster> | null = null;

  private static configuredUrl(): string | undefined {
    return process.env.MQOTA_BENCH_DATABASE_URL ?? process.env.MQOTA_TEST_DATABASE_URL;
  }

  /** Why PostgreSQL cannot be benchmarked here, or null when it can. */
  postgresUnavailable(): string | null {
    if (Databases.configuredUrl() || postgresBinaries()) return null;
    return 'neither MQOTA_BENCH_DATABASE_URL/MQOTA_TEST_DATABASE_URL is set nor are PostgreSQL binaries installed';
  }

  async open(kind: DatabaseKind): Promise<BenchDatabase> {
    if (kind === 'pglite') return { kind, description: 'PGlite (embedded)', drop: async () => undefined };
    const external = Databases.configuredUrl();
    const adminUrl = external ?? (await (this.cluster ??= startPostgresCluster())).adminUrl;
    const name = `mqota_bench_${process.pid}_${Date.now().toString(36)}`;
    await query(adminUrl, `CREATE DATABASE "${name}"`);
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    const version = String((await query(adminUrl, 'SHOW server_version')).rows[0].server_version).split(' ')[0];
    return {
      kind,
      url: url.toString(),
      description: `PostgreSQL ${version} (${external ? new URL(external).host : 'throwaway local cluster'})`,
      drop: () => query(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).then(() => undefined),
    };
  }

  async close(): Promise<void> {
    const cluster = this.cluster;
    this.cluster = null;
    if (cluster) await (await cluster.catch(() => null))?.stop();
  }
}

async function query(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}
