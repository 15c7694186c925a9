// Steering a rollout that runs: an operator edits its settings, retries its failed devices,
// promotes the next wave by hand, or resumes it acknowledging the failures so far. Each is decided
// here (pure) and recorded by the lifecycle as one guarded transition (fleet-repository.ts): the
// settings, the members' waves or granted retries and the history row commit together, or not at
// all, and memory follows only what committed (applyChanges).
import type { RolloutChanges } from '../db/fleet-repository.js';
import type { ActiveRollout } from './active-rollout.js';
import type { FailureThreshold, MaintenanceWindow, RolloutPolicy } from './policy.js';
import { RolloutError, validateRequest } from './rollout-request.js';
import { isTerminal, OPERATOR_RETRYABLE_STATES } from './states.js';
import { waveHash, type WavePlan } from './waves.js';

/** What an operator may change while a rollout is scheduled, running or paused; null removes a limit. */
export interface RolloutEdit {
  waves?: number[];
  waveUnit?: 'percent' | 'count';
  minSuccessRatio?: number;
  soakSeconds?: number;
  maxPerMinute?: number | null;
  failureThreshold?: FailureThreshold | null;
  onFailureThreshold?: 'pause' | 'abort';
  attemptTimeoutSeconds?: number | null;
  maxRetries?: number;
  retryBackoffSeconds?: number;
  maintenanceWindow?: MaintenanceWindow | null;
  waveDeadlineSeconds?: number | null;
}

/** Policy fields an edit may set. Downgrade permission is not among them: it is decided at creation. */
export const EDITABLE_POLICY_FIELDS = ['minSuccessRatio', 'soakSeconds', 'maxPerMinute', 'failureThreshold', 'onFailureThreshold',
  'attemptTimeoutSeconds', 'maxRetries', 'retryBackoffSeconds', 'maintenanceWindow', 'waveDeadlineSeconds'] as const satisfies readonly (keyof RolloutPolicy)[];

export interface PlannedEdit {
  changes: RolloutChanges;
  /** "soakSeconds 0 → 300, waves 10,100 → 10,50,100"; empty when nothing changes. */
  summary: string[];
  policy: RolloutPolicy;
  plan: WavePlan;
}

/** The edit validated as creation validates (rollout-request.ts), plus: waves that have started keep their sizes. */
export function planEdit(r: ActiveRollout, edit: RolloutEdit): PlannedEdit {
  const policy: RolloutPolicy = { ...r.policy };
  for (const key of EDITABLE_POLICY_FIELDS) if (edit[key] !== undefined) (policy as unknown as Record<string, unknown>)[key] = edit[key];
  const waves = edit.waves ?? (edit.waveUnit && edit.waveUnit !== r.plan.unit ? r.plan.sizes : undefined);
  const plan = waves
    ? validateRequest({ firmwareId: r.firmware.id, waves, waveUnit: edit.waveUnit ?? r.plan.unit }, policy)
    : (validateRequest({ firmwareId: r.firmware.id }, policy), r.plan);
  const summary: string[] = [];
  for (const key of EDITABLE_POLICY_FIELDS) {
    if (JSON.stringify(policy[key]) !== JSON.stringify(r.policy[key])) summary.push(`${key} ${show(r.policy[key])} → ${show(policy[key])}`);
  }
  const changes: RolloutChanges = { keepReason: true };
  if (summary.length) changes.policy = policy;
  if (JSON.stringify(plan) !== JSON.stringify(r.plan)) {
    const started = r.currentWave + 1;
    const keeps = plan.unit === r.plan.unit && plan.sizes.length > r.currentWave && r.plan.sizes.slice(0, started).every((s, i) => plan.sizes[i] === s);
    if (!keeps) {
      throw new RolloutError(409, `wave${started > 1 ? `s 1–${started} have` : ' 1 has'} started: ${r.plan.sizes.slice(0, started).join(', ')} (${r.plan.unit}) must stay, and waves may be changed or added after ${started === 1 ? 'it' : 'them'}`);
    }
    changes.waves = plan;
    changes.members = reassignLaterWaves(r.id, r.members, r.currentWave, plan);
    summary.push(`waves ${r.plan.sizes.join(',')} → ${plan.sizes.join(',')}${plan.unit === 'count' ? ' devices' : ' %'}`);
  }
  return { changes, summary, policy, plan };
}

/**
 * New waves for the members of waves not yet started: ranked by the same hash as at creation
 * and cut at the new cumulative sizes, counted over today's members; members of started waves
 * keep theirs. Returns the members whose wave changes.
 */
export function reassignLaterWaves(rolloutId: string, members: ReadonlyMap<string, { wave: number }>, currentWave: number, plan: WavePlan): Array<{ deviceId: string; wave: number }> {
  const total = members.size;
  let placed = 0;
  const later: Array<{ id: string; h: number; wave: number }> = [];
  for (const [id, m] of members) {
    if (m.wave <= currentWave) placed++;
    else later.push({ id, h: waveHash(rolloutId, id), wave: m.wave });
  }
  later.sort((a, b) => a.h - b.h || (a.id < b.id ? -1 : 1));
  const last = plan.sizes.length - 1;
  const cut = (i: number) => (i === last ? total : Math.min(total, plan.unit === 'percent' ? Math.ceil((plan.sizes[i] / 100) * total) : plan.sizes[i]));
  const moved: Array<{ deviceId: string; wave: number }> = [];
  let wave = currentWave + 1;
  for (const m of later) {
    while (wave < last && placed >= cut(wave)) wave++;
    const next = Math.min(wave, last);
    if (next !== m.wave) moved.push({ deviceId: m.id, wave: next });
    placed++;
  }
  return moved;
}

/**
 * Members to retry: their latest committed attempt failed, timed out or rolled back, and nothing
 * is in flight for them. Each may have one more attempt than it had.
 */
export function planRetry(r: ActiveRollout, inFlight: (deviceId: string) => boolean): Array<{ deviceId: string; retryUpTo: number }> {
  const out: Array<{ deviceId: string; retryUpTo: number }> = [];
  for (const [deviceId, m] of r.members) {
    const latest = m.latest;
    if (!latest || !isTerminal(latest.state) || !OPERATOR_RETRYABLE_STATES.has(latest.state) || inFlight(deviceId)) continue;
    out.push({ deviceId, retryUpTo: Math.max(latest.retry + 1, m.retryUpTo ?? 0) });
  }
  return out.sort((x, y) => (x.deviceId < y.deviceId ? -1 : 1));
}

/** Memory follows a committed transition's changes. */
export function applyChanges(r: ActiveRollout, c: RolloutChanges | undefined): void {
  if (!c) return;
  if (c.policy) r.policy = c.policy as RolloutPolicy;
  if (c.waves) r.plan = c.waves as WavePlan;
  if (c.acknowledged) r.acknowledged = { ...c.acknowledged };
  if (c.waveStartedAt) r.waveStartedAt = c.waveStartedAt.getTime();
  for (const m of c.members ?? []) {
    const member = r.members.get(m.deviceId);
    if (!member) continue;
    if (m.wave !== undefined) member.wave = m.wave;
    if (m.retryUpTo !== undefined) member.retryUpTo = m.retryUpTo;
  }
}

function show(value: unknown): string {
  if (value === null || value === undefined) return 'none';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}
