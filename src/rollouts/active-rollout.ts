// One scheduled, running or paused rollout in memory, as the database has it: its target set with
// waves, the latest committed attempt of each member, counters, and the decisions that follow from
// them (is the current wave done, has the failure threshold been reached). Attempt changes reach
// it only once committed, so what it decides, it decides on durable state. No I/O.
import type { Firmware } from '../firmware/catalog.js';
import type { Device } from '../fleet/device-registry.js';
import { ATTEMPT_STATES, FAILURE_STATES, isTerminal, OPERATOR_RETRYABLE_STATES, RETRYABLE_STATES, zeroCounts, type AttemptState } from './states.js';
import { alreadyThere } from './eligibility.js';
import { ATTEMPT_RANK } from './attempt-state.js';
import { failureThresholdReached, type RolloutPolicy } from './policy.js';
import type { Targeting } from './targeting.js';
import { unreachablePastDeadline } from './wave-deadline.js';
import type { WavePlan } from './waves.js';
import type { ActiveState } from './states.js';


export interface LatestAttempt {
  id: string;
  state: AttemptState;
  retry: number;
  /** When it reached a terminal state (ms since epoch). */
  finishedAt: number | null;
}

export interface Member {
  wave: number;
  latest: LatestAttempt | null;
  /** Rolled back or fell off the new version after succeeding, during the soak. */
  unhealthy: boolean;
  /** An operator's retry: attempts up to this retry number after a failure (rollout-edits.ts). */
  retryUpTo?: number;
}

export interface WaveStats {
  index: number;
  devices: number;
  /** Succeeded and healthy for the soak time, or already on the version. */
  healthy: number;
  /** Finished without success and without retries left. */
  failed: number;
  /** Unreachable past the wave's deadline (wave-deadline.ts): neither success nor failure. */
  skipped: number;
  /** Healthy, failed or skipped: the wave waits for them no more. */
  settled: number;
}

export type WaveVerdict = { action: 'wait' } | { action: 'promote' | 'complete' } | { action: 'pause'; reason: string };

export function emptyWaveStats(index: number): WaveStats {
  return { index, devices: 0, healthy: 0, failed: 0, skipped: 0, settled: 0 };
}

export class ActiveRollout {
  readonly members = new Map<string, Member>();
  readonly counts = zeroCounts();
  /** Token bucket of the per-minute rate limit: refills at maxPerMinute/60 per second, holds one second's worth. */
  private tokens = 0;
  private tokensAt = 0;

  constructor(
    readonly id: string,
    readonly firmware: Firmware,
    readonly targeting: Targeting,
    /** Plan and policy change only by an operator's edit (rollout-edits.ts). */
    public plan: WavePlan,
    public policy: RolloutPolicy,
    public state: ActiveState,
    public currentWave: number,
    /** Why the rollout is in its state (the latest transition's reason). */
    public reason: string | null,
    readonly startAt: Date | null,
    /** Size of the target set at creation: the base of count-based waves for late joiners. */
    readonly initialTargets: number,
    readonly createdAt: Date,
  ) {}

  /** Failures and finished attempts the operator acknowledged by resuming: the threshold counts from there. */
  acknowledged = { failures: 0, finished: 0 };
  /** When the current wave started or the rollout last resumed (ms): the wave deadline counts from here. */
  waveStartedAt = 0;

  get lastWave(): number {
    return this.plan.sizes.length - 1;
  }

  /** Records a new command for the rate limit. */
  noteDispatch(now: number): void {
    if (this.policy.maxPerMinute === null) return;
    this.refill(now);
    this.tokens -= 1;
  }

  // Smooths the load on the image server: at most maxPerMinute commands in any minute, and
  // no burst larger than one second's share.
  rateAllows(now: number): boolean {
    if (this.policy.maxPerMinute === null) return true;
    this.refill(now);
    return this.tokens >= 1;
  }

  private refill(now: number): void {
    const perMs = this.policy.maxPerMinute! / 60_000;
    const capacity = Math.max(1, Math.floor(this.policy.maxPerMinute! / 60));
    if (this.tokensAt === 0) this.tokens = capacity;
    else this.tokens = Math.min(capacity, this.tokens + (now - this.tokensAt) * perMs);
    this.tokensAt = now;
  }

  /** After a restart the bucket starts empty when commands went out in the last minute. */
  seedDispatches(lastAt: number): void {
    if (this.policy.maxPerMinute === null) return;
    this.tokensAt = lastAt;
    this.tokens = 0;
  }

  /**
   * A committed attempt change of a member: counters move from the state the member's attempt was
   * known in to the new one. Idempotent, and older news (an earlier retry, a state behind the one
   * known) changes nothing, so it may come from this instance's commits and from the change feed alike.
   */
  recordAttempt(deviceId: string, latest: LatestAttempt): void {
    const member = this.members.get(deviceId);
    if (!member) { this.counts[latest.state]++; return; } // not a member (cannot happen): counted, as before
    const known = member.latest;
    if (known && known.retry > latest.retry) return;
    const previous = known?.id === latest.id ? known.state : null;
    if (previous === latest.state) return;
    if (previous && ATTEMPT_RANK[latest.state] < ATTEMPT_RANK[previous]) return;
    member.latest = { ...latest };
    if (previous) this.counts[previous]--;
    this.counts[latest.state]++;
  }

  /** Per-wave standing. `device` gives the live registry entry of a member. */
  waveStats(index: number, device: (id: string) => Device | undefined, now: number): WaveStats {
    const stats = emptyWaveStats(index);
    for (const [id, m] of this.members) if (m.wave === index) this.countMember(stats, m, device(id), now);
    return stats;
  }

  /** Adds a member of the wave to its standing (for a caller that spreads the count over turns). */
  countMember(stats: WaveStats, m: Member, d: Device | undefined, now: number): void {
    stats.devices++;
    const outcome = this.outcome(m, d, now);
    if (outcome === 'healthy') stats.healthy++;
    if (outcome === 'failed') stats.failed++;
    if (outcome === 'skipped') stats.skipped++;
    if (outcome !== 'open') stats.settled++;
  }

  outcome(m: Member, d: Device | undefined, now: number): 'healthy' | 'failed' | 'skipped' | 'open' {
    const outcome = this.settledOutcome(m, d, now);
    return outcome === 'open' && unreachablePastDeadline(this, m, d, now) ? 'skipped' : outcome;
  }

  private settledOutcome(m: Member, d: Device | undefined, now: number): 'healthy' | 'failed' | 'open' {
    if (m.unhealthy) return 'failed';
    const latest = m.latest;
    if (latest?.state === 'succeeded') {
      const soaked = (latest.finishedAt ?? 0) + this.policy.soakSeconds * 1000 <= now;
      return soaked && (this.policy.soakSeconds === 0 || d?.online) ? 'healthy' : 'open';
    }
    if (latest && isTerminal(latest.state) && latest.state !== 'cancelled') {
      const retriesLeft = (RETRYABLE_STATES.has(latest.state) && latest.retry < this.policy.maxRetries)
        || (OPERATOR_RETRYABLE_STATES.has(latest.state) && latest.retry < (m.retryUpTo ?? 0));
      return retriesLeft ? 'open' : 'failed';
    }
    if (!latest || latest.state === 'cancelled') {
      return d && alreadyThere(this.firmware.version, d.version, this.policy.allowDowngrade) ? 'healthy' : 'open';
    }
    return 'open';
  }

  /** What the current wave's standing means: carry on, promote, pause (ratio missed) or complete. */
  evaluateWave(device: (id: string) => Device | undefined, now: number): WaveVerdict {
    return this.verdict(this.waveStats(this.currentWave, device, now));
  }

  /** What the current wave's standing (`stats`) means. */
  verdict(stats: WaveStats): WaveVerdict {
    // Skipped devices (unreachable past the deadline) count neither way.
    const counted = stats.devices - stats.skipped;
    const needed = Math.ceil(this.policy.minSuccessRatio * counted - 1e-9);
    const allSettled = stats.settled === stats.devices;
    if (stats.healthy >= needed && (allSettled || this.currentWave < this.lastWave)) {
      return { action: this.currentWave < this.lastWave ? 'promote' : 'complete' };
    }
    if (allSettled) {
      const ratio = counted ? stats.healthy / counted : 1;
      return { action: 'pause', reason: `wave ${this.currentWave + 1} finished with ${(ratio * 100).toFixed(0)} % success, below the required ${(this.policy.minSuccessRatio * 100).toFixed(0)} %` };
    }
    return { action: 'wait' };
  }

  /** Failed and finished attempts of the rollout, as committed (cancelled ones are not finished). */
  failureTally(): { failures: number; finished: number } {
    let failures = 0;
    let finished = 0;
    for (const s of ATTEMPT_STATES) {
      if (FAILURE_STATES.has(s)) failures += this.counts[s];
      if (isTerminal(s) && s !== 'cancelled') finished += this.counts[s];
    }
    return { failures, finished };
  }

  /** Failures against the threshold, counted since the operator last acknowledged them (a resume). */
  failureThresholdReason(): string | null {
    const tally = this.failureTally();
    const failures = Math.max(0, tally.failures - this.acknowledged.failures);
    const finished = Math.max(0, tally.finished - this.acknowledged.finished);
    if (!failureThresholdReached(this.policy.failureThreshold, failures, finished)) return null;
    const since = this.acknowledged.finished ? ' since the last resume' : '';
    return `failure threshold reached: ${failures} of ${finished} finished attempts failed${since}`;
  }
}
