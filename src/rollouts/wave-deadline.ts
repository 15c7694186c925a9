// A wave's deadline for the devices it cannot reach, and what a wave is waiting for. Pure: it
// reads a rollout's committed standing, the devices' presence and the time.
//
// A member that is offline with nothing in flight cannot be updated now; once the wave has run
// for `waveDeadlineSeconds` (since its start or the latest resume) it counts as `skipped:
// offline`: neither a success nor a failure, so the wave stops waiting for it. It is still a
// member: if it comes back while the rollout runs, its announce gets the update as before.
import type { Device } from '../fleet/device-registry.js';
import type { ActiveRollout, Member } from './active-rollout.js';
import { isTerminal, UPDATING_STATES, type AttemptState } from './states.js';

/** Whether the deadline of `wave` has passed: earlier waves are over, later ones have not started. */
export function waveDeadlinePassed(r: Pick<ActiveRollout, 'policy' | 'currentWave' | 'state' | 'waveStartedAt'>, wave: number, now: number): boolean {
  const seconds = r.policy.waveDeadlineSeconds;
  if (seconds === null || wave > r.currentWave || r.state === 'scheduled') return false;
  return wave < r.currentWave || now >= r.waveStartedAt + seconds * 1000;
}

/** Seconds left before the current wave's deadline (null: no deadline, or not running). */
export function deadlineIn(r: Pick<ActiveRollout, 'policy' | 'state' | 'waveStartedAt'>, now: number): number | null {
  const seconds = r.policy.waveDeadlineSeconds;
  if (seconds === null || r.state === 'scheduled') return null;
  return Math.max(0, Math.ceil((r.waveStartedAt + seconds * 1000 - now) / 1000));
}

/** Offline, nothing in flight for it, and its wave's deadline passed: the member counts as skipped. */
export function unreachablePastDeadline(r: Pick<ActiveRollout, 'policy' | 'currentWave' | 'state' | 'waveStartedAt'>, m: Member, d: Device | undefined, now: number): boolean {
  if (d?.online) return false;
  if (m.latest && !isTerminal(m.latest.state)) return false; // commanded, deferred or updating: the attempt decides
  return waveDeadlinePassed(r, m.wave, now);
}

export interface WaveWait {
  /** 1-based, as every view shows it. */
  wave: number;
  waves: number;
  /** Open members, not counting those only soaking. */
  waiting: number;
  offline: number;
  commanded: number;
  deferred: number;
  updating: number;
  /** Online, not yet commanded (rate limit, window, or the next tick). */
  notYetCommanded: number;
  soaking: number;
  deadlineInSeconds: number | null;
  soakLeftSeconds: number | null;
  /** "wave 2 of 4: waiting for 3 devices (2 offline, deadline in 40 s), soak 5 min left" */
  text: string;
}

/**
 * What the current wave waits for. `attemptState` gives the working state of a member's attempt
 * in flight (the committed latest may lag it by a batch).
 */
export function describeWave(r: ActiveRollout, device: (id: string) => Device | undefined, attemptState: (id: string) => AttemptState | undefined, now: number): WaveWait {
  const w: WaveWait = {
    wave: r.currentWave + 1, waves: r.plan.sizes.length, waiting: 0, offline: 0, commanded: 0, deferred: 0, updating: 0, notYetCommanded: 0, soaking: 0,
    deadlineInSeconds: null, soakLeftSeconds: null, text: '',
  };
  let soakEnds = 0;
  for (const [id, m] of r.members) {
    if (m.wave !== r.currentWave) continue;
    const d = device(id);
    if (r.outcome(m, d, now) !== 'open') continue;
    const state = attemptState(id) ?? (m.latest && !isTerminal(m.latest.state) ? m.latest.state : undefined);
    if (!state && m.latest?.state === 'succeeded') {
      w.soaking++;
      soakEnds = Math.max(soakEnds, (m.latest.finishedAt ?? 0) + r.policy.soakSeconds * 1000);
      continue;
    }
    w.waiting++;
    if (state === 'deferred') w.deferred++;
    else if (state && UPDATING_STATES.has(state)) w.updating++;
    else if (state) w.commanded++;
    else if (!d?.online) w.offline++;
    else w.notYetCommanded++;
  }
  if (w.offline) w.deadlineInSeconds = deadlineIn(r, now);
  if (w.soaking) w.soakLeftSeconds = Math.max(0, Math.ceil((soakEnds - now) / 1000));
  w.text = waveWaitText(w);
  return w;
}

export function waveWaitText(w: Omit<WaveWait, 'text'>): string {
  const head = `wave ${w.wave} of ${w.waves}`;
  const parts: string[] = [];
  if (w.waiting) {
    const detail = [
      w.offline && `${w.offline} offline${w.deadlineInSeconds === null ? '' : w.deadlineInSeconds > 0 ? `, deadline in ${duration(w.deadlineInSeconds)}` : ', deadline passed'}`,
      w.updating && `${w.updating} updating`, w.commanded && `${w.commanded} commanded`, w.deferred && `${w.deferred} deferred`,
      w.notYetCommanded && `${w.notYetCommanded} not yet commanded`,
    ].filter(Boolean);
    parts.push(`waiting for ${w.waiting} device${w.waiting === 1 ? '' : 's'} (${detail.join(', ')})`);
  }
  if (w.soaking) parts.push(`soak ${duration(w.soakLeftSeconds ?? 0)} left`);
  return parts.length ? `${head}: ${parts.join(', ')}` : head;
}

/** 40 s, 5 min, 2 h 5 min: what an operator reads at a glance. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h${minutes % 60 ? ` ${minutes % 60} min` : ''}`;
}
