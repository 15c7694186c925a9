// `npm run bench -- --compare`: the anchors beside mqota in the same run. Mosquitto gets the same
// fleet process, credentials and connect storm as mqota (connect + subscribe: it answers no
// announce), then one client publishes a command to every device (QoS 1), as a rollout's fan-out
// would; its memory per device is the RSS growth with everyone connected. Images (nginx) and
// start-up are in images.ts and startup.ts.
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { MqttClient } from 'mqtt';
import { topics } from '../src/topics.js';
import { findBinary, startMosquitto, versionOf } from './anchors.js';
import { now } from './clock.js';
import { FleetProcess } from './fleet-process.js';
import type { FleetCredentials } from './fleet-protocol.js';
import type { ImageComparison } from './images.js';
import type { ScenarioResult } from './scenario.js';
import type { StartSample } from './startup.js';
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
  /** First publish → the last device holding its command; null if not all arrived. */
  fanOutMs: number | null;
  fanOutReceived: number;
}

const SETTLE_MS = 2_000;

export async function runMosquitto(opts: {
  workDir: string; certsDir: string; credentialsFile: string; deviceIds: string[]; publisherId: string; concurrency: number;
}): Promise<BrokerAnchorResult | string> {
  const binary = findBinary('mosquitto');
  if (!binary) return 'Mosquitto not installed (apt-get install mosquitto): skipped';
  const mosquitto = await startMosquitto({ binary, workDir: opts.workDir, certsDir: opts.certsDir });
  const fleet = FleetProcess.start(opts.credentialsFile);
  const timeoutMs = Math.max(60_000, opts.deviceIds.length * 30);
  try {
    await sleep(500);
    const idleRssBytes = mosquitto.rssBytes();
    const connected = await fleet.request({ op: 'connect-only', brokerPort: mosquitto.port, ids: opts.deviceIds, concurrency: opts.concurrency, timeoutMs });
    await sleep(SETTLE_MS);
    const connectedRssBytes = mosquitto.rssBytes();

    // The fan-out: one client publishes every device's command, QoS 1, like mqota's broker would.
    const creds = JSON.parse(await readFile(opts.credentialsFile, 'utf8')) as FleetCredentials;
    const me = creds.devices.find((d) => d.id === opts.publisherId);
    if (!me) throw new Error(`no credentials for ${opts.publisherId}`);
    const publisher = new MqttClient(() => tls.connect({ host: '127.0.0.1', port: mosquitto.port, ca: creds.caPem, cert: me.certPem, key: me.keyPem, servername: '127.0.0.1' }), {
      protocolVersion: 4, clientId: opts.publisherId, reconnectPeriod: 0,
    });
    await new Promise<void>((resolve, reject) => { publisher.once('connect', () => resolve()); publisher.once('error', reject); });
    const clock = await fleet.clockOffsetMs();
    const started = now();
    const payload = (id: string) => JSON.stringify({ action: 'update', updateId: `u-${id}`, type: 'bench', version: '1.1.0', url: `https://127.0.0.1/firmware/${'0'.repeat(64)}.bin`, sha256: '0'.repeat(64), size: 4096 });
    await Promise.all(opts.deviceIds.map((id) => publisher.publishAsync(topics.command(id), payload(id), { qos: 1 })));
    const commands = await fleet.request({ op: 'await-commands', timeoutMs });
    await publisher.endAsync();
    return {
      name: 'Mosquitto', version: versionOf(binary, ['-h']), devices: opts.deviceIds.length, connected: connected.connected, failures: connected.failures,
      connectSeconds: (connected.lastConnectedAt - connected.startedAt) / 1000, connectMs: summarize(connected.connectMs),
      perDeviceRssBytes: (connectedRssBytes - idleRssBytes) / Math.max(1, connected.connected), idleRssBytes, connectedRssBytes,
      fanOutMs: commands.received === commands.online ? commands.lastAt - clock.offsetMs - started : null, fanOutReceived: commands.received,
    };
  } finally {
    await fleet.stop();
    await mosquitto.stop();
  }
}

/** The side-by-side table: each figure, the anchor's, and mqota / anchor. */
export function comparisonTable(mqota: ScenarioResult[], broker: BrokerAnchorResult | string, images: ImageComparison, startup: StartSample[]): string {
  const KiB = 1024;
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? `${fixed(a / b, 2)}×` : '—');
  const rows: string[] = ['| | anchor | mqota | mqota / anchor |', '|---|---|---|---|'];
  const anchor = typeof broker === 'string' ? null : broker;
  for (const r of mqota) {
    const db = r.kind === 'pglite' ? 'PGlite' : 'PostgreSQL';
    const connectS = r.connect.seconds;
    rows.push(`| ${r.devices} devices connected (mqota: + announce answered, ${db}) | ${anchor ? `${fixed(anchor.connectSeconds, 2)} s (${anchor.name}, connect + subscribe)` : broker} | ${r.connect.answered}/${r.devices} in ${fixed(connectS, 2)} s, announce → answer p99 ${r.connect.announceToCommandMs ? fixed(r.connect.announceToCommandMs.p99, 0) : '—'} ms | ${ratio(connectS, anchor?.connectSeconds)} |`);
    rows.push(`| connect (TLS + CONNACK) p50 / p99 | ${anchor?.connectMs ? `${fixed(anchor.connectMs.p50, 0)} / ${fixed(anchor.connectMs.p99, 0)} ms (+ SUBACK)` : '—'} | ${r.connect.connectMs ? `${fixed(r.connect.connectMs.p50, 0)} / ${fixed(r.connect.connectMs.p99, 0)} ms` : '—'} | ${ratio(r.connect.connectMs?.p99, anchor?.connectMs?.p99)} (p99) |`);
    rows.push(`| fan-out: every device holds its command (mqota: a rollout through the API) | ${anchor?.fanOutMs != null ? `${fixed(anchor.fanOutMs, 0)} ms (raw QoS 1 publishes)` : '—'} | ${r.fanOut ? `${fixed(r.fanOut.ms, 0)} ms, event-loop delay p99 ${fixed(r.fanOut.server.loopDelay.p99, 0)} / max ${fixed(r.fanOut.server.loopDelay.max, 0)} ms` : 'failed'} | ${ratio(r.fanOut?.ms, anchor?.fanOutMs)} |`);
    rows.push(`| server memory per connected device (RSS; mqota after full GC) | ${anchor ? `${fixed(anchor.perDeviceRssBytes / KiB)} KiB` : '—'} | ${fixed(r.memory.perDevice.rss / KiB)} KiB (JS objects ${fixed(r.memory.perDevice.jsObjects / KiB)}) | ${ratio(r.memory.perDevice.rss, anchor?.perDeviceRssBytes)} |`);
  }
  if (images.skipped) rows.push(`| 1.5 MB image, wrk -t1 -c100 over TLS | ${images.skipped} | | |`);
  else if (images.runs.length) {
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const mb = (b: number) => `${fixed(b / 1024 / 1024, 0)} MB/s`;
    const ratios = images.runs.map((r) => r.ratio).sort((a, b) => a - b);
    const cpu = images.runs.map((r) => r.cpuRatio).sort((a, b) => a - b);
    rows.push(`| 1.5 MB image, wrk -t1 -c100 over TLS, token checked (median of ${images.runs.length} alternating runs) | ${mb(med(images.runs.map((r) => r.nginx.bytesPerSecond)))} (nginx, ${images.nginxWorkers} workers) | ${mb(med(images.runs.map((r) => r.mqota.bytesPerSecond)))} | ${fixed(med(ratios), 2)}× (runs ${fixed(ratios[0], 2)}–${fixed(ratios[ratios.length - 1], 2)}×); per CPU-second ${fixed(med(cpu), 2)}× (${fixed(cpu[0], 2)}–${fixed(cpu[cpu.length - 1], 2)}×) |`);
  }
  for (const s of startup) {
    rows.push(`| ${s.kind} to healthy, idle RSS after full GC (PGlite) | — | ${fixed(s.seconds, 2)} s, ${fixed(s.idleRssBytes / 1024 / 1024, 0)} MiB (peak ${fixed(s.peakRssBytes / 1024 / 1024, 0)} MiB) | |`);
  }
  return rows.join('\n');
}
