// Targets of issue #2, PASS/MISS per database, the console report, a markdown table for the
// README, and the JSON results file. Targets are stated for 1,000 devices; for another N the
// time budgets scale linearly (N/1000 × 10 s to connect, N/1000 × 1 s to fan out, at least 1 s).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AnnouncePhase, PerDeviceMemory, ScenarioResult, ServerLoad } from './scenario.js';
import { KiB, MiB, fixed, type Summary } from './stats.js';

export interface Verdict {
  name: string;
  target: string;
  measured: string;
  pass: boolean;
}

export interface RunInfo {
  /** The commit measured, `+dirty` when src/, broker/, certs/ or prisma/ had uncommitted changes. */
  commit: string;
  devices: number;
  warmup: number;
  concurrency: number;
  node: string;
  cpus: string;
  /** The server's malloc (bin/start.sh's choice unless the run's environment overrides it). */
  allocator: string;
  credentialsSeconds: number;
  skipped: string[];
  serverEnv: Record<string, string>;
  serverNodeArgs: string[];
}

const TARGET_P99_MS = 50;
const TARGET_RSS_PER_DEVICE = 30 * KiB;

export function connectBudgetSeconds(devices: number): number {
  return (10 * devices) / 1000;
}

export function fanOutBudgetMs(devices: number): number {
  return Math.max(1000, devices);
}

/** The run's one-more-device reading, when it has one that succeeded. */
function marginalMemory(r: ScenarioResult) {
  const m = r.memory.marginal;
  return m && 'perDevice' in m ? m : null;
}

/** What one more device costs when the run measured it, else the growth from idle. */
export function memoryPerDevice(r: ScenarioResult): PerDeviceMemory {
  return marginalMemory(r)?.perDevice ?? r.memory.perDevice;
}

export function verdicts(r: ScenarioResult): Verdict[] {
  const n = r.devices;
  const perDevice = memoryPerDevice(r);
  const c = r.connect;
  const f = r.fanOut;
  const p99 = c.announceToCommandMs?.p99 ?? Infinity;
  const allUpdated = f !== null && f.online === n && f.received === n && f.wellFormed === n && f.distinctUpdateIds === n && f.duplicates === 0;
  return [
    {
      name: 'devices connected + answered',
      target: `${n.toLocaleString('en')} in ≤ ${fixed(connectBudgetSeconds(n), connectBudgetSeconds(n) < 10 ? 2 : 0)} s`,
      measured: `${c.answered.toLocaleString('en')} in ${fixed(c.seconds, 2)} s (${fixed(c.perSecond, 0)}/s)`,
      pass: c.answered === n && c.seconds <= connectBudgetSeconds(n),
    },
    {
      name: 'announce → command p99',
      target: `< ${TARGET_P99_MS} ms`,
      measured: `${ms(p99)} ms (p50 ${ms(c.announceToCommandMs?.p50)}, p95 ${ms(c.announceToCommandMs?.p95)})`,
      pass: p99 < TARGET_P99_MS,
    },
    {
      name: 'fan-out to all online devices',
      target: `< ${fixed(fanOutBudgetMs(n) / 1000, 0)} s`,
      measured: f
        ? `${ms(f.ms)} ms (${f.wellFormed.toLocaleString('en')} well-formed, ${f.distinctUpdateIds.toLocaleString('en')} distinct ids)`
        : `failed: ${r.failure?.split('\n')[0] ?? 'unknown'}`,
      pass: allUpdated && f.ms < fanOutBudgetMs(n),
    },
    {
      name: 'server RSS per connected device',
      target: `< ${TARGET_RSS_PER_DEVICE / KiB} KiB`,
      measured: `${fixed(perDevice.rss / KiB)} KiB (JS objects ${fixed(perDevice.jsObjects / KiB)})${perDevice === r.memory.perDevice ? ', from idle' : ', one more device'}`,
      pass: perDevice.rss < TARGET_RSS_PER_DEVICE,
    },
  ];
}

function ms(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  return n < 10 ? fixed(n, 1) : fixed(n, 0);
}

function percentiles(s: Summary | null): string {
  return s ? `p50 ${ms(s.p50)}  p95 ${ms(s.p95)}  p99 ${ms(s.p99)}  max ${ms(s.max)} ms` : 'no samples';
}

/** Other processes using more than this share of a core during a phase make its figures suspect. */
const DISTURBED_PERCENT = 15;

function load(l: ServerLoad): string {
  const disturbed = l.othersCpuPercent > DISTURBED_PERCENT ? ` — DISTURBED: other processes used ${fixed(l.othersCpuPercent, 0)} % of a core` : '';
  const { minor, major } = l.gcPauses;
  const gc = `GC pauses ${minor.count} minor ≤ ${ms(minor.maxMs)} ms, ${major.count} major ≤ ${ms(major.maxMs)} ms`;
  return `server CPU ${fixed(l.cpuPercent, 0)} %${threadSplit(l)}, event-loop delay p99 ${ms(l.loopDelay.p99)} max ${ms(l.loopDelay.max)} ms, ${gc}${disturbed}`;
}

/** ' (main 61, pglite 30, V8Worker 9)': the share of the server's CPU each kind of thread took, %, largest first. */
function threadSplit(l: ServerLoad): string {
  const entries = Object.entries(l.threads ?? {}).filter(([, ms]) => ms >= l.cpuMs / 200).sort((a, b) => b[1] - a[1]);
  if (!entries.length || !l.cpuMs) return '';
  return ` (${entries.map(([name, ms]) => `${name} ${fixed((ms / l.cpuMs) * 100, 0)}`).join(', ')})`;
}

/** '; read at once after the collections: 41.2 KiB', when the run read both (machine.ts MEMORY_SETTLE_MS). */
function atOnce(m: PerDeviceMemory): string {
  return m.rssAtOnce === undefined ? '' : `; read at once after the collections: ${fixed(m.rssAtOnce / KiB)} KiB`;
}

function announceLine(a: AnnouncePhase): string {
  return `${fixed(a.perSecond, 0)}/s; ${load(a.server)}; fleet CPU ${fixed(a.fleetCpuPercent, 0)} %, its loop delay p99 ${ms(a.fleetLoopDelayP99Ms)} ms`;
}

/** The phases during which other processes competed for the CPU. */
export function disturbedPhases(r: ScenarioResult): string[] {
  const phases: [string, ServerLoad][] = [
    ['connect', r.connect.server], ['re-announce 1', r.reannounce.oneAtATime.server],
    [`re-announce ${r.reannounce.concurrent.concurrency}`, r.reannounce.concurrent.server],
    ...(r.fanOut ? [['fan-out', r.fanOut.server] as [string, ServerLoad]] : []),
  ];
  return phases.filter(([, l]) => l.othersCpuPercent > DISTURBED_PERCENT).map(([name]) => name);
}

export function printScenario(r: ScenarioResult, info: RunInfo): void {
  const c = r.connect;
  const f = r.fanOut;
  const m = r.memory;
  const line = (label: string, text: string, verdict?: Verdict) =>
    console.log(`  ${label.padEnd(26)}${verdict ? `${text.padEnd(70)} [${verdict.target}] ${verdict.pass ? 'PASS' : 'MISS'}` : text}`);
  const [connected, latency, fanOut, memory] = verdicts(r);
  const env = [...Object.entries(info.serverEnv).map(([k, v]) => `${k}=${v}`), ...info.serverNodeArgs].join(' ');
  console.log(`\n${r.database} — ${r.devices.toLocaleString('en')} devices, ${info.concurrency} connecting at a time${env ? `, server settings ${env}` : ''}`);
  line('connect + announce', `${c.answered}/${r.devices} answered in ${fixed(c.seconds, 2)} s = ${fixed(c.perSecond, 0)} devices/s`, connected);
  if (Object.keys(c.failures).length) line('  failures', JSON.stringify(c.failures));
  line('  TLS + CONNACK', percentiles(c.connectMs));
  const { window, inProgress, commits } = c.handshakeWindow;
  if (window) line('  handshake window', `p50 ${window.p50}, ${window.min}–${window.max}; in progress p50 ${inProgress?.p50 ?? '—'}, max ${inProgress?.max ?? '—'} (${window.count} samples of /metrics)`);
  if (commits) line('  group commits', `${commits} while connecting, ${fixed(c.answered / commits, 1)} devices a commit`);
  line('  announce → command', percentiles(c.announceToCommandMs), latency);
  line('  load', announceLine(c));
  for (const a of [r.reannounce.oneAtATime, r.reannounce.concurrent]) {
    line(`re-announce, ${a.concurrency} at a time`, percentiles(a.announceToCommandMs));
    line('  load', announceLine(a));
    if (Object.keys(a.failures).length) line('  failures', JSON.stringify(a.failures));
  }
  line('server RSS', `${fixed(m.idle.rss / MiB)} MiB idle → ${fixed(m.connected.rss / MiB)} MiB with ${r.devices} online, after GC (as found: ${fixed(m.idleRawRssBytes / MiB)} → ${fixed(m.connectedRawRssBytes / MiB)}; peak ${fixed(m.peakRssBytes / MiB)} MiB)`);
  const d = m.perDevice;
  const marginal = marginalMemory(r);
  line('  per device, from idle', `${fixed(d.rss / KiB)} KiB: live JS objects ${fixed(d.jsObjects / KiB)}, native and heap slack ${fixed(d.native / KiB)}${atOnce(d)}`, marginal ? undefined : memory);
  if (marginal) {
    const e = marginal.perDevice;
    line('  one more device', `${fixed(e.rss / KiB)} KiB: live JS objects ${fixed(e.jsObjects / KiB)}, native and heap slack ${fixed(e.native / KiB)} (${marginal.devices} more devices: ${fixed(marginal.before.rss / MiB)} → ${fixed(marginal.after.rss / MiB)} MiB with ${marginal.online} online)${atOnce(e)}`, memory);
  } else if (m.marginal && 'why' in m.marginal) {
    line('  one more device', `not measured: ${m.marginal.why}`);
  }
  if (f) {
    line('fan-out', `last update ${ms(f.ms)} ms after POST /api/rollouts (first ${ms(f.firstCommandMs)} ms, API answered ${ms(f.apiMs)} ms)`, fanOut);
    line('  commands', `${f.received}/${f.online} online got update, ${f.wellFormed} well-formed, ${f.distinctUpdateIds} distinct updateIds, ${f.duplicates} duplicates; API: commanded ${f.commanded}`);
    for (const example of f.malformedExamples) line('  malformed', example);
    line('  load', `${load(f.server)}; ${fixed(f.server.cpuMs, 0)} ms CPU; clock offset fleet−bench ${fixed(f.clockOffsetMs, 2)} ms`);
  } else {
    line('fan-out', 'FAILED (below)', fanOut);
  }
  if (r.completion) {
    const k = r.completion;
    line('rollout completion', `${k.reported} reported accepted→succeeded in ${ms(k.reportedMs)} ms; API showed ${k.state} after ${ms(k.completedMs ?? NaN)} ms${k.failed ? ` (${k.failed} reports failed)` : ''}`);
  }
  if (r.failure) console.log(`  FAILED: ${r.failure.replace(/\n/g, '\n          ')}`);
  const warnings = Object.entries(r.serverWarnings);
  line('server warnings', warnings.length ? warnings.map(([msg, n]) => `${n}× ${msg}`).join('; ') : 'none');
  if (r.failure) for (const sample of Object.values(r.serverWarningSamples ?? {})) console.log(`    first: ${sample}`);
  const disturbed = disturbedPhases(r);
  if (disturbed.length) console.log(`  WARNING: other processes competed for the CPU during ${disturbed.join(', ')}; run again on a quiet machine`);
}

/** One column per database, ready to paste into a README. */
export function markdownTable(results: ScenarioResult[], info: RunInfo): string {
  if (!results.length) return '';
  const column = (r: ScenarioResult) => `${r.kind === 'pglite' ? 'PGlite' : 'PostgreSQL'}${disturbedPhases(r).length ? ' (disturbed)' : ''}`;
  const header = `| ${info.devices.toLocaleString('en')} devices, ${info.cpus} | target | ${results.map(column).join(' | ')} |`;
  const rule = `|---|---|${results.map(() => '---|').join('')}`;
  const rows = verdicts(results[0]).map((v, i) => `| ${v.name} | ${v.target} | ${results.map((r) => { const w = verdicts(r)[i]; return `${w.measured} **${w.pass ? 'PASS' : 'MISS'}**`; }).join(' | ')} |`);
  const extra = [
    `| announce → command p50 / p99, all online, one at a time | | ${results.map((r) => `${ms(r.reannounce.oneAtATime.announceToCommandMs?.p50)} / ${ms(r.reannounce.oneAtATime.announceToCommandMs?.p99)} ms`).join(' | ')} |`,
    `| announce throughput, all online, ${info.concurrency} in flight | | ${results.map((r) => `${fixed(r.reannounce.concurrent.perSecond, 0)}/s (p99 ${ms(r.reannounce.concurrent.announceToCommandMs?.p99)} ms)`).join(' | ')} |`,
    `| server event-loop delay p99 while connecting | | ${results.map((r) => `${ms(r.connect.server.loopDelay.p99)} ms`).join(' | ')} |`,
    `| TLS handshake + CONNACK p50 / p99 | | ${results.map((r) => `${ms(r.connect.connectMs?.p50)} / ${ms(r.connect.connectMs?.p99)} ms`).join(' | ')} |`,
    `| server RSS idle → all online (after GC) | | ${results.map((r) => `${fixed(r.memory.idle.rss / MiB, 0)} → ${fixed(r.memory.connected.rss / MiB, 0)} MiB`).join(' | ')} |`,
    `| POST /api/rollouts answered | | ${results.map((r) => r.fanOut ? `${ms(r.fanOut.apiMs)} ms` : 'failed').join(' | ')} |`,
  ];
  if (results.some((r) => r.completion)) {
    extra.push(`| all succeeded → API shows completed | | ${results.map((r) => r.completion ? `${ms(r.completion.completedMs ?? NaN)} ms` : '—').join(' | ')} |`);
  }
  return [header, rule, ...rows, ...extra].join('\n');
}

export async function writeResults(dir: string, info: RunInfo, results: ScenarioResult[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const body = { date: new Date().toISOString(), ...info, results: results.map((r) => ({ ...r, verdicts: verdicts(r), disturbedPhases: disturbedPhases(r) })) };
  await writeFile(file, JSON.stringify(body, null, 2) + '\n');
  return file;
}
