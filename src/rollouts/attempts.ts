// Update attempts in flight. Each attempt has a working state, which moves forward at once as
// reports and decisions come in (so the next report is judged against it), and a committed state,
// which follows once the group commit has written the change. Only committed changes reach the
// rollout's counters and the fleet events: what the lifecycle decides on and what operators see is
// what the database holds.
//
// With several instances, another one may move an attempt this one tracks, or open one for a
// device this one hears from next: `applyCommitted` takes such committed rows (from the change
// feed or read back), and a local change the database did not take (it held the attempt further
// on) is replaced by the database's row.
import { hash } from 'node:crypto';
import type { AttemptEventRow, AttemptRow, FleetRepository } from '../db/fleet-repository.js';
import type { FleetEvents } from '../events.js';
import type { Logger } from '../logger.js';
import type { ActiveRollout } from './active-rollout.js';
import { ATTEMPT_RANK } from './attempt-state.js';
import { isTerminal, type AttemptState } from './states.js';
import { TurnPacer } from './turn-pacer.js';

export interface Attempt extends AttemptRow {
  state: AttemptState;
  /** The state the database holds (null: not yet written). */
  committedState: AttemptState | null;
}

export interface AttemptChange {
  progress?: number | null;
  error?: string | null;
  reason?: string | null;
}

export class AttemptTracker {
  private readonly byId = new Map<string, Attempt>();
  private readonly byDevice = new Map<string, Attempt>();
  /** Ended in memory, not yet committed: a late duplicate of their last report is still recognised. */
  private readonly ending = new Map<string, Attempt>();
  private readonly pacer: TurnPacer;

  constructor(private readonly deps: {
    repository: FleetRepository;
    /** The active rollout an attempt belongs to, if it is still active. */
    rollout: (id: string) => ActiveRollout | undefined;
    events: FleetEvents;
    logger: Logger;
    /** Shared with the update engine (turn-pacer.ts). */
    pacer?: TurnPacer;
  }) {
    this.pacer = deps.pacer ?? new TurnPacer();
  }

  get size(): number {
    return this.byId.size;
  }

  /** An attempt not yet final, by its updateId; or one that just ended and is being committed. */
  get(updateId: string): Attempt | undefined {
    return this.byId.get(updateId) ?? this.ending.get(updateId);
  }

  /** The device's attempt in flight, if any. */
  ofDevice(deviceId: string): Attempt | undefined {
    return this.byDevice.get(deviceId);
  }

  ofRollout(rolloutId: string): Attempt[] {
    const out: Attempt[] = [];
    for (const a of this.byId.values()) if (a.rolloutId === rolloutId) out.push(a);
    return out;
  }

  /** An attempt as loaded from the database at start-up (committed, not final). */
  adopt(row: AttemptRow): void {
    const state = row.state as AttemptState;
    this.track({ ...row, state, committedState: state });
  }

  /**
   * A new attempt for the device, `pending` until its command is published. Its id (the command's
   * updateId) follows from the rollout, the device and the retry, so two instances that open "the
   * same" attempt open one row, and the device sees one update however many commands it gets.
   */
  open(device: { id: string; version: string | null }, rollout: ActiveRollout, retry: number, now: Date): Attempt {
    const attempt: Attempt = {
      id: attemptId(rollout.id, device.id, retry), rolloutId: rollout.id, deviceId: device.id, firmwareId: rollout.firmware.id,
      fromVersion: device.version, retry, state: 'pending', committedState: null, progress: null, error: null, reason: null,
      createdAt: now, updatedAt: now, finishedAt: null,
    };
    this.track(attempt);
    rollout.noteDispatch(now.getTime());
    void this.persist(attempt, null);
    return attempt;
  }

  /** Moves the attempt to `state` (or records progress in the same state); resolves when committed. */
  move(attempt: Attempt, state: AttemptState, change: AttemptChange = {}): Promise<void> {
    const previous = attempt.state;
    attempt.state = state;
    if (change.progress !== undefined) attempt.progress = change.progress;
    if (change.error !== undefined) attempt.error = change.error;
    if (change.reason !== undefined) attempt.reason = change.reason;
    attempt.updatedAt = new Date();
    if (isTerminal(state)) {
      attempt.finishedAt = attempt.updatedAt;
      this.byId.delete(attempt.id);
      if (this.byDevice.get(attempt.deviceId) === attempt) this.byDevice.delete(attempt.deviceId);
      this.ending.set(attempt.id, attempt);
    }
    if (previous !== state) this.deps.logger.info({ deviceId: attempt.deviceId, updateId: attempt.id, state, error: attempt.error ?? undefined }, 'update attempt');
    return this.persist(attempt, previous);
  }

  private track(attempt: Attempt): void {
    this.byId.set(attempt.id, attempt);
    this.byDevice.set(attempt.deviceId, attempt);
  }

  /** Queues the attempt's row and a history entry; once committed, counters and events follow. */
  private persist(attempt: Attempt, previous: AttemptState | null): Promise<void> {
    const row = snapshot(attempt);
    const event: AttemptEventRow = { attemptId: row.id, state: row.state, progress: row.progress, error: row.error, reason: row.reason, at: row.updatedAt };
    const committed = this.deps.repository.saveAttempt(row, event);
    // Batches commit in order, and changes of one batch resolve in the order they were queued, so
    // committed states follow each other as the working states did. A fan-out's batch holds
    // thousands: what follows each commit is paced, in the same order (turn-pacer.ts).
    return committed.then((applied) => this.pacer.run(() => applied ? this.committed(attempt, row, previous) : this.reload(attempt.id)));
  }

  /**
   * An attempt row committed by another instance (or read back): the working state catches up,
   * counters and events follow. Older news than what is known is ignored.
   */
  applyCommitted(row: AttemptRow): void {
    const state = row.state as AttemptState;
    let attempt = this.byId.get(row.id) ?? this.ending.get(row.id);
    if (!attempt) {
      if (isTerminal(state) && !this.deps.rollout(row.rolloutId)) return;
      attempt = { ...row, state, committedState: null };
      if (!isTerminal(state)) {
        const current = this.byDevice.get(row.deviceId);
        if (current && current.id !== row.id && current.retry > row.retry) return;
        this.track(attempt);
      }
    } else if (attempt.committedState && ATTEMPT_RANK[state] < ATTEMPT_RANK[attempt.committedState]) {
      return;
    }
    const progressBefore = attempt.progress;
    if (ATTEMPT_RANK[state] >= ATTEMPT_RANK[attempt.state]) {
      Object.assign(attempt, { state, progress: row.progress, error: row.error, reason: row.reason, updatedAt: row.updatedAt, finishedAt: row.finishedAt });
    }
    if (isTerminal(state)) {
      this.byId.delete(attempt.id);
      if (this.byDevice.get(attempt.deviceId) === attempt) this.byDevice.delete(attempt.deviceId);
    }
    const previous = attempt.committedState;
    if (previous === state && (isTerminal(state) || row.progress === progressBefore)) return; // already known
    this.committed(attempt, row, previous);
  }

  /** Takes the database's row for an attempt whose local change did not apply. */
  async reload(updateId: string): Promise<void> {
    const row = await this.deps.repository.attemptRow(updateId);
    if (row) this.applyCommitted(row);
  }

  private committed(attempt: Attempt, row: AttemptRow, previous: AttemptState | null): void {
    const state = row.state as AttemptState;
    if (attempt.committedState && ATTEMPT_RANK[state] < ATTEMPT_RANK[attempt.committedState]) return;
    attempt.committedState = state;
    if (isTerminal(state)) this.ending.delete(attempt.id);
    this.deps.rollout(attempt.rolloutId)?.recordAttempt(attempt.deviceId,
      { id: attempt.id, state, retry: attempt.retry, finishedAt: row.finishedAt?.getTime() ?? null });
    this.deps.events.emit('attempt', {
      updateId: row.id, rolloutId: row.rolloutId, deviceId: row.deviceId, firmwareId: row.firmwareId, retry: row.retry,
      state, previousState: previous, progress: row.progress, error: row.error, reason: row.reason, at: row.updatedAt,
    });
  }
}

/** An attempt's id, the same on every instance: `u_` and 32 hex digits, as before. */
export function attemptId(rolloutId: string, deviceId: string, retry: number): string {
  return `u_${hash('sha256', `${rolloutId}\0${deviceId}\0${retry}`).slice(0, 32)}`;
}

function snapshot(a: Attempt): AttemptRow {
  return {
    id: a.id, rolloutId: a.rolloutId, deviceId: a.deviceId, firmwareId: a.firmwareId, fromVersion: a.fromVersion, retry: a.retry, state: a.state,
    progress: a.progress, error: a.error, reason: a.reason, createdAt: a.createdAt, updatedAt: a.updatedAt, finishedAt: a.finishedAt,
  };
}
