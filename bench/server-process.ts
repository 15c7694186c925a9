// mqota as a separate process, the way `npm start` runs it: `node bin/start.js` (the compiled build
// when current, else the sources through tsx)
// with its configuration in the environment. Its memory and CPU time are read from /proc, so
// nothing of the benchmark is counted in them; server-probe.mjs, preloaded, reports its
// event-loop delay and its memory after garbage collection when asked.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { collectLines, freePort, withoutMqotaSettings } from '../tests/support/child-process.js';
import { processCpuMs, threadCpuByName } from './machine.js';
import { START_NODE_ARGS } from '../src/heap-tuning.js';

export interface ServerOptions {
  repoRoot: string;
  dataDir: string;
  certsDir: string;
  /** The server CA, to verify the HTTPS API. */
  caPem: string;
  adminToken: string;
  /** PostgreSQL; PGlite in dataDir when absent. */
  databaseUrl?: string;
  /** Write a V8 CPU profile of the whole run there (node --cpu-prof). */
  cpuProfileDir?: string;
  /** Extra environment, e.g. allocator settings to try (MALLOC_ARENA_MAX=2). */
  env?: Record<string, string>;
  /** Extra node/V8 options, e.g. heap settings to try (--max-semi-space-size=32). */
  nodeArgs?: string[];
}

/** Event-loop delay in the server over a phase, ms (server-probe.mjs). */
export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** Garbage-collector pauses over a phase (server-probe.mjs). */
export interface GcPauses {
  minor: { count: number; totalMs: number; maxMs: number };
  major: { count: number; totalMs: number; maxMs: number };
}

/** After full garbage collections in the server (server-probe.mjs). */
export interface MemorySample {
  /** VmRSS, bytes. */
  rss: number;
  /** VmRSS read as soon as the collections ended, when `rss` was read after a settle. */
  rssAtOnce?: number;
  heapUsed: number;
  heapTotal: number;
  /** C++ objects bound to JS (buffers, TLS sockets' native state, WASM memory). */
  external: number;
  arrayBuffers: number;
}

interface ProbeLine {
  loopDelay: LoopDelay;
  gcPauses: GcPauses;
  memory: Omit<MemorySample, 'rss'>;
}

export interface ServerLog {
  /** Lines at warn or above, counted by message. */
  warnings: Record<string, number>;
  /** The first log line of each warning, so a failed run says what failed. */
  warningSamples: Record<string, string>;
  /** The last lines of stderr, for a server that failed. */
  stderrTail: string[];
}

const PROBE = fileURLToPath(new URL('./server-probe.mjs', import.meta.url));
const PROBE_TAG = 'mqota-bench-probe'; // written by server-probe.mjs
const PROBE_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 180_000; // a first start on a busy 2-core machine
const STOP_TIMEOUT_MS = 15_000;
const PINO_WARN = 40;

export class ServerProcess {
  private static readonly running = new Set<ServerProcess>();
  readonly log: ServerLog = { warnings: {}, warningSamples: {}, stderrTail: [] };
  private exited: Promise<number | null>;
  private probeWaiter: ((line: ProbeLine) => void) | null = null;
  private lastPeakRssBytes = 0;

  private constructor(
    private readonly child: ChildProcess,
    readonly publicUrl: string,
    readonly mqttPort: number,
  ) {
    // Should the benchmark die without stop(), the server must not outlive it.
    const onExit = () => child.kill('SIGTERM');
    process.once('exit', onExit);
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      ServerProcess.running.delete(this);
      process.off('exit', onExit);
      resolve(code ?? (signal ? null : 0));
    }));
    ServerProcess.running.add(this);
    this.collectLogs();
  }

  /**
   * The allocator the server gets, as `npm start` chooses it (bin/start.sh): jemalloc where it is
   * installed, unless the extra environment says MQOTA_ALLOCATOR=glibc or sets LD_PRELOAD itself.
   */
  static allocator(repoRoot: string, extraEnv: Record<string, string> = {}): { name: string; env: Record<string, string> } {
    if (extraEnv.LD_PRELOAD !== undefined) return { name: `LD_PRELOAD=${extraEnv.LD_PRELOAD}`, env: {} };
    if (extraEnv.MQOTA_ALLOCATOR === 'glibc') return { name: 'glibc malloc (MQOTA_ALLOCATOR=glibc)', env: {} };
    const [lib, conf = ''] = execFileSync('sh', [path.join(repoRoot, 'bin', 'jemalloc.sh')], { encoding: 'utf8' }).trim().split('\n');
    if (!lib) return { name: 'glibc malloc (libjemalloc2 is not installed)', env: {} };
    // As bin/start.sh: its settings unless the run gives its own.
    return { name: `jemalloc (${lib}, ${extraEnv.MALLOC_CONF ?? conf}), as npm start`, env: { LD_PRELOAD: lib, MALLOC_CONF: conf } };
  }

  static async start(opts: ServerOptions): Promise<ServerProcess> {
    const [mqttPort, httpsPort] = [await freePort(), await freePort()];
    const publicUrl = `https://127.0.0.1:${httpsPort}`;
    const env: NodeJS.ProcessEnv = {
      ...withoutMqotaSettings(process.env),
      MQOTA_DATA_DIR: opts.dataDir,
      MQOTA_CERTS_DIR: opts.certsDir,
      MQOTA_HOST: '127.0.0.1',
      MQTT_PORT: String(mqttPort),
      HTTPS_PORT: String(httpsPort),
      MQOTA_HOSTNAMES: '127.0.0.1',
      PUBLIC_URL: publicUrl,
      MQOTA_ADMIN_TOKEN: opts.adminToken,
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'json',
      ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}),
      ...ServerProcess.allocator(opts.repoRoot, opts.env).env,
      ...opts.env,
    };
    const profile = opts.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfileDir}`] : [];
    // As `npm start` (bin/start.sh): node's flags (src/heap-tuning.ts; a later --server-node-arg overrides them) and the allocator.
    const child = spawn(process.execPath, [...profile, ...START_NODE_ARGS, ...(opts.nodeArgs ?? []), '--expose-gc', '--import', PROBE, 'bin/start.js'], {
      cwd: opts.repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new ServerProcess(child, publicUrl, mqttPort);
    try {
      await server.waitUntilHealthy(opts.caPem);
    } catch (err) {
      await server.stop();
      throw new Error(`${(err as Error).message}\n${server.log.stderrTail.join('\n')}`);
    }
    return server;
  }

  /** For an interrupted benchmark. */
  static async stopAll(): Promise<void> {
    await Promise.all([...ServerProcess.running].map((s) => s.stop()));
  }

  /** Whether the server process has ended (crashed, when the benchmark did not stop it). */
  get hasExited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /**
   * The server's event-loop delay since the previous probe, and its memory once it has collected
   * its garbage: what it really holds. `settleMs`: RSS is read that much later, once what the
   * collections freed has gone back (machine.ts MEMORY_SETTLE_MS); `rssAtOnce` is the reading before.
   */
  async probe(opts: { settleMs?: number } = {}): Promise<{ loopDelay: LoopDelay; gcPauses: GcPauses; memory: MemorySample }> {
    const line = new Promise<ProbeLine>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server did not answer the probe')), PROBE_TIMEOUT_MS);
      this.probeWaiter = (m) => { clearTimeout(timer); resolve(m); };
    });
    this.child.kill('SIGUSR2');
    const { loopDelay, gcPauses, memory: { heapUsed, heapTotal, external, arrayBuffers } } = await line;
    this.peakRssBytes();
    if (!opts.settleMs) return { loopDelay, gcPauses, memory: { rss: this.rssBytes(), heapUsed, heapTotal, external, arrayBuffers } };
    const rssAtOnce = this.rssBytes();
    await sleep(opts.settleMs);
    return { loopDelay, gcPauses, memory: { rss: this.rssBytes(), rssAtOnce, heapUsed, heapTotal, external, arrayBuffers } };
  }

  /** Resident set size now (VmRSS), in bytes. */
  rssBytes(): number {
    return this.procStatus('VmRSS');
  }

  /** The highest resident set size so far (VmHWM), in bytes; the last one seen once the server is gone. */
  peakRssBytes(): number {
    try {
      this.lastPeakRssBytes = this.procStatus('VmHWM');
    } catch {
      // exited: keep the last reading
    }
    return this.lastPeakRssBytes;
  }

  /** Its CPU so far by kind of thread (machine.ts). */
  threadCpuMs(): Map<string, number> {
    return threadCpuByName(this.pid);
  }

  /** CPU time used so far, user + system, in milliseconds. */
  cpuMs(): number {
    return processCpuMs(this.pid);
  }

  /** SIGTERM (mqota drains its writes and closes), SIGKILL if it does not exit in time. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const code = await Promise.race([this.exited, sleep(STOP_TIMEOUT_MS, 'timeout' as const)]);
    if (code === 'timeout') {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }

  private procStatus(field: 'VmRSS' | 'VmHWM'): number {
    const match = readFileSync(`/proc/${this.pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    if (!match) throw new Error(`no ${field} in /proc/${this.pid}/status`);
    return Number(match[1]) * 1024;
  }

  private async waitUntilHealthy(caPem: string): Promise<void> {
    const dispatcher = new Agent({ connect: { ca: caPem } });
    const deadline = Date.now() + START_TIMEOUT_MS;
    try {
      while (Date.now() < deadline) {
        if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`mqota exited during start-up (${this.child.exitCode ?? this.child.signalCode})`);
        try {
          const res = await request(`${this.publicUrl}/healthz`, { dispatcher });
          await res.body.dump();
          if (res.statusCode === 200) return;
        } catch {
          // not listening yet
        }
        await sleep(100);
      }
      throw new Error(`mqota was not healthy within ${START_TIMEOUT_MS / 1000} s`);
    } finally {
      await dispatcher.close();
    }
  }

  private collectLogs(): void {
    collectLines(this.child.stdout!, (line) => {
      let entry: { level?: number; msg?: string };
      try { entry = JSON.parse(line); } catch { entry = { level: PINO_WARN, msg: line }; }
      if ((entry.level ?? 0) < PINO_WARN) return;
      const key = entry.msg ?? '(no message)';
      this.log.warnings[key] = (this.log.warnings[key] ?? 0) + 1;
      this.log.warningSamples[key] ??= line.slice(0, 4_000);
    });
    collectLines(this.child.stderr!, (line) => {
      if (line.includes(PROBE_TAG) && this.probeWaiter) {
        this.probeWaiter(JSON.parse(line));
        this.probeWaiter = null;
        return;
      }
      this.log.stderrTail.push(line);
      if (this.log.stderrTail.length > 20) this.log.stderrTail.shift();
    });
  }
}
