// The anchors `npm run bench -- --compare` measures mqota against: Mosquitto (MQTT over mutual TLS,
// the same server certificate and device CA as mqota) and nginx (the same image file and
// certificate over HTTPS), run from Debian's packages as unprivileged child processes with their
// configuration in the run's temp dir, listening on 127.0.0.1 only. Absent binaries are reported,
// not installed: `sudo apt-get install mosquitto nginx-light wrk`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pkiPaths } from '../certs/pki.js';
import { collectLines, freePort } from '../tests/support/child-process.js';
import { processCpuMs } from './machine.js';

const START_TIMEOUT_MS = 10_000;

/** The path of an executable, or null when it is not installed (Debian puts the daemons in /usr/sbin). */
export function findBinary(name: string): string | null {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin', ...(process.env.PATH ?? '').split(':')]) {
    const file = path.join(dir, name);
    if (spawnSync('test', ['-x', file]).status === 0) return file;
  }
  return null;
}

/** The first line of a binary's version output, for the report. */
export function versionOf(file: string, args: string[]): string {
  const out = spawnSync(file, args, { encoding: 'utf8' });
  return `${out.stdout ?? ''}${out.stderr ?? ''}`.split('\n').find((l) => /\d+\.\d+/.test(l))?.trim() ?? 'unknown version';
}

export class AnchorProcess {
  readonly stderr: string[] = [];
  private readonly exited: Promise<void>;

  private constructor(readonly name: string, private readonly child: ChildProcess, readonly port: number) {
    const onExit = () => child.kill('SIGKILL');
    process.once('exit', onExit);
    this.exited = new Promise((resolve) => child.once('exit', () => { process.off('exit', onExit); resolve(); }));
    collectLines(child.stderr!, (line) => { this.stderr.push(line); if (this.stderr.length > 20) this.stderr.shift(); });
    collectLines(child.stdout!, () => undefined);
  }

  static async spawn(name: string, file: string, args: string[], port: number, env?: NodeJS.ProcessEnv): Promise<AnchorProcess> {
    const anchor = new AnchorProcess(name, spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env }), port);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await listening(port))) {
      if (anchor.child.exitCode !== null || Date.now() > deadline) {
        await anchor.stop();
        throw new Error(`${name} did not start: ${anchor.stderr.join('\n')}`);
      }
      await sleep(50);
    }
    return anchor;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The process's resident set size, bytes. */
  rssBytes(): number {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : 0;
    } catch {
      return 0;
    }
  }

  cpuMs(): number {
    return processCpuMs(this.pid);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const done = await Promise.race([this.exited.then(() => true), sleep(5_000, false)]);
    if (!done) { this.child.kill('SIGKILL'); await this.exited; }
  }
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Mosquitto with mqota's broker settings that matter here: mutual TLS with the server certificate,
 * device certificates verified against the device CA, the certificate's CN as the client's name,
 * persistent sessions, no persistence to disk (mqota keeps sessions in memory too).
 */
export async function startMosquitto(opts: { binary: string; workDir: string; certsDir: string }): Promise<AnchorProcess> {
  const dir = path.join(opts.workDir, 'mosquitto');
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const pki = pkiPaths(opts.certsDir);
  const conf = path.join(dir, 'mosquitto.conf');
  await writeFile(conf, [
    // As root it would switch to the `mosquitto` user, who cannot read the run's 0700 certificate folder.
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    'per_listener_settings false',
    'persistence false',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'max_inflight_messages 20',
    'max_queued_messages 1000',
    `listener ${port} 127.0.0.1`,
    `certfile ${pki.serverCert}`,
    `keyfile ${pki.serverKey}`,
    `cafile ${pki.deviceCaCert}`,
    'require_certificate true',
    'use_identity_as_username true',
    'allow_anonymous false',
    '',
  ].join('\n'));
  return AnchorProcess.spawn('mosquitto', opts.binary, ['-c', conf], port);
}

/**
 * Plain Aedes behind a Node mutual-TLS server (bench/bare-aedes.mjs), with the node flags and the
 * allocator mqota's bench server gets: the stack without mqota.
 */
export async function startBareAedes(opts: { repoRoot: string; certsDir: string; nodeArgs: readonly string[]; env: Record<string, string> }): Promise<AnchorProcess> {
  const port = await freePort();
  const pki = pkiPaths(opts.certsDir);
  const script = path.join(opts.repoRoot, 'bench', 'bare-aedes.mjs');
  return AnchorProcess.spawn('Aedes', process.execPath,
    [...opts.nodeArgs, script, '--port', String(port), '--cert', pki.serverCert, '--key', pki.serverKey, '--ca', pki.deviceCaCert],
    port, { ...process.env, ...opts.env });
}

/**
 * Mosquitto on the configuration `mqota broker config mosquitto` wrote into `configDir` (issue
 * #10's external broker mode: mqota's ACL, CRL and certificates), which names the port. A wrapper
 * adds what only the run decides, as tests/support/mosquitto.ts does: logging to stderr, the
 * persistence folder, `user root` when run as root; then includes the generated file.
 */
export async function startGeneratedMosquitto(opts: { binary: string; workDir: string; configDir: string; port: number }): Promise<AnchorProcess> {
  const dir = path.join(opts.workDir, `mosquitto-${opts.port}`);
  await mkdir(dir, { recursive: true });
  const wrapper = path.join(dir, 'run.conf');
  await writeFile(wrapper, [
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    `persistence_location ${dir}/`,
    `include_dir ${opts.configDir}`,
    '',
  ].join('\n'));
  return AnchorProcess.spawn('mosquitto', opts.binary, ['-c', wrapper], opts.port);
}

/**
 * nginx serving `<root>/firmware/*.bin` over HTTPS with mqota's server certificate and, like
 * mqota's image route with a token, a bearer check (a string comparison) on every request.
 * `workers`: nginx processes; 'auto' is one per core, Debian's default.
 */
export async function startNginx(opts: { binary: string; workDir: string; certsDir: string; root: string; token: string; workers: number | 'auto' }): Promise<AnchorProcess> {
  const dir = path.join(opts.workDir, 'nginx');
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const pki = pkiPaths(opts.certsDir);
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(conf, `
daemon off;
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes ${opts.workers};
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  types { application/octet-stream bin; }
  sendfile on;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${pki.serverCert};
    ssl_certificate_key ${pki.serverKey};
    ssl_client_certificate ${pki.deviceCaCert};
    ssl_verify_client optional;
    location /firmware/ {
      if ($http_authorization != "Bearer ${opts.token}") { return 401; }
      root ${opts.root};
    }
  }
}
`);
  return AnchorProcess.spawn('nginx', opts.binary, ['-c', conf, '-e', 'stderr'], port);
}
