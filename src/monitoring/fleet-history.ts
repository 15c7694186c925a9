// The dashboard's "over time": a rollout's attempts per state, replayed from the attempt
// histories already stored (AttemptEvent), and a fleet's versions per type, from samples taken
// every MQOTA_VERSION_SAMPLE_MS (VersionSample; a device's version also changes outside rollouts,
// so it cannot be derived from attempts).
import type { PrismaClient } from '../generated/prisma/client.js';
import type { DeviceRegistry } from '../fleet/device-registry.js';
import type { Logger } from '../logger.js';

/** Columnar series, as charts take them: times (ms) and, per name, a value at each time. */
export interface TimeSeries { at: number[]; series: Record<string, number[]> }

const MAX_POINTS = 300;
const SAMPLE_RETENTION_MS = 90 * 86_400_000;

/**
 * Attempts per state after each change, from their state histories in time order. Consecutive
 * changes closer than the resolution that MAX_POINTS allows keep the last one of each bucket.
 */
export function replayStates(events: Array<{ attemptId: string; state: string; at: Date }>, now: number): TimeSeries {
  const current = new Map<string, string>();
  const counts = new Map<string, number>();
  const points: Array<{ at: number; counts: Map<string, number> }> = [];
  const first = events[0]?.at.getTime() ?? now;
  const bucket = Math.max(1, (Math.max(now, first + 1) - first) / MAX_POINTS);
  for (const e of events) {
    const prev = current.get(e.attemptId);
    if (prev === e.state) continue; // a progress report in the same state
    if (prev) counts.set(prev, (counts.get(prev) ?? 0) - 1);
    counts.set(e.state, (counts.get(e.state) ?? 0) + 1);
    current.set(e.attemptId, e.state);
    const at = e.at.getTime();
    const last = points.at(-1);
    if (last && Math.floor((at - first) / bucket) === Math.floor((last.at - first) / bucket) && points.length > 1) points.pop();
    points.push({ at, counts: new Map(counts) });
  }
  if (points.length) points.push({ at: Math.max(now, points.at(-1)!.at), counts: new Map(counts) }); // the line reaches "now"
  const states = [...counts.keys()];
  return { at: points.map((p) => p.at), series: Object.fromEntries(states.map((s) => [s, points.map((p) => p.counts.get(s) ?? 0)])) };
}

export class FleetHistory {
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: { prisma: PrismaClient; registry: DeviceRegistry; logger: Logger; sampleMs: number; now?: () => number }) {}

  private now(): number { return (this.deps.now ?? Date.now)(); }

  /** Attempts per state over the rollout's life; null if there is no such rollout. */
  async rolloutTimeline(rolloutId: string): Promise<TimeSeries | null> {
    const { prisma } = this.deps;
    if (!await prisma.rollout.findUnique({ where: { id: rolloutId }, select: { id: true } })) return null;
    const events = await prisma.attemptEvent.findMany({
      where: { attempt: { rolloutId } }, orderBy: [{ at: 'asc' }, { id: 'asc' }], select: { attemptId: true, state: true, at: true },
    });
    return replayStates(events, this.now());
  }

  /** Devices per version of a type, as sampled since `since`. */
  async versionHistory(type: string, since: Date): Promise<TimeSeries> {
    const rows = await this.deps.prisma.versionSample.findMany({ where: { type, at: { gte: since } }, orderBy: { at: 'asc' } });
    const times = [...new Set(rows.map((r) => r.at.getTime()))];
    const index = new Map(times.map((t, i) => [t, i]));
    const series: Record<string, number[]> = {};
    for (const r of rows) (series[r.version] ??= times.map(() => 0))[index.get(r.at.getTime())!] = r.devices;
    return { at: times, series };
  }

  /** Writes one sample of every type's versions now (idempotent per interval), and drops old ones. */
  async sample(): Promise<void> {
    const at = new Date(Math.floor(this.now() / this.deps.sampleMs) * this.deps.sampleMs);
    const counts = new Map<string, { type: string; version: string; devices: number }>();
    for (const d of this.deps.registry.all()) {
      if (!d.type || !d.version) continue;
      const key = `${d.type}\u0000${d.version}`;
      const c = counts.get(key) ?? { type: d.type, version: d.version, devices: 0 };
      c.devices++;
      counts.set(key, c);
    }
    await this.deps.prisma.versionSample.createMany({ data: [...counts.values()].map((c) => ({ at, ...c })), skipDuplicates: true });
    await this.deps.prisma.versionSample.deleteMany({ where: { at: { lt: new Date(at.getTime() - SAMPLE_RETENTION_MS) } } });
  }

  /** Samples now and then every interval; returns the stop function. */
  start(): () => void {
    const run = () => { this.sample().catch((err) => this.deps.logger.warn({ err }, 'version sample not written')); };
    run();
    this.timer = setInterval(run, this.deps.sampleMs);
    this.timer.unref();
    return () => { if (this.timer) clearInterval(this.timer); this.timer = null; };
  }
}
