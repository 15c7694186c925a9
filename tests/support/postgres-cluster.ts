// A throwaway PostgreSQL cluster from the local PostgreSQL binaries, for tests and benchmarks:
// initdb in a temp dir, the postmaster on a free 127.0.0.1 port, durable by default (fsync on, as
// in production; tests turn it off). stop() shuts it down (fast shutdown) and deletes it.
// Run as root, it belongs to the postgres user (initdb refuses root); the postmaster is our
// direct child either way, so a signal reaches it (through runuser it would not).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

const BIN_ROOT = '/usr/lib/postgresql';
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

export interface PostgresCluster {
  /** Superuser URL of the `postgres` database. */
  adminUrl: string;
  stop(): Promise<void>;
}

export function postgresBinaries(): string | null {
  const versions = existsSync(BIN_ROOT) ? readdirSync(BIN_ROOT).filter((v) => existsSync(path.join(BIN_ROOT, v, 'bin', 'postgres'))) : [];
  if (!versions.length) return null;
  return path.join(BIN_ROOT, versions.sort((a, b) => Number(b) - Number(a))[0], 'bin');
}

export async function startPostgresCluster(opts: { fsync?: boolean } = {}): Promise<PostgresCluster> {
  const bin = postgresBinaries();
  if (!bin) throw new Error(`no PostgreSQL binaries under ${BIN_ROOT}`);
  const owner = process.getuid?.() === 0 ? { uid: idOf('-u'), gid: idOf('-g') } : {};
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-pg-'));
  await chmod(dir, 0o777);
  const dataDir = path.join(dir, 'data');
  execFileSync(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8'], { stdio: 'pipe', ...owner });
  const port = await freePort();
  const settings = ['-c', 'listen_addresses=127.0.0.1', ...(opts.fsync === false ? ['-c', 'fsync=off'] : [])];
  const postmaster = spawn(path.join(bin, 'postgres'), ['-D', dataDir, '-p', String(port), '-k', dir, ...settings], {
    stdio: 'ignore', ...owner,
  });
  postmaster.unref(); // stop() or the exit hook ends it; it must not keep its parent alive
  const exited = new Promise<void>((resolve) => postmaster.once('exit', () => resolve()));
  // Should this process die without stop(), the cluster must not outlive it.
  const onExit = () => { postmaster.kill('SIGINT'); rmSync(dir, { recursive: true, force: true }); };
  process.once('exit', onExit);
  const stop = async () => {
    if (postmaster.exitCode === null && postmaster.signalCode === null) {
      postmaster.kill('SIGINT'); // fast shutdown: disconnects clients, no waiting for them
      const stopped = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS, false)]);
      if (!stopped) {
        postmaster.kill('SIGKILL');
        await exited;
      }
    }
    await rm(dir, { recursive: true, force: true });
    process.off('exit', onExit);
  };
  const adminUrl = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    try {
      const client = new pg.Client(adminUrl);
      await client.connect();
      await client.end();
      return { adminUrl, stop };
    } catch {
      if (postmaster.exitCode !== null) break;
      await sleep(100);
    }
  }
  await stop();
  throw new Error('the throwaway PostgreSQL cluster did not start');
}

function idOf(flag: '-u' | '-g'): number {
  return Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    }).on('error', reject);
  });
}
