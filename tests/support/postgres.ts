// A real PostgreSQL for tests: MQOTA_TEST_DATABASE_URL when CI provides a server, otherwise a
// throwaway cluster from the local PostgreSQL binaries. Each call gets a database of its own.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

let cluster: Promise<string> | null = null;

function pgBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  if (!versions.length) throw new Error('PostgreSQL binaries not found: install postgresql or set MQOTA_TEST_DATABASE_URL');
  return path.join(root, versions[0], 'bin');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    }).on('error', reject);
  });
}

async function startCluster(): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mqota-pg-'));
  chmodSync(dir, 0o777);
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  // initdb refuses to run as root; the cluster belongs to the postgres user then.
  const run = (cmd: string, args: string[]) => asRoot
    ? execFileSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { stdio: 'pipe' })
    : execFileSync(cmd, args, { stdio: 'pipe' });
  run(path.join(pgBin(), 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8']);
  const server = spawn(asRoot ? 'runuser' : path.join(pgBin(), 'postgres'),
    [...(asRoot ? ['-u', 'postgres', '--', path.join(pgBin(), 'postgres')] : []),
      '-D', dataDir, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'],
    { stdio: 'ignore', detached: false });
  // The cluster lives as long as the test process, and must not keep it alive on its own.
  server.unref();
  process.once('exit', () => { server.kill('SIGINT'); rmSync(dir, { recursive: true, force: true }); });
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  for (let i = 0; i < 100; i++) {
    try { const c = new pg.Client(url); await c.connect(); await c.end(); return url; } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  throw new Error('throwaway PostgreSQL did not start');
}

/** A fresh, empty database on a real PostgreSQL server; returns its URL. */
export async function freshPostgresDatabase(): Promise<string> {
  const adminUrl = process.env.MQOTA_TEST_DATABASE_URL ?? await (cluster ??= startCluster());
  const name = `mqota_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}
