// `npm run bench:staged`: issue #4's benchmark. A staged rollout (waves 1/10/50/100 %, no rate
// limit, no soak) to N online TLS devices (default 5,000) that answer every `update` command at
// once with `accepted` then `succeeded`: when each wave starts, how long until all its devices
// succeeded, the total time to `completed`, commands per second, the server's CPU and RSS.
// PGlite (mqota's default database) only. Server and fleet are the processes of `npm run bench`
// (server-process.ts, fleet.ts), on 127.0.0.1 only.
//
//   npm run bench:staged -- [--devices 5000] [--tick-ms 100] [--concurrency 64]
//
// Waves are promoted on the rollout engine's tick (MQOTA_ROLLOUT_TICK_MS, here --tick-ms), so a
// wave starts at the first tick after the previous one has fully succeeded.
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient } from '../src/cli/api-client.js';
import { now } from './clock.js';
import { issueFleetCredentials } from './credentials.js';
import { FleetProcess } from './fleet-process.js';
import { machineBusyMs, treeCpuMs } from './machine.js';
import { ServerProcess } from './server-process.js';
import { fixed, MiB } from './stats.js';
import { FIRMWARE_TYPE, uploadFirmware } from './firmware.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.dirname(BENCH_DIR);
const RESULTS_DIR = path.join(BENCH_DIR, 'results');
const WAVES = [1, 10, 50, 100];
const ADMIN_TOKEN = `bench-${process.pid}-${Math.random().toString(36).slice(2)}-token`;
const POLL_MS = 50;

interface RolloutList { id: string; state: string; currentWave: number; counts?: Record<string, number> }
interface RolloutDetail extends RolloutList {
  waves: { index: number; planned: number; size: number; devices: number; state: string; succeeded: number; failed: number }[];
  devices: { deviceId: string; wave: number; state: string }[];
  history: { state: string; wave: number; reason: string; at: string }[];
}

export interface WaveFigures {
  wave: number;
  planned: number;
  devices: number;
  /** ms after POST /api/rollouts: the wave's start in the rollout's history. */
  startMs: number;
  /** ms after the wave's start: its first and last device got the command. */
  firstCommandMs: number;
  lastCommandMs: number;
  /** ms after the wave's start until its last device's `succeeded` was acknowledged. */
  allSucceededMs: number;
  /** From the wave's last success to the next wave's start (waiting for the tick, evaluation), ms. */
  gapToNextMs: number | null;
  /** Commands per second within the wave: devices / (last command − start). */
  commandsPerSecond: number;
  succeeded: number;
}

function options() {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '5000' },
      'tick-ms': { type: 'string', default: '100' },
      concurrency: { type: 'string', default: '64' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log('npm run bench:staged -- [--devices 5000] [--tick-ms 100] [--concurrency 64]');
    process.exit(0);
  }
  const int = (name: 'devices' | 'tick-ms' | 'concurrency', min: number, max: number) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}`);
    return n;
  };
  return { devices: int('devices', 100, 100_000), tickMs: int('tick-ms', 20, 60_000), concurrency: int('concurrency', 1, 1000) };
}

function alive(server: ServerProcess): boolean {
  try { return server.rssBytes() > 0; } catch { return false; }
}

/** An API call, once more after a connection reset (an idle keep-alive socket the server closed). */
async function retrying<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if ((err as { code?: string }).code !== 'ECONNRESET') throw err;
    return call();
  }
}

const mib = (b: number) => `${fixed(b / MiB, 0)} MiB`;
const sec = (ms: number) => `${fixed(ms / 1000, 2)} s`;

async function main(): Promise<number> {
  const opts = options();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'mqota-bench-staged-'));
  let server: ServerProcess | null = null;
  let fleet: FleetProcess | null = null;
  let api: ApiClient | null = null;
  /** Wave promotions as the polls saw them (kept for a run that fails half-way). */
  const progress: { wave: number; seenAtMs: number }[] = [];
  const cleanUp = async () => {
    await fleet?.stop().catch(() => undefined);
    await api?.close().catch(() => undefined);
    await ServerProcess.stopAll();
    await rm(workDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => { void cleanUp().finally(() => process.exit(130)); });
  // The whole run is bounded: connecting, the rollout and the teardown.
  const timeoutMs = Math.max(60_000, opts.devices * 30);
  const killer = setTimeout(() => {
    console.error(`staged rollout bench: no result within ${(3 * timeoutMs) / 1000} s, giving up`);
    void cleanUp().finally(() => process.exit(3));
  }, 3 * timeoutMs + 120_000);
  killer.unref();
  try {
    const [load1] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
    console.log(`staged rollout: ${opts.devices} devices, waves ${WAVES.join('/')} %, no rate limit, MQOTA_ROLLOUT_TICK_MS=${opts.tickMs}, PGlite; node ${process.version}, ${os.availableParallelism()} CPUs, load average ${load1}`);
    const certsDir = path.join(workDir, 'certs');
    const dataDir = path.join(workDir, 'data');
    await mkdir(dataDir, { recursive: true });
    console.log(`Issuing ${opts.devices} device certificates...`);
    const creds = await issueFleetCredentials({ certsDir, file: path.join(workDir, 'devices.json'), devices: opts.devices, warmup: 0 });
    console.log(`  ${fixed(creds.seconds, 1)} s`);

    server = await ServerProcess.start({
      repoRoot: REPO_ROOT, dataDir, certsDir, caPem: creds.caPem, adminToken: ADMIN_TOKEN,
      env: { MQOTA_ROLLOUT_TICK_MS: String(opts.tickMs) },
    });
    api = new ApiClient({ baseUrl: server.publicUrl, token: ADMIN_TOKEN, caPem: creds.caPem });
    fleet = FleetProcess.start(creds.file);
    await uploadFirmware(api, dataDir, '1.0.0');

    console.log(`Connecting ${opts.devices} devices (${opts.concurrency} at a time)...`);
    const connected = await fleet.request({
      op: 'connect', brokerPort: server.mqttPort, ids: creds.deviceIds, announce: { type: FIRMWARE_TYPE, version: '1.0.0', chip: 'esp32' },
      expectReason: 'up-to-date', concurrency: opts.concurrency, timeoutMs, disconnectAfter: false,
    });
    console.log(`  ${connected.answered}/${connected.requested} online in ${sec(connected.lastAnswerAt - connected.startedAt)}`);
    if (connected.answered !== connected.requested) throw new Error(`only ${connected.answered} devices online: ${JSON.stringify(connected.failures)}`);

    const target = await uploadFirmware(api, dataDir, '1.1.0');
    await fleet.request({ op: 'auto-complete', version: target.version });
    const clock = await fleet.clockOffsetMs();
    const onOurClock = (fleetTime: number) => fleetTime - clock.offsetMs;
    await sleep(2_000); // the group commit of the connect phase drains
    const rssBeforeRaw = server.rssBytes();
    const { memory: before } = await server.probe(); // also restarts the event-loop delay histogram

    // A fresh connection for the rollout: the old one may have idled past the server's keep-alive.
    await api.close();
    api = new ApiClient({ baseUrl: server.publicUrl, token: ADMIN_TOKEN, caPem: creds.caPem });
    // The rollout: from the API call until the list view shows it completed.
    console.log('Rollout of 1.1.0...');
    const cpu0 = { server: server.cpuMs(), ours: treeCpuMs(process.pid), machine: machineBusyMs() };
    const startedAt = now();
    const created = await api.call<RolloutList & { commanded?: number }>('POST', '/api/rollouts', { firmwareId: target.id, waves: WAVES });
    const apiMs = now() - startedAt;
    let state = created.state;
    let shownWave = -1;
    let peakRss = server.rssBytes();
    while (state === 'running' && now() - startedAt < timeoutMs) {
      await sleep(POLL_MS);
      const list = await retrying(() => api!.call<RolloutList[]>('GET', '/api/rollouts?state=running'));
      const wave = list.find((r) => r.id === created.id)?.currentWave;
      if (wave !== undefined && wave !== shownWave) {
        progress.push({ wave: wave + 1, seenAtMs: now() - startedAt });
        console.log(`  ${sec(now() - startedAt)}: wave ${(shownWave = wave) + 1} of ${WAVES.length}`);
      }
      peakRss = Math.max(peakRss, server.rssBytes());
      if (!list.some((r) => r.id === created.id)) state = (await retrying(() => api!.call<RolloutList[]>('GET', '/api/rollouts'))).find((r) => r.id === created.id)?.state ?? 'missing';
    }
    const completedMs = now() - startedAt;
    const cpuMs = server.cpuMs() - cpu0.server;
    const othersMs = machineBusyMs() - cpu0.machine - (treeCpuMs(process.pid) - cpu0.ours);
    const rssAfterRaw = server.rssBytes();
    const { memory: after, loopDelay } = await server.probe();
    if (state !== 'completed') throw new Error(`rollout ${state} after ${sec(completedMs)}, not completed`);

    const detail = await retrying(() => api!.call<RolloutDetail>('GET', `/api/rollouts/${created.id}`));
    const auto = await fleet.request({ op: 'auto-complete-stats' });
    const waveOf = new Map(detail.devices.map((d) => [d.deviceId, d.wave]));
    const waveStart = (i: number) => {
      const entry = i === 0 ? detail.history.find((h) => h.state === 'running') : detail.history.find((h) => h.reason === `wave ${i + 1} of ${WAVES.length} started`);
      return entry ? Date.parse(entry.at) - startedAt : NaN;
    };
    const waves: WaveFigures[] = detail.waves.map((w, i) => {
      const records = auto.records.filter((r) => waveOf.get(r.id) === i);
      const start = i === 0 ? Math.min(0, waveStart(0)) : waveStart(i);
      const commands = records.map((r) => onOurClock(r.commandAt) - startedAt);
      const successes = records.map((r) => (r.succeededAt ? onOurClock(r.succeededAt) - startedAt : NaN));
      const last = Math.max(...successes);
      const next = i + 1 < detail.waves.length ? waveStart(i + 1) : null;
      const lastCommand = Math.max(...commands);
      return {
        wave: i + 1, planned: w.planned, devices: w.devices, startMs: start,
        firstCommandMs: Math.min(...commands) - start, lastCommandMs: lastCommand - start, allSucceededMs: last - start,
        gapToNextMs: next === null ? null : next - last,
        commandsPerSecond: records.length / ((lastCommand - start) / 1000),
        succeeded: w.succeeded,
      };
    });
    const commands = auto.records.length;
    const lastCommandAt = Math.max(...auto.records.map((r) => onOurClock(r.commandAt) - startedAt));
    const result = {
      devices: opts.devices, waves: WAVES, tickMs: opts.tickMs, database: 'PGlite (embedded)', node: process.version,
      cpus: `${os.availableParallelism()} × ${os.cpus()[0]?.model.trim() ?? 'CPU'}`, loadAverageAtStart: load1,
      connectSeconds: (connected.lastAnswerAt - connected.startedAt) / 1000,
      rollout: {
        id: created.id, apiMs, commandedByPost: created.commanded ?? 0, completedMs, state,
        commands, reportFailures: auto.failed,
        commandsPerSecond: commands / (completedMs / 1000),
        commandsPerSecondWhileSending: commands / (lastCommandAt / 1000),
        history: detail.history,
      },
      perWave: waves,
      server: {
        cpuMs, cpuPercentOfOneCore: (cpuMs / completedMs) * 100, loopDelay,
        othersCpuPercentOfOneCore: Math.max(0, (othersMs / completedMs) * 100),
        rssBeforeRaw, rssAfterRaw, rssBeforeAfterGc: before.rss, rssAfterAfterGc: after.rss, peakRssDuringRollout: peakRss, peakRssOfProcess: server.peakRssBytes(),
        heapUsedBefore: before.heapUsed, heapUsedAfter: after.heapUsed,
      },
      clockOffsetMs: clock.offsetMs,
      serverWarnings: server.log.warnings,
    };

    console.log(`\nStaged rollout, ${opts.devices} devices, waves ${WAVES.join('/')} %, no rate limit, MQOTA_ROLLOUT_TICK_MS=${opts.tickMs}, PGlite`);
    console.log('| wave | devices | starts at | first → last command | all succeeded after | commands/s in wave | gap to next wave |');
    console.log('|---|---:|---:|---:|---:|---:|---:|');
    for (const w of waves) {
      console.log(`| ${w.wave} (${w.planned} %) | ${w.devices} | ${sec(w.startMs)} | ${sec(w.firstCommandMs)} → ${sec(w.lastCommandMs)} | ${sec(w.allSucceededMs)} | ${fixed(w.commandsPerSecond, 0)} | ${w.gapToNextMs === null ? '—' : sec(w.gapToNextMs)} |`);
    }
    console.log(`\nTotal to completed: ${sec(completedMs)} (POST answered in ${fixed(apiMs, 0)} ms); ${commands} commands, ${fixed(result.rollout.commandsPerSecond, 0)}/s over the rollout, ${fixed(result.rollout.commandsPerSecondWhileSending, 0)}/s to the last command; ${auto.failed} report failures`);
    console.log(`Server CPU: ${fixed(cpuMs / 1000, 1)} s, ${fixed(result.server.cpuPercentOfOneCore, 0)} % of one core; event-loop delay p99 ${fixed(loopDelay.p99, 1)} ms, max ${fixed(loopDelay.max, 0)} ms; other processes ${fixed(result.server.othersCpuPercentOfOneCore, 0)} % of a core${result.server.othersCpuPercentOfOneCore > 15 ? ' (DISTURBED)' : ''}`);
    console.log(`Server RSS: before ${mib(rssBeforeRaw)} (${mib(before.rss)} after GC), after ${mib(rssAfterRaw)} (${mib(after.rss)} after GC), peak during rollout ${mib(peakRss)}; heap used ${mib(before.heapUsed)} → ${mib(after.heapUsed)}`);
    if (Object.keys(server.log.warnings).length) console.log(`Server warnings: ${JSON.stringify(server.log.warnings)}`);
    await mkdir(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `staged-${stamp}.json`);
    await writeFile(file, JSON.stringify(result, null, 2));
    console.log(`Results: ${path.relative(process.cwd(), file)}`);
    return auto.failed === 0 && waves.every((w) => w.succeeded === w.devices) ? 0 : 1;
  } catch (err) {
    if (server) {
      const serverExited = !alive(server);
      console.error(`server ${serverExited ? 'exited' : 'running'}; stderr tail:\n${server.log.stderrTail.join('\n')}\nwarnings: ${JSON.stringify(server.log.warnings)}`);
      await mkdir(RESULTS_DIR, { recursive: true });
      const file = path.join(RESULTS_DIR, `staged-${stamp}-failed.json`);
      await writeFile(file, JSON.stringify({
        devices: opts.devices, waves: WAVES, tickMs: opts.tickMs, error: String(err), serverExited, wavesSeen: progress,
        serverStderrTail: server.log.stderrTail, serverWarnings: server.log.warnings,
      }, null, 2));
      console.error(`Failed run: ${path.relative(process.cwd(), file)}`);
    }
    throw err;
  } finally {
    clearTimeout(killer);
    await cleanUp();
  }
}

main().then((code) => process.exit(code), (err) => {
  console.error(`staged rollout bench failed: ${err instanceof Error ? err.stack : String(err)}`);
  void ServerProcess.stopAll().finally(() => process.exit(2));
});
