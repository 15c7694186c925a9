// One database's run: a fresh server process, firmware 1.0.0, warm-up, the fleet connecting and
// announcing, announces again with everyone online, memory, then a rollout of 1.1.0 to everyone
// and, optionally, every device reporting success until the API shows the rollout completed.
// Around each phase the server is probed (server-probe.mjs) for its CPU time and event-loop delay.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient } from '../src/cli/api-client.js';
import { now } from './clock.js';
import { MEMORY_SETTLE_MS, machineBusyMs, treeCpuMs } from './machine.js';
import type { BenchDatabase } from './database.js';
import { FleetProcess } from './fleet-process.js';
import type { Announce, AnnounceResult, ExpectedUpdate, UpdatesResult } from './fleet-protocol.js';
import { ServerProcess, type GcPauses, type LoopDelay, type MemorySample } from './server-process.js';
import { summarize, type Summary } from './stats.js';
import { FIRMWARE_TYPE, uploadFirmware } from './firmware.js';
import { sampleHandshakeWindow, type HandshakeWindow } from './gate-sampler.js';

/** What every benchmark of the fleet against mqota is given: paths, identities, the storm's width, the server's settings. */
export interface FleetBenchOptions {
  repoRoot: string;
  workDir: string;
  certsDir: string;
  caPem: string;
  credentialsFile: string;
  deviceIds: string[];
  warmupIds: string[];
  concurrency: number;
  serverEnv: Record<string, string>;
  serverNodeArgs: string[];
}

export interface ScenarioOptions extends FleetBenchOptions {
  complete: boolean;
  /** A further batch, connected with the fleet online and gone again, to read what one more device costs. */
  laterIds?: string[];
  cpuProfileDir?: string;
}

/** The server during a phase, and the machine around it. */
export interface ServerLoad {
  cpuMs: number;
  /** Of one core; above 100 % with GC, libuv and PGlite threads. */
  cpuPercent: number;
  /** cpuMs by kind of thread ('main', 'pglite', 'V8Worker', …; machine.ts threadCpuByName), ms. */
  threads: Record<string, number>;
  loopDelay: LoopDelay;
  gcPauses: GcPauses;
  /**
   * CPU used by processes outside the benchmark's own tree (server, fleet, local PostgreSQL), % of
   * one core: anything well above zero means other work competed for the cores and disturbed the figures.
   */
  othersCpuPercent: number;
}

export interface AnnouncePhase {
  concurrency: number;
  answered: number;
  failures: Record<string, number>;
  answers: Record<string, number>;
  seconds: number;
  perSecond: number;
  /** Announce PUBLISH sent → command received, per device, ms. */
  announceToCommandMs: Summary | null;
  fleetCpuPercent: number;
  fleetLoopDelayP99Ms: number;
  server: ServerLoad;
}

/** What each connected device added to the server, in bytes. */
export interface PerDeviceMemory {
  /** VmRSS growth per device: the figure the target is about. */
  rss: number;
  /** Live JavaScript objects (TLSSocket and its streams, the Aedes client, mqota's own records). */
  jsObjects: number;
  /**
   * The rest: native memory (OpenSSL's per-connection state, Node's TLS and socket wrappers,
   * buffers, malloc) and V8 heap pages committed but not filled.
   */
  native: number;
  /** The RSS growth per device as read at once after the collections (machine.ts MEMORY_SETTLE_MS). */
  rssAtOnce?: number;
}

export interface ScenarioResult {
  database: string;
  kind: BenchDatabase['kind'];
  devices: number;
  /** New devices connect (TLS, CONNECT, SUBSCRIBE) and announce, `concurrency` at a time. */
  connect: AnnouncePhase & { connectMs: Summary | null; handshakeWindow: HandshakeWindow };
  /** Every device announces again once all are online, so no TLS handshake competes: one at a time, then `concurrency` at a time. */
  reannounce: { oneAtATime: AnnouncePhase; concurrent: AnnouncePhase };
  memory: {
    /** VmRSS as found, before the probe's garbage collection. */
    idleRawRssBytes: number;
    connectedRawRssBytes: number;
    /** After full garbage collections. */
    idle: MemorySample;
    connected: MemorySample;
    /**
     * (connected − idle) / devices, bytes. Includes whatever the idle reading did not hold: since
     * mqota gives start-up's garbage back at start, pages the fleet fills again (bench/README.md,
     * "Ninth round").
     */
    perDevice: PerDeviceMemory;
    /**
     * What one more device costs: a further batch of devices connects with the fleet online, and
     * leaves again before the phases after it; (after − before) / its devices, each reading after
     * full collections. Null when the run has no such batch; `why` when it failed.
     */
    marginal: { devices: number; online: number; before: MemorySample; after: MemorySample; perDevice: PerDeviceMemory } | { why: string } | null;
    peakRssBytes: number;
  };
  /** Null when the rollout phase failed (see `failure`). */
  fanOut: (Omit<UpdatesResult, 'firstAt' | 'lastAt'> & {
    /** POST /api/rollouts sent → the last device has its update command. */
    ms: number;
    firstCommandMs: number;
    apiMs: number;
    commanded: number;
    clockOffsetMs: number;
    server: ServerLoad;
  }) | null;
  completion: { reportedMs: number; completedMs: number | null; reported: number; failed: number; state: string } | null;
  /** What went wrong in the rollout phases, with the server's last words if it died. */
  failure: string | null;
  serverWarnings: Record<string, number>;
  /** The first log line of each warning. */
  serverWarningSamples?: Record<string, string>;
}

const ADMIN_TOKEN = `bench-${process.pid}-${Math.random().toString(36).slice(2)}-token`;
const SETTLE_MS = 2_000;
const ANNOUNCE: Announce = { type: FIRMWARE_TYPE, version: '1.0.0', chip: 'esp32' };
/** Warm-up devices announce a type with no firmware, so they are never targets of the rollout. */
const WARMUP_ANNOUNCE: Announce = { type: 'bench-warmup', version: '1.0.0', chip: 'esp32' };

interface RolloutView { id: string; state: string; commanded?: number }

export async function runScenario(db: BenchDatabase, opts: ScenarioOptions): Promise<ScenarioResult> {
  const dataDir = path.join(opts.workDir, `data-${db.kind}`);
  await mkdir(dataDir, { recursive: true });
  const profileDir = opts.cpuProfileDir ? path.join(opts.cpuProfileDir, db.kind) : undefined;
  if (profileDir) await mkdir(profileDir, { recursive: true });
  const devices = opts.deviceIds.length;
  const timeoutMs = Math.max(60_000, devices * 30);
  let server: ServerProcess | null = null;
  let fleet: FleetProcess | null = null;
  let api: ApiClient | null = null;
  const phases: PhaseWindow[] = [];
  let step = 'server start-up';
  try {
    server = await ServerProcess.start({
      repoRoot: opts.repoRoot, dataDir, certsDir: opts.certsDir, caPem: opts.caPem, adminToken: ADMIN_TOKEN, databaseUrl: db.url,
      cpuProfileDir: profileDir, env: opts.serverEnv, nodeArgs: opts.serverNodeArgs,
    });
    const apiClient = () => new ApiClient({ baseUrl: server!.publicUrl, token: ADMIN_TOKEN, caPem: opts.caPem });
    api = apiClient();
    fleet = FleetProcess.start(opts.credentialsFile);
    const announceRequest = (concurrency: number) => ({ announce: ANNOUNCE, expectReason: 'up-to-date', concurrency, timeoutMs });

    // 1. The running version is in the catalog, so announces are answered `up-to-date`.
    step = 'upload of 1.0.0';
    await uploadFirmware(api, dataDir, '1.0.0');
    await api.close(); // idle through the phases below for longer than the server keeps a connection
    api = null;

    // Warm-up: compiled code, V8's young generation, TLS and MQTT buffers, the database's first writes.
    step = 'warm-up';
    if (opts.warmupIds.length) {
      const warm = await fleet.request({
        op: 'connect', brokerPort: server.mqttPort, ids: opts.warmupIds, announce: WARMUP_ANNOUNCE, expectReason: 'unknown-type',
        concurrency: opts.concurrency, timeoutMs, disconnectAfter: true,
      });
      if (warm.answered !== warm.requested) throw new Error(`warm-up: ${warm.answered}/${warm.requested} answered: ${JSON.stringify(warm.failures)}`);
    }
    await sleep(SETTLE_MS);
    const idleRawRssBytes = server.rssBytes();
    const { memory: idle } = await server.probe({ settleMs: MEMORY_SETTLE_MS });

    // 2. The fleet connects and announces, a bounded number of devices at a time.
    step = 'connect + announce';
    const connected = await measured(server, phases, 'connect', async () => {
      const gate = sampleHandshakeWindow({ baseUrl: server!.publicUrl, token: ADMIN_TOKEN, caPem: opts.caPem });
      const result = await fleet!.request({
        op: 'connect', brokerPort: server!.mqttPort, ids: opts.deviceIds, ...announceRequest(opts.concurrency), disconnectAfter: false,
      }).catch(async (err: unknown) => { await gate.stop(); throw err; });
      return { ...result, handshakeWindow: await gate.stop() };
    });

    // 3. Memory with everyone online, once the group commit has drained.
    step = 'memory';
    await sleep(SETTLE_MS);
    const connectedRawRssBytes = server.rssBytes();
    const { memory: online } = await server.probe({ settleMs: MEMORY_SETTLE_MS });

    // 3a. One more batch with everyone online, then gone again: what one more device costs. Read
    // here, not after the fan-out, whose garbage leaves room the batch would fill unseen.
    step = 'memory, one more batch';
    const marginal = opts.laterIds?.length ? await oneMoreBatch(server, fleet, opts.laterIds, online, { devices, concurrency: opts.concurrency, timeoutMs }) : null;

    // 3b. The same announce again, everyone online, so no TLS handshake competes: one device at a
    // time gives the server's own answer time, `concurrency` at a time its announce throughput.
    step = 're-announce';
    const alone = await measured(server, phases, 'reannounce-1', () => fleet!.request({ op: 'announce', ...announceRequest(1) }));
    const loaded = await measured(server, phases, 'reannounce-n', () => fleet!.request({ op: 'announce', ...announceRequest(opts.concurrency) }));

    // 4 and 5, on a server that may not survive them: what was measured so far is reported anyway.
    step = 'fan-out';
    api = apiClient();
    let rollout: Pick<ScenarioResult, 'fanOut' | 'completion' | 'failure'>;
    try {
      rollout = await rolloutToAll(server, fleet, api, { dataDir, phases, timeoutMs, complete: opts.complete });
    } catch (err) {
      await sleep(500); // a crashed server's last words and exit status
      const crash = server.log.stderrTail.find((l) => /^\w*Error\b/.test(l));
      const summary = server.hasExited ? `the server died${crash ? `: ${crash}` : ''}` : (err as Error).message;
      const tail = server.log.stderrTail.length ? `\nserver stderr:\n${server.log.stderrTail.join('\n')}` : '';
      rollout = { fanOut: null, completion: null, failure: `${summary} (${(err as Error).message})${tail}` };
    }
    if (profileDir) await writeFile(path.join(profileDir, 'phases.json'), JSON.stringify(phases, null, 2));

    return {
      database: db.description,
      kind: db.kind,
      devices,
      connect: { ...announcePhase(connected.value, opts.concurrency, connected.server), connectMs: summarize(connected.value.connectMs), handshakeWindow: connected.value.handshakeWindow },
      reannounce: { oneAtATime: announcePhase(alone.value, 1, alone.server), concurrent: announcePhase(loaded.value, opts.concurrency, loaded.server) },
      memory: {
        idleRawRssBytes, connectedRawRssBytes, idle, connected: online,
        perDevice: perDeviceMemory(idle, online, devices),
        marginal,
        peakRssBytes: server.peakRssBytes(),
      },
      ...rollout,
      serverWarnings: server.log.warnings,
      serverWarningSamples: server.log.warningSamples,
    };
  } catch (err) {
    const tail = server?.log.stderrTail.length ? `\nserver stderr:\n${server.log.stderrTail.join('\n')}` : '';
    throw new Error(`${db.kind}, ${step}: ${(err as Error).message}${tail}`, { cause: err });
  } finally {
    await fleet?.stop();
    await api?.close();
    await server?.stop();
    await db.drop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
}

/**
 * 4. A rollout of 1.1.0 to all: from the API call to the last device holding its command; then
 * 5., optionally, every device reports accepted → succeeded until the API shows the rollout completed.
 */
async function rolloutToAll(
  server: ServerProcess, fleet: FleetProcess, api: ApiClient,
  opts: { dataDir: string; phases: PhaseWindow[]; timeoutMs: number; complete: boolean },
): Promise<Pick<ScenarioResult, 'fanOut' | 'completion' | 'failure'>> {
  const { timeoutMs } = opts;
  // The upload also opens the API connection the rollout call then uses.
  const target = await uploadFirmware(api, opts.dataDir, '1.1.0');
  const expected: ExpectedUpdate = { type: target.type, version: target.version, url: target.url, sha256: target.sha256, size: target.size };
  const clock = await fleet.clockOffsetMs();
  const onOurClock = (fleetTime: number) => fleetTime - clock.offsetMs;
  const fanOut = await measured(server, opts.phases, 'fan-out', async () => {
    const updates = fleet.request({ op: 'await-updates', expected, timeoutMs }); // until every online device has its command
    const startedAt = now();
    const rollout = await api.call<RolloutView>('POST', '/api/rollouts', { firmwareId: target.id });
    return { startedAt, apiMs: now() - startedAt, rollout, updates: await updates };
  });
  const { startedAt, apiMs, rollout, updates: { firstAt, lastAt, ...u } } = fanOut.value;
  let failure: string | null = null;
  let completion: ScenarioResult['completion'] = null;
  if (opts.complete) {
    try {
      completion = await completeRollout(api, fleet, rollout.id, target.version, timeoutMs, onOurClock);
    } catch (err) {
      failure = `completion: ${(err as Error).message}`;
    }
  }
  return {
    fanOut: {
      ...u,
      ms: u.received ? onOurClock(lastAt) - startedAt : NaN,
      firstCommandMs: u.received ? onOurClock(firstAt) - startedAt : NaN,
      apiMs, commanded: rollout.commanded ?? 0,
      clockOffsetMs: clock.offsetMs,
      server: fanOut.server,
    },
    completion,
    failure,
  };
}

/** A phase on the monotonic clock V8's CPU profiles use (CLOCK_MONOTONIC, µs), for profile-summary.ts. */
export interface PhaseWindow {
  name: string;
  startUs: number;
  endUs: number;
}

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** Runs a phase between two probes of the server: its CPU time and event-loop delay during the phase. */
async function measured<T>(server: ServerProcess, phases: PhaseWindow[], name: string, phase: () => Promise<T>): Promise<{ value: T; server: ServerLoad }> {
  await server.probe(); // restarts the delay histogram, and collects garbage before the phase rather than during it
  const before = { server: server.cpuMs(), threads: server.threadCpuMs(), ours: treeCpuMs(process.pid), machine: machineBusyMs() };
  const startedAt = now();
  const startUs = monotonicUs();
  const value = await phase();
  phases.push({ name, startUs, endUs: monotonicUs() });
  const wallMs = now() - startedAt;
  const cpuMs = server.cpuMs() - before.server;
  const threads: Record<string, number> = {};
  for (const [name, ms] of server.threadCpuMs()) {
    const spent = ms - (before.threads.get(name) ?? 0);
    if (spent > 0) threads[name] = spent;
  }
  const othersMs = machineBusyMs() - before.machine - (treeCpuMs(process.pid) - before.ours);
  const { loopDelay, gcPauses } = await server.probe();
  return { value, server: { cpuMs, cpuPercent: (cpuMs / wallMs) * 100, threads, loopDelay, gcPauses, othersCpuPercent: Math.max(0, (othersMs / wallMs) * 100) } };
}

/**
 * Connects `ids` as devices of a type with no firmware, reads the server's memory after full
 * collections, and disconnects them again (settled), so the phases after it see the fleet they did.
 */
async function oneMoreBatch(
  server: ServerProcess, fleet: FleetProcess, ids: string[], before: MemorySample, opts: { devices: number; concurrency: number; timeoutMs: number },
): Promise<ScenarioResult['memory']['marginal']> {
  const r = await fleet.request({
    op: 'connect', brokerPort: server.mqttPort, ids, announce: WARMUP_ANNOUNCE, expectReason: 'unknown-type',
    concurrency: opts.concurrency, timeoutMs: opts.timeoutMs, disconnectAfter: false,
  }).catch((err: unknown) => ({ answered: 0, requested: ids.length, failures: { [(err as Error).message]: ids.length } }));
  let after: MemorySample | undefined;
  if (r.answered === r.requested) {
    await sleep(SETTLE_MS);
    ({ memory: after } = await server.probe({ settleMs: MEMORY_SETTLE_MS }));
  }
  await fleet.request({ op: 'disconnect', ids });
  await sleep(SETTLE_MS);
  if (!after) return { why: `${r.answered}/${r.requested} of the further batch answered: ${JSON.stringify(r.failures)}` };
  return { devices: ids.length, online: opts.devices + ids.length, before, after, perDevice: perDeviceMemory(before, after, ids.length) };
}

function perDeviceMemory(idle: MemorySample, online: MemorySample, devices: number): PerDeviceMemory {
  const delta = (k: 'rss' | 'heapUsed') => (online[k] - idle[k]) / devices;
  const atOnce = online.rssAtOnce !== undefined && idle.rssAtOnce !== undefined ? (online.rssAtOnce - idle.rssAtOnce) / devices : undefined;
  return { rss: delta('rss'), jsObjects: delta('heapUsed'), native: delta('rss') - delta('heapUsed'), ...(atOnce === undefined ? {} : { rssAtOnce: atOnce }) };
}

function announcePhase(r: AnnounceResult, concurrency: number, server: ServerLoad): AnnouncePhase {
  const wallMs = r.answered ? r.lastAnswerAt - r.startedAt : NaN;
  return {
    concurrency,
    answered: r.answered,
    failures: r.failures,
    answers: r.answers,
    seconds: wallMs / 1000,
    perSecond: r.answered / (wallMs / 1000),
    announceToCommandMs: summarize(r.announceToCommandMs),
    fleetCpuPercent: (r.fleetCpuMs / wallMs) * 100,
    fleetLoopDelayP99Ms: r.fleetLoopDelayP99Ms,
    server,
  };
}

/** Devices report success while the API is polled; the time is until a poll shows `completed`. */
async function completeRollout(
  api: ApiClient, fleet: FleetProcess, rolloutId: string, version: string, timeoutMs: number, onOurClock: (t: number) => number,
): Promise<NonNullable<ScenarioResult['completion']>> {
  const startedAt = now();
  const reporting = fleet.request({ op: 'report-success', version, timeoutMs });
  let completedMs: number | null = null;
  let state = 'running';
  while (now() - startedAt < timeoutMs) {
    // The list view: counts only, not every device's attempt as GET /api/rollouts/:id returns.
    const rollouts = await api.call<RolloutView[]>('GET', '/api/rollouts');
    state = rollouts.find((r) => r.id === rolloutId)?.state ?? 'missing';
    if (state !== 'running') {
      completedMs = now() - startedAt;
      break;
    }
    await sleep(50);
  }
  const report = await reporting;
  return { reportedMs: onOurClock(report.doneAt) - startedAt, completedMs, reported: report.reported, failed: report.failed, state };
}
