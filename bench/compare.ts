// `npm run bench -- --compare`: the anchors beside mqota in the same run. Mosquitto, and bare Aedes
// behind Node's TLS (the stack mqota's broker is built on, bench/bare-aedes.mjs), each get the
// same fleet process, credentials and connect storm as mqota (connect + subscribe: they answer no
// announce), then one client publishes a command to every device (QoS 1), as a rollout's fan-out
// would; memory per device is the RSS growth with everyone connected. Images (nginx) and start-up
// are in images.ts and startup.ts.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { MqttClient } from 'mqtt';
import { topics } from '../src/topics.js';
import { findBinary, startBareAedes, startMosquitto, versionOf, type AnchorProcess } from './anchors.js';
import { now } from './clock.js';
import { FleetProcess } from './fleet-process.js';
import type { FleetCredentials } from './fleet-protocol.js';
import type { ImageComparison } from './images.js';
import type { ScenarioResult } from './scenario.js';
import { memoryPerDevice } from './report.js';
import { FROM_SOURCES, type StartSample } from './startup.js';
import { fixed, summarize, type Summary } from './stats.js';

export interface BrokerAnchorResult {
  name: string;
  version: string;
  devices: number;
  connected: number;
  failures: Record<string, number>;
  connectSeconds: number;
  connectMs: Summary | null;
  perDeviceRssBytes: number;
  idleRssBytes: number;
  connectedRssBytes: number;
  /** The broker's CPU while the fleet connected. */
  connectCpuMs: number;
  /** First publish → the last device holding its command; null if not all arrived. */
  fanOutMs: number | null;
  fanOutReceived: number;
  /** The broker's CPU from the first publish to the last command held. */
  fanOutCpuMs: number;
}

interface AnchorRun {
  workDir: string; certsDir: string; credentialsFile: string; deviceIds: string[]; publisherId: string; concurrency: number;
}

const SETTLE_MS = 2_000;

export async function runMosquitto(opts: AnchorRun): Promise<BrokerAnchorResult | string> {
  const binary = findBinary('mosquitto');
  if (!binary) return 'Mosquitto not installed (apt-get install mosquitto): skipped';
  return runBrokerAnchor('Mosquitto', versionOf(binary, ['-h']), () => startMosquitto({ binary, workDir: opts.workDir, certsDir: opts.certsDir }), opts);
}

/** Bare Aedes over Node's TLS, with the node flags and allocator mqota's bench server runs with. */
export async function runBareAedes(opts: AnchorRun & { repoRoot: string; nodeArgs: readonly string[]; env: Record<string, string> }): Promise<BrokerAnchorResult | string> {
  const { version } = JSON.parse(await readFile(path.join(opts.repoRoot, 'node_modules', 'aedes', 'package.json'), 'utf8')) as { version: string };
  return runBrokerAnchor('Aedes + Node TLS', `aedes ${version}, node ${process.version}`,
    () => startBareAedes({ repoRoot: opts.repoRoot, certsDir: opts.certsDir, nodeArgs: opts.nodeArgs, env: opts.env }), opts);
}

async function runBrokerAnchor(name: string, version: string, start: () => Promise<AnchorProcess>, opts: AnchorRun): Promise<BrokerAnchorResult | string> {
  const broker = await start();
  const fleet = FleetProcess.start(opts.credentialsFile);
  const timeoutMs = Math.max(60_000, opts.deviceIds.length * 30);
  try {
    await sleep(500);
    const idleRssBytes = broker.rssBytes();
    const cpuBeforeConnect = broker.cpuMs();
    const connected = await fleet.request({ op: 'connect-only', brokerPort: broker.port, ids: opts.deviceIds, concurrency: opts.concurrency, timeoutMs });
    const connectCpuMs = broker.cpuMs() - cpuBeforeConnect;
    await sleep(SETTLE_MS);
    const connectedRssBytes = broker.rssBytes();

    // The fan-out: one client publishes every device's command, QoS 1, like mqota's broker would.
    const creds = JSON.parse(await readFile(opts.credentialsFile, 'utf8')) as FleetCredentials;
    const me = creds.devices.find((d) => d.id === opts.publisherId);
    if (!me) throw new Error(`no credentials for ${opts.publisherId}`);
    const publisher = new MqttClient(() => tls.connect({ host: '127.0.0.1', port: broker.port, ca: creds.caPem, cert: me.certPem, key: me.keyPem, servername: '127.0.0.1' }), {
      protocolVersion: 4, clientId: opts.publisherId, reconnectPeriod: 0,
    });
    await new Promise<void>((resolve, reject) => { publisher.once('connect', () => resolve()); publisher.once('error', reject); });
    const clock = await fleet.clockOffsetMs();
    const cpuBeforeFanOut = broker.cpuMs();
    const started = now();
    const payload = (id: string) => JSON.stringify({ action: 'update', updateId: `u-${id}`, type: 'bench', version: '1.1.0', url: `https://127.0.0.1/firmware/${'0'.repeat(64)}.bin`, sha256: '0'.repeat(64), size: 4096 });
    await Promise.all(opts.deviceIds.map((id) => publisher.publishAsync(topics.command(id), payload(id), { qos: 1 })));
    const commands = await fleet.request({ op: 'await-commands', timeoutMs });
    const fanOutCpuMs = broker.cpuMs() - cpuBeforeFanOut;
    await publisher.endAsync();
    return {
      name, version, devices: opts.deviceIds.length, connected: connected.connected, failures: connected.failures,
      connectSeconds: (connected.lastConnectedAt - connected.startedAt) / 1000, connectMs: summarize(connected.connectMs),
      perDeviceRssBytes: (connectedRssBytes - idleRssBytes) / Math.max(1, connected.connected), idleRssBytes, connectedRssBytes, connectCpuMs,
      fanOutMs: commands.received === commands.online ? commands.lastAt - clock.offsetMs - started : null, fanOutReceived: commands.received, fanOutCpuMs,
    };
  } finally {
    await fleet.stop();
    await broker.stop();
  }
}

/**
 * The side-by-side table: each figure, each broker anchor's (Mosquitto, then bare Aedes behind
 * Node's TLS), and mqota / anchor. Images and start-up have one anchor, nginx, in the first column.
 */
export function comparisonTable(mqota: ScenarioResult[], brokers: (BrokerAnchorResult | string)[], images: ImageComparison, startup: StartSample[]): string {
  const KiB = 1024;
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? `${fixed(a / b, 2)}×` : '—');
  const perDevice = (ms: number, n: number) => `${fixed(ms / Math.max(1, n), 2)} ms`;
  const anchors = brokers.map((b) => (typeof b === 'string' ? null : b));
  const head = brokers.map((b) => (typeof b === 'string' ? b : `${b.name} (${b.version})`));
  const rows: string[] = [`| | ${head.join(' | ')} | mqota | ${anchors.map((a, i) => `mqota / ${a?.name ?? `anchor ${i + 1}`}`).join(' | ')} |`,
    `|---|${brokers.map(() => '---|').join('')}---|${brokers.map(() => '---|').join('')}`];
  const row = (label: string, cell: (a: BrokerAnchorResult) => string, mine: string, ratios: (a: BrokerAnchorResult) => string) =>
    rows.push(`| ${label} | ${anchors.map((a) => (a ? cell(a) : '—')).join(' | ')} | ${mine} | ${anchors.map((a) => (a ? ratios(a) : '—')).join(' | ')} |`);
  for (const r of mqota) {
    const db = r.kind === 'pglite' ? 'PGlite' : 'PostgreSQL';
    const connectS = r.connect.seconds;
    row(`${r.devices} devices connected (anchors: connect + subscribe; mqota: + announce answered, ${db})`, (a) => `${fixed(a.connectSeconds, 2)} s`,
      `${r.connect.answered}/${r.devices} in ${fixed(connectS, 2)} s, announce → answer p99 ${r.connect.announceToCommandMs ? fixed(r.connect.announceToCommandMs.p99, 0) : '—'} ms`,
      (a) => ratio(connectS, a.connectSeconds));
    row('server CPU while connecting, per device', (a) => perDevice(a.connectCpuMs, a.connected), perDevice(r.connect.server.cpuMs, r.connect.answered),
      (a) => ratio(r.connect.server.cpuMs / Math.max(1, r.connect.answered), a.connectCpuMs / Math.max(1, a.connected)));
    row('connect (TLS + CONNACK) p50 / p99', (a) => (a.connectMs ? `${fixed(a.connectMs.p50, 0)} / ${fixed(a.connectMs.p99, 0)} ms (+ SUBACK)` : '—'),
      r.connect.connectMs ? `${fixed(r.connect.connectMs.p50, 0)} / ${fixed(r.connect.connectMs.p99, 0)} ms` : '—', (a) => `${ratio(r.connect.connectMs?.p99, a.connectMs?.p99)} (p99)`);
    row('fan-out: every device holds its command (anchors: raw QoS 1 publishes; mqota: a rollout through the API)', (a) => (a.fanOutMs != null ? `${fixed(a.fanOutMs, 0)} ms` : `incomplete (${a.fanOutReceived})`),
      r.fanOut ? `${fixed(r.fanOut.ms, 0)} ms, event-loop delay p99 ${fixed(r.fanOut.server.loopDelay.p99, 0)} / max ${fixed(r.fanOut.server.loopDelay.max, 0)} ms` : 'failed',
      (a) => ratio(r.fanOut?.ms, a.fanOutMs));
    row('server CPU in the fan-out, per device', (a) => perDevice(a.fanOutCpuMs, a.fanOutReceived), r.fanOut ? perDevice(r.fanOut.server.cpuMs, r.fanOut.received) : '—',
      (a) => (r.fanOut ? ratio(r.fanOut.server.cpuMs / Math.max(1, r.fanOut.received), a.fanOutCpuMs / Math.max(1, a.fanOutReceived)) : '—'));
    const memory = memoryPerDevice(r);
    const how = memory === r.memory.perDevice ? 'from idle' : `one more device; from idle ${fixed(r.memory.perDevice.rss / KiB)}`;
    row('server memory per connected device (RSS; mqota after full GC)', (a) => `${fixed(a.perDeviceRssBytes / KiB)} KiB`,
      `${fixed(memory.rss / KiB)} KiB (JS objects ${fixed(memory.jsObjects / KiB)}; ${how})`, (a) => ratio(memory.rss, a.perDeviceRssBytes));
  }
  // Broker anchors after the first have no image or start-up figure.
  const others = brokers.slice(1).map(() => '—').join(' | ');
  const tail = brokers.slice(1).map(() => ' ').join(' | ');
  if (images.skipped) rows.push(`| 1.5 MB image, wrk -t1 -c100 over TLS | ${images.skipped} | ${others} | | | ${tail} |`);
  else if (images.runs.length) {
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const mb = (b: number) => `${fixed(b / 1024 / 1024, 0)} MB/s`;
    const ratios = images.runs.map((r) => r.ratio).sort((a, b) => a - b);
    const cpu = images.runs.map((r) => r.cpuRatio).sort((a, b) => a - b);
    rows.push(`| 1.5 MB image, wrk -t1 -c100 over TLS, token checked (median of ${images.runs.length} alternating runs) | ${mb(med(images.runs.map((r) => r.nginx.bytesPerSecond)))} (nginx, ${images.nginxWorkers} workers) | ${others} | ${mb(med(images.runs.map((r) => r.mqota.bytesPerSecond)))} | ${fixed(med(ratios), 2)}× (runs ${fixed(ratios[0], 2)}–${fixed(ratios[ratios.length - 1], 2)}×); per CPU-second ${fixed(med(cpu), 2)}× (${fixed(cpu[0], 2)}–${fixed(cpu[cpu.length - 1], 2)}×) | ${tail} |`);
  }
  for (const s of startup) {
    rows.push(`| ${s.kind} to healthy, idle RSS after full GC (PGlite) | — | ${others} | ${fixed(s.seconds, 2)} s, ${fixed(s.idleRssBytes / 1024 / 1024, 0)} MiB (peak ${fixed(s.peakRssBytes / 1024 / 1024, 0)} MiB)${s.compiled ? '' : `; ${FROM_SOURCES}`} | | ${tail} |`);
  }
  return rows.join('\n');
}
