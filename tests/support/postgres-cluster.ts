// A throwaway PostgreSQL cluster from the local PostgreSQL binaries, for tests and benchmarks:
// initdb in a temp dir, the postmaster on a free 127.0.0.1 port, durable by default (fsync on, as
// in production; tests turn it off). stop() shuts it down (fast shutdown) and deletes it.
// Run as root, it belongs to the postgres user (initdb refuses root); the postmaster is our
// direct child either way, so a signal reaches it (through runuser it would not). halt() and
// resume() stop and restart the server on the same data and port, for outage tests.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

const BIN_ROOT = '/usr/lib/postgresql';
const SETPRIV = '/usr/bin/setpriv';
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

export interface PostgresCluster {
  /** Superuser URL of the `postgres` database. */
  adminUrl: string;
  /** The temp folder that holds the cluster (deleted by stop() or the exit hook). */
  dir: string;
  /** Shuts the server down and deletes the cluster. */
  stop(): Promise<void>;
  /** Shuts the server down (fast shutdown) and keeps its data, as an outage would. */
  halt(): Promise<void>;
  /** Starts a halted server again on the same data and port; resolves once it accepts connections. */
  resume(): Promise<void>;
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
  const adminUrl = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  let postmaster: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const launch = () => {
    const postgres = [path.join(bin, 'postgres'), '-D', dataDir, '-p', String(port), '-k', dir, ...settings];
    // setpriv (util-linux) asks the kernel for SIGINT, a fast shutdown, when this process dies,
    // killed included, where no exit hook runs; it then execs the postmaster in its own place.
    const argv = existsSync(SETPRIV) ? [SETPRIV, '--pdeathsig', 'INT', '--', ...postgres] : postgres;
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', ...owner });
    child.unref(); // stop() or the exit hook ends it; it must not keep its parent alive
    exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    postmaster = child;
    return child;
  };
  const running = () => postmaster !== null && postmaster.exitCode === null && postmaster.signalCode === null;
  // Should this process exit without stop(), the cluster must not outlive it (killed: setpriv above).
  const onExit = () => { postmaster?.kill('SIGINT'); rmSync(dir, { recursive: true, force: true }); };
  process.once('exit', onExit);
  const halt = async () => {
    if (running()) {
      postmaster!.kill('SIGINT'); // fast shutdown: disconnects clients, no waiting for them
      const stopped = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS, false)]);
      if (!stopped) {
        postmaster!.kill('SIGKILL');
        await exited;
      }
    }
  };
  const stop = async () => {
    await halt();
    await rm(dir, { recursive: true, force: true });
    process.off('exit', onExit);
  };
  const resume = async () => {
    if (running()) return;
    const child = launch();
    if (!(await accepting(adminUrl, () => child.exitCode !== null))) throw new Error('the throwaway PostgreSQL cluster did not start again');
  };
  const child = launch();
  if (await accepting(adminUrl, () => child.exitCode !== null)) return { adminUrl, dir, stop, halt, resume };
  await stop();
  throw new Error('the throwaway PostgreSQL cluster did not start');
}

/** Whether a server at `url` accepts a connection now. */
export async function accepts(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Waits until the server accepts a connection; false when it exited or did not within START_TIMEOUT_MS. */
async function accepting(url: string, exited: () => boolean): Promise<boolean> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await accepts(url)) return true;
    if (exited()) return false;
    await sleep(100);
  }
  return false;
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
