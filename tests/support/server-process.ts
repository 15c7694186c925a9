// mqota as a child process, the way it runs in production (`node --import tsx src/main.ts`, its
// configuration in the environment), for tests that must kill it: SIGKILL at any moment, then a
// start on the same data, certificates and ports. Nothing of the test runs in its process.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { collectLines, freePort, withoutMqotaSettings } from './child-process.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const START_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 15_000;
const STDERR_LINES = 40;

export interface ServerProcessOptions {
  dataDir: string;
  certsDir: string;
  /** The server CA, to verify the HTTPS API. */
  caPem: string;
  adminToken: string;
  /** PostgreSQL; PGlite in dataDir when absent. */
  databaseUrl?: string;
  /** More settings (MQOTA_ROLLOUT_TICK_MS, LOG_LEVEL, ...). */
  env?: Record<string, string>;
}

/** Every server a test started, so a failed test's `after` (or the exit hook) can end them all. */
const running = new Set<ChildProcess>();
process.once('exit', () => { for (const child of running) child.kill('SIGKILL'); });

export class ServerProcess {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  /** The last lines the server wrote to stderr and its warnings and errors, for a failure message. */
  readonly logTail: string[] = [];

  private constructor(
    private readonly opts: ServerProcessOptions,
    readonly mqttPort: number,
    readonly httpsPort: number,
  ) {}

  get publicUrl(): string {
    return `https://127.0.0.1:${this.httpsPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Picks free ports once (kept across restarts, as devices know them), starts and waits for /healthz 200. */
  static async start(opts: ServerProcessOptions): Promise<ServerProcess> {
    const server = new ServerProcess(opts, await freePort(), await freePort());
    await server.launch();
    return server;
  }

  /** Starts again on the same data and ports; resolves once /healthz answers 200. */
  async launch(): Promise<void> {
    if (this.child) throw new Error('the server is already running');
    const env: NodeJS.ProcessEnv = {
      ...withoutMqotaSettings(process.env),
      MQOTA_DATA_DIR: this.opts.dataDir,
      MQOTA_CERTS_DIR: this.opts.certsDir,
      MQOTA_HOST: '127.0.0.1',
      MQTT_PORT: String(this.mqttPort),
      HTTPS_PORT: String(this.httpsPort),
      MQOTA_HOSTNAMES: '127.0.0.1',
      PUBLIC_URL: this.publicUrl,
      MQOTA_ADMIN_TOKEN: this.opts.adminToken,
      LOG_LEVEL: process.env.MQOTA_TEST_LOG ?? 'warn',
      LOG_FORMAT: 'json',
      ...(this.opts.databaseUrl ? { DATABASE_URL: this.opts.databaseUrl } : {}),
      ...this.opts.env,
    };
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    running.add(child);
    this.exited = new Promise((resolve) => child.once('exit', () => { running.delete(child); resolve(); }));
    for (const stream of [child.stdout!, child.stderr!]) collectLines(stream, (line) => this.keep(line));
    try {
      await this.waitUntilHealthy();
    } catch (err) {
      await this.kill();
      throw new Error(`${(err as Error).message}; server output:\n${this.logTail.join('\n')}`);
    }
  }

  /** SIGKILL: no flush, no close, nothing the process could still do. Resolves once it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await this.exited;
    this.child = null;
  }

  /** SIGTERM (mqota drains and closes), SIGKILL if it does not exit in time. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const stopped = await Promise.race([this.exited.then(() => true), sleep(STOP_TIMEOUT_MS, false)]);
      if (!stopped) child.kill('SIGKILL');
    }
    await this.exited;
    this.child = null;
  }

  /** GET /healthz: status code and parsed body (null when it is not JSON). */
  async health(): Promise<{ statusCode: number; body: Record<string, unknown> | null }> {
    const dispatcher = new Agent({ connect: { ca: this.opts.caPem } });
    try {
      const res = await request(`${this.publicUrl}/healthz`, { dispatcher, headersTimeout: 30_000, bodyTimeout: 30_000 });
      const text = await res.body.text();
      let body: Record<string, unknown> | null = null;
      try { body = JSON.parse(text); } catch { /* not JSON */ }
      return { statusCode: res.statusCode, body };
    } finally {
      await dispatcher.close();
    }
  }

  private async waitUntilHealthy(): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const child = this.child!;
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`mqota exited during start-up (${child.exitCode ?? child.signalCode})`);
      try {
        if ((await this.health()).statusCode === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`mqota was not healthy within ${START_TIMEOUT_MS / 1000} s`);
  }

  private keep(line: string): void {
    let level = 50;
    try { level = (JSON.parse(line) as { level?: number }).level ?? 50; } catch { /* stderr text */ }
    if (level < 40) return;
    this.logTail.push(line.length > 600 ? `${line.slice(0, 600)}…` : line);
    if (this.logTail.length > STDERR_LINES) this.logTail.shift();
  }
}

/** Kills every server process still running (for an `after` hook of a test that failed half-way). */
export async function killAllServers(): Promise<void> {
  for (const child of running) child.kill('SIGKILL');
  while (running.size) await sleep(20);
}
