// A throwaway Mosquitto (Debian's package) for tests, started on the configuration
// `mqota broker config mosquitto` wrote: a wrapper file adds what only the test decides (logging
// to stderr, the persistence folder, `user root` when run as root, since Mosquitto otherwise drops
// to the mosquitto user, who cannot read the 0600 server key), then includes the generated one.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { eventually } from './eventually.js';

export const MOSQUITTO = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';

export interface TestMosquitto {
  port: number;
  /** Everything it logged so far. */
  log(): string;
  /** SIGHUP: Mosquitto re-reads its configuration (the ACL, among others). */
  reload(): void;
  /** Stops it (its sessions and retained messages saved) and starts it again on the same port. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (the generated configuration needs it before Mosquitto starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Starts Mosquitto on `configDir`/mosquitto.conf (which names the port); resolves once it accepts connections. */
export async function startMosquitto(configDir: string, port: number): Promise<TestMosquitto> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'mqota-mosquitto-'));
  const wrapper = path.join(home, 'test.conf');
  await writeFile(wrapper, [
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'connection_messages true',
    `persistence_location ${home}/`,
    `include_dir ${configDir}`,
    '',
  ].join('\n'));
  let output = '';
  let child: ChildProcess;
  let exited: Promise<void>;

  const start = async () => {
    child = spawn(MOSQUITTO, ['-c', wrapper], { cwd: home, stdio: ['ignore', 'pipe', 'pipe'] });
    exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}):\n${output}`);
      return accepts(port);
    }, 30_000, `mosquitto listening on ${port}`);
  };
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    port,
    log: () => output,
    reload: () => { child.kill('SIGHUP'); },
    async restart() { await stop(); await start(); },
    async close() { await stop(); await rm(home, { recursive: true, force: true }); },
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}
