// A real PostgreSQL for tests: MQOTA_TEST_DATABASE_URL when CI provides a server, otherwise a
// throwaway cluster from the local PostgreSQL binaries. Each call gets a database of its own.
import pg from 'pg';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster.js';

let cluster: Promise<PostgresCluster> | null = null;

/** A fresh, empty database on a real PostgreSQL server; returns its URL. */
export async function freshPostgresDatabase(): Promise<string> {
  const adminUrl = process.env.MQOTA_TEST_DATABASE_URL ?? (await (cluster ??= startPostgresCluster({ fsync: false }))).adminUrl;
  const name = `mqota_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}
