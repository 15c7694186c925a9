// The phases `npm run bench -- --broker mosquitto` runs on each deployment (deployment.ts), the
// same fleet process and identities every time:
// 1. firmware `bench` 1.0.0 uploaded; warm-up devices connect, announce an unknown type, leave;
// 2. half the fleet connects (TLS, CONNECT, SUBSCRIBE) and announces, `concurrency` at a time,
//    then the other half: each announce timed to its `none/up-to-date` answer;
// 3. memory of every mqota instance (after full GC) and of Mosquitto, idle, with half and with the
//    whole fleet online: what one more connected device costs each process;
// 4. a rollout of 1.1.0 to all through the leader's API: from the call to the last device holding
//    its (checked) update command.
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient } from '../src/cli/api-client.js';
import { now } from './clock.js';
import type { Deployment } from './deployment.js';
import { FIRMWARE_TYPE, uploadFirmware } from './firmware.js';
import { FleetProcess } from './fleet-process.js';
import type { Announce, ConnectResult, ExpectedUpdate } from './fleet-protocol.js';
import { machineBusyMs, treeCpuMs } from './machine.js';
import { summarize, type Summary } from './stats.js';

export interface MemoryPoint {
  /** Devices connected when measured. */
  devices: number;
  /** VmRSS of each mqota instance after full garbage collections, bytes. */
  instances: number[];
  /** Mosquitto's VmRSS, bytes; null with the embedded broker. */
  mosquitto: number | null;
}

export interface DeploymentResult {
  name: string;
  devices: number;
  instances: number;
  leader: number;
  connect: {
    answered: number;
    failures: Record<string, number>;
    /** Both halves' wall time, first connect → last answer (the memory reading between them left out). */
    seconds: number;
    announceToCommandMs: Summary | null;
    connectMs: Summary | null;
  };
  /** Idle (after warm-up), half the fleet online, all of it. */
  memory: MemoryPoint[];
  fanOut: { ms: number; online: number; received: number; wellFormed: number; distinctUpdateIds: number; duplicates: number; apiMs: number } | null;
  failure: string | null;
  /** CPU other processes took during the timed phases, % of one core (the highest phase). */
  othersCpuPercent: number;
  serverWarnings: Record<string, number>;
}

export interface BrokerScenarioOptions {
  workDir: string;
  caPem: string;
  adminToken: string;
  credentialsFile: string;
  deviceIds: string[];
  warmupIds: string[];
  concurrency: number;
}

const SETTLE_MS = 2_000;
const ANNOUNCE: Announce = { type: FIRMWARE_TYPE, version: '1.0.0', chip: 'esp32' };
const WARMUP_ANNOUNCE: Announce = { type: 'bench-warmup', version: '1.0.0', chip: 'esp32' };

export async function runBrokerScenario(d: Deployment, opts: BrokerScenarioOptions): Promise<DeploymentResult> {
  const devices = opts.deviceIds.length;
  const timeoutMs = Math.max(60_000, devices * 30);
  const leader = d.servers[d.leader];
  const api = new ApiClient({ baseUrl: leader.publicUrl, token: opts.adminToken, caPem: opts.caPem });
  const fleet = FleetProcess.start(opts.credentialsFile);
  let othersCpuPercent = 0;
  /** Runs a timed phase and notes how much CPU processes outside the benchmark's tree took meanwhile. */
  const timed = async <T>(phase: () => Promise<T>): Promise<T> => {
    const before = { ours: treeCpuMs(process.pid), machine: machineBusyMs(), at: now() };
    const value = await phase();
    const others = machineBusyMs() - before.machine - (treeCpuMs(process.pid) - before.ours);
    othersCpuPercent = Math.max(othersCpuPercent, (others / (now() - before.at)) * 100);
    return value;
  };
  const memoryAt = async (connected: number): Promise<MemoryPoint> => {
    await sleep(SETTLE_MS);
    const instances: number[] = [];
    for (const s of d.servers) instances.push((await s.probe()).memory.rss);
    return { devices: connected, instances, mosquitto: d.mosquitto?.rssBytes() ?? null };
  };
  const connect = (ids: string[], announce: Announce, expectReason: string, disconnectAfter: boolean) => fleet.request({
    op: 'connect', brokerPort: d.brokerPort, ids, announce, expectReason, concurrency: opts.concurrency, timeoutMs, disconnectAfter,
  });
  try {
    await uploadFirmware(api, opts.workDir, '1.0.0');
    if (opts.warmupIds.length) {
      const warm = await connect(opts.warmupIds, WARMUP_ANNOUNCE, 'unknown-type', true);
      if (warm.answered !== warm.requested) throw new Error(`warm-up: ${warm.answered}/${warm.requested} answered: ${JSON.stringify(warm.failures)}`);
    }
    const memory = [await memoryAt(0)];
    const half = Math.ceil(devices / 2);
    const halves: ConnectResult[] = [];
    for (const ids of [opts.deviceIds.slice(0, half), opts.deviceIds.slice(half)]) {
      if (!ids.length) continue;
      halves.push(await timed(() => connect(ids, ANNOUNCE, 'up-to-date', false)));
      memory.push(await memoryAt(memory[memory.length - 1].devices + ids.length));
    }
    const failures: Record<string, number> = {};
    for (const h of halves) for (const [k, n] of Object.entries(h.failures)) failures[k] = (failures[k] ?? 0) + n;
    const result: DeploymentResult = {
      name: d.name, devices, instances: d.servers.length, leader: d.leader,
      connect: {
        answered: halves.reduce((n, h) => n + h.answered, 0), failures,
        seconds: halves.reduce((s, h) => s + (h.lastAnswerAt - h.startedAt), 0) / 1000,
        announceToCommandMs: summarize(halves.flatMap((h) => h.announceToCommandMs)),
        connectMs: summarize(halves.flatMap((h) => h.connectMs)),
      },
      memory, fanOut: null, failure: null, othersCpuPercent, serverWarnings: {},
    };
    try {
      result.fanOut = await timed(() => fanOut(api, fleet, { workDir: opts.workDir, devices, timeoutMs }));
    } catch (err) {
      result.failure = `fan-out: ${(err as Error).message}`;
    }
    result.othersCpuPercent = othersCpuPercent;
    return result;
  } finally {
    await fleet.stop();
    await api.close();
    // Counted after the fleet left, so warnings about its disconnecting are in too.
    await sleep(200);
  }
}

/**
 * Waits until the leader knows every device online on 1.0.0 (announces another instance answered
 * reach it through PostgreSQL), then creates a rollout of 1.1.0 to all and waits for every device
 * to hold its update command.
 */
async function fanOut(api: ApiClient, fleet: FleetProcess, opts: { workDir: string; devices: number; timeoutMs: number }): Promise<NonNullable<DeploymentResult['fanOut']>> {
  const deadline = now() + opts.timeoutMs;
  for (;;) {
    const known = await api.call<unknown[]>('GET', `/api/devices?type=${FIRMWARE_TYPE}&version=1.0.0&online=true`);
    if (known.length === opts.devices) break;
    if (now() > deadline) throw new Error(`the leader knows ${known.length}/${opts.devices} devices online`);
    await sleep(1_000);
  }
  const target = await uploadFirmware(api, opts.workDir, '1.1.0');
  const expected: ExpectedUpdate = { type: target.type, version: target.version, url: target.url, sha256: target.sha256, size: target.size };
  const clock = await fleet.clockOffsetMs();
  const updates = fleet.request({ op: 'await-updates', expected, timeoutMs: opts.timeoutMs });
  const startedAt = now();
  await api.call('POST', '/api/rollouts', { firmwareId: target.id });
  const apiMs = now() - startedAt;
  const { firstAt: _first, lastAt, ...u } = await updates;
  return { ...u, apiMs, ms: u.received ? lastAt - clock.offsetMs - startedAt : NaN };
}
