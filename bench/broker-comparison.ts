// `npm run bench -- --broker mosquitto` (issue #10): the same fleet against mqota's embedded broker,
// then Mosquitto with one and with two mqota instances in external mode, all over PostgreSQL, one
// after the other in the same run; one table side by side. Skipped, with the reason, where
// Mosquitto or PostgreSQL is missing.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { findBinary, versionOf } from './anchors.js';
import type { RunInfo } from './report.js';
import type { FleetBenchOptions } from './scenario.js';
import { runBrokerScenario, type DeploymentResult, type MemoryPoint } from './broker-scenario.js';
import type { Databases } from './database.js';
import { deploymentName, startDeployment, type DeploymentSpec } from './deployment.js';
import { KiB, MiB, fixed, type Summary } from './stats.js';

export const DEPLOYMENTS: DeploymentSpec[] = [{ broker: 'embedded' }, { broker: 'mosquitto', instances: 1 }, { broker: 'mosquitto', instances: 2 }];

export interface BrokerComparisonOptions extends FleetBenchOptions {
  resultsDir: string;
}

/** Why the comparison cannot run here, or null. */
export function brokerComparisonUnavailable(databases: Databases): string | null {
  if (!findBinary('mosquitto')) return 'Mosquitto is not installed (apt-get install mosquitto, or bash scripts/install-test-deps.sh): --broker mosquitto skipped';
  const pg = databases.postgresUnavailable();
  return pg ? `PostgreSQL is needed for mqota's instances, but ${pg}: --broker mosquitto skipped` : null;
}

/** Runs every deployment in turn; a failed one is reported in its column, the others still run. */
export async function runBrokerComparison(databases: Databases, opts: BrokerComparisonOptions, info: RunInfo): Promise<{ results: DeploymentResult[]; table: string; file: string }> {
  const mosquittoBinary = findBinary('mosquitto');
  const mosquittoVersion = mosquittoBinary ? versionOf(mosquittoBinary, ['-h']) : 'not installed';
  const adminToken = `bench-${process.pid}-${Math.random().toString(36).slice(2)}-token`;
  const results: (DeploymentResult | { name: string; failure: string })[] = [];
  let database = '';
  for (const spec of DEPLOYMENTS) {
    const name = deploymentName(spec);
    console.log(`\n${name}: ${opts.deviceIds.length.toLocaleString('en')} devices, ${opts.concurrency} connecting at a time...`);
    const db = await databases.open('postgres');
    database = db.description;
    try {
      const deployment = await startDeployment(spec, { ...opts, adminToken, db, mosquittoBinary });
      try {
        const r = await runBrokerScenario(deployment, { ...opts, adminToken });
        for (const s of deployment.servers) for (const [msg, n] of Object.entries(s.log.warnings)) r.serverWarnings[msg] = (r.serverWarnings[msg] ?? 0) + n;
        printDeployment(r);
        results.push(r);
      } finally {
        await deployment.stop();
      }
    } catch (err) {
      console.log(`  FAILED: ${(err as Error).message}`);
      results.push({ name, failure: (err as Error).message.split('\n')[0] });
    } finally {
      await db.drop().catch(() => undefined);
    }
  }
  const table = brokerTable(results, { devices: opts.deviceIds.length, concurrency: opts.concurrency, cpus: info.cpus, database, mosquitto: mosquittoVersion });
  await mkdir(opts.resultsDir, { recursive: true });
  const file = path.join(opts.resultsDir, `brokers-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify({ date: new Date().toISOString(), ...info, database, mosquitto: mosquittoVersion, results }, null, 2)}\n`);
  return { results: results.filter((r): r is DeploymentResult => 'devices' in r), table, file };
}

const mib = (b: number) => fixed(b / MiB, 0);
const ms = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '—' : n < 10 ? fixed(n, 1) : fixed(n, 0));
const p50p99 = (s: Summary | null) => (s ? `${ms(s.p50)} / ${ms(s.p99)} ms` : '—');

/** What one more connected device costs: RSS growth from half the fleet to all of it, per device. */
function growthPerDevice(memory: MemoryPoint[], pick: (m: MemoryPoint) => number): number {
  const [, half, full] = memory;
  if (!half || !full || full.devices === half.devices) return NaN;
  return (pick(full) - pick(half)) / (full.devices - half.devices);
}

function printDeployment(r: DeploymentResult): void {
  const c = r.connect;
  console.log(`  connect + announce: ${c.answered}/${r.devices} answered in ${fixed(c.seconds, 2)} s; TLS + CONNACK p50/p99 ${p50p99(c.connectMs)}; announce → command p50/p99 ${p50p99(c.announceToCommandMs)}${Object.keys(c.failures).length ? `; failures ${JSON.stringify(c.failures)}` : ''}`);
  for (const m of r.memory) console.log(`  with ${String(m.devices).padStart(6)} online: mqota ${m.instances.map(mib).join(' + ')} MiB${m.mosquitto === null ? '' : `, Mosquitto ${mib(m.mosquitto)} MiB`}`);
  if (r.fanOut) console.log(`  fan-out: ${r.fanOut.received}/${r.fanOut.online} got their update (${r.fanOut.wellFormed} well-formed, ${r.fanOut.distinctUpdateIds} distinct ids, ${r.fanOut.duplicates} duplicates) ${ms(r.fanOut.ms)} ms after POST /api/rollouts to instance ${r.leader} (the leader)`);
  if (r.failure) console.log(`  FAILED: ${r.failure}`);
  const warnings = Object.entries(r.serverWarnings);
  if (warnings.length) console.log(`  mqota warnings: ${warnings.map(([msg, n]) => `${n}× ${msg}`).join('; ')}`);
  if (r.othersCpuPercent > 15) console.log(`  DISTURBED: other processes used up to ${fixed(r.othersCpuPercent, 0)} % of a core during a timed phase`);
}

export function brokerTable(
  results: (DeploymentResult | { name: string; failure: string })[],
  info: { devices: number; concurrency: number; cpus: string; database: string; mosquitto: string },
): string {
  const ok = (r: (typeof results)[number]): r is DeploymentResult => 'devices' in r;
  const cell = (f: (r: DeploymentResult) => string) => results.map((r) => (ok(r) ? f(r) : 'failed')).join(' | ');
  const n = info.devices.toLocaleString('en');
  const half = Math.ceil(info.devices / 2).toLocaleString('en');
  const most = Math.max(1, ...results.filter(ok).map((r) => r.instances));
  const memoryPath = (pick: (m: MemoryPoint) => number) => (r: DeploymentResult) => r.memory.map((m) => mib(pick(m))).join(' → ');
  const rows = [
    `| ${n} devices, ${info.concurrency} connecting at a time; ${info.cpus}; ${info.database} | ${results.map((r) => `${r.name}${ok(r) && r.othersCpuPercent > 15 ? ' (disturbed)' : ''}`).join(' | ')} |`,
    `|---|${results.map(() => '---|').join('')}`,
    `| connect + announce answered, all devices | ${cell((r) => `${r.connect.answered.toLocaleString('en')} in ${fixed(r.connect.seconds, 1)} s (${fixed(r.connect.answered / r.connect.seconds, 0)}/s)`)} |`,
    `| TLS + CONNACK p50 / p99 | ${cell((r) => p50p99(r.connect.connectMs))} |`,
    `| announce → command p50 / p99 | ${cell((r) => p50p99(r.connect.announceToCommandMs))} |`,
    `| fan-out: POST /api/rollouts → every device holds its update | ${cell((r) => (r.fanOut ? `${ms(r.fanOut.ms)} ms${r.fanOut.wellFormed === r.devices && r.fanOut.duplicates === 0 ? '' : ` (${r.fanOut.wellFormed}/${r.devices} well-formed, ${r.fanOut.duplicates} duplicates)`}` : `failed: ${r.failure}`))} |`,
    ...Array.from({ length: most }, (_, i) => `| mqota${most > 1 ? ` instance ${'abcdefgh'[i]}` : ''} RSS (after GC), MiB, with 0 → ${half} → ${n} online | ${cell((r) => (i < r.instances ? memoryPath((m) => m.instances[i])(r) : ''))} |`),
    `| mqota RSS per connected device (all instances, half → all) | ${cell((r) => `${fixed(growthPerDevice(r.memory, (m) => m.instances.reduce((a, b) => a + b, 0)) / KiB, 1)} KiB`)} |`,
    `| Mosquitto RSS, MiB, with 0 → ${half} → ${n} online | ${cell((r) => (r.memory[0].mosquitto === null ? '— (in mqota)' : memoryPath((m) => m.mosquitto!)(r)))} |`,
    `| Mosquitto RSS per connected device | ${cell((r) => (r.memory[0].mosquitto === null ? '—' : `${fixed(growthPerDevice(r.memory, (m) => m.mosquitto!) / KiB, 1)} KiB`))} |`,
    `| all processes' RSS with ${n} online | ${cell((r) => { const full = r.memory[r.memory.length - 1]; return `${mib(full.instances.reduce((a, b) => a + b, 0) + (full.mosquitto ?? 0))} MiB`; })} |`,
  ];
  return `${rows.join('\n')}\n\n${info.mosquitto}. mqota's RSS is read after full garbage collections; Mosquitto's as found.`;
}
