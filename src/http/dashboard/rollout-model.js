// What the dashboard derives from a rollout view (GET /api/rollouts[/{id}]): progress by state
// group, waves, the controls its state allows, and the live events applied in between reloads.
// The states themselves and which ones fail or finish come from the server (GET /states.js).
import { ACTIVE_ROLLOUT_STATES, FAILURE_STATES, FINAL_ROLLOUT_STATES, UPDATING_STATES, WAITING_STATES } from './states.js';

/** Attempt states grouped as an operator reads them, in the order a progress bar shows them. */
export const STATE_GROUPS = [
  { key: 'succeeded', label: 'Succeeded', states: ['succeeded'] },
  { key: 'failed', label: 'Failed', states: [...FAILURE_STATES] },
  { key: 'active', label: 'Updating', states: [...UPDATING_STATES] },
  { key: 'waiting', label: 'Commanded', states: [...WAITING_STATES] },
  { key: 'cancelled', label: 'Cancelled', states: ['cancelled'] },
];

const GROUP_OF = new Map(STATE_GROUPS.flatMap((g) => g.states.map((s) => [s, g.key])));

export function groupOf(attemptState) {
  return GROUP_OF.get(attemptState) ?? 'waiting';
}

/** Rollout states in which each control applies; the server answers 409 otherwise. */
const CONTROLS = {
  pause: new Set(['running']),
  resume: new Set(['paused']),
  cancel: new Set(ACTIVE_ROLLOUT_STATES),
};

export function allowedControls(rolloutState) {
  return Object.keys(CONTROLS).filter((c) => CONTROLS[c].has(rolloutState));
}

export function isFinished(rolloutState) {
  return FINAL_ROLLOUT_STATES.includes(rolloutState);
}

/**
 * Totals for a progress bar over the rollout's targets. With the detail view's `devices` (each
 * target with its latest attempt) the groups are exact; the list view only has `counts`, per
 * attempt, where a retried device also counts its failed attempt, so groups are clamped to the
 * targets in the order of STATE_GROUPS (a success is final and never double-counted).
 */
export function summarize(rollout) {
  const byGroup = Object.fromEntries(STATE_GROUPS.map((g) => [g.key, 0]));
  let total;
  if (Array.isArray(rollout.devices)) {
    for (const d of rollout.devices) if (d.state) byGroup[groupOf(d.state)] += 1;
    total = rollout.devices.length;
  } else {
    total = rollout.targets;
    let left = total;
    for (const g of STATE_GROUPS) {
      byGroup[g.key] = Math.min(left, g.states.reduce((n, st) => n + rollout.counts[st], 0));
      left -= byGroup[g.key];
    }
  }
  const attempted = Object.values(byGroup).reduce((a, b) => a + b, 0);
  return {
    total, ...byGroup, notStarted: total - attempted,
    percent: total === 0 ? 0 : Math.floor((byGroup.succeeded / total) * 100),
  };
}

/** The same totals for one wave of the detail view (its standing counts only the finished). */
export function summarizeWave(wave) {
  return {
    total: wave.devices, succeeded: wave.succeeded, failed: wave.failed, active: 0, waiting: 0, cancelled: 0,
    notStarted: Math.max(0, wave.devices - wave.succeeded - wave.failed),
    skipped: wave.skipped ?? 0,
    percent: wave.devices === 0 ? 0 : Math.floor((wave.succeeded / wave.devices) * 100),
  };
}

/** How many waves the rollout has (its plan's cumulative sizes; one wave is [100] %). */
export function waveCount(rollout) {
  return rollout.waveSizes.length;
}

/** "wave 2 of 4" for a rollout of several waves, '' for one (numbered from 1, as the CLI and the server's sentences do). */
export function waveLabel(rollout) {
  const n = waveCount(rollout);
  return n > 1 ? `wave ${Math.min((rollout.currentWave ?? 0) + 1, n)} of ${n}` : '';
}

/**
 * Applies an `attempt` event to a rollout view in place, so counts and device rows move at once;
 * the view is reloaded from the server shortly after anyway. Returns whether it applied.
 */
export function applyAttemptEvent(rollout, event) {
  if (event.rolloutId !== rollout.id) return false;
  if (event.state !== event.previousState) {
    if (event.previousState === null) rollout.attempts += 1;
    else if (rollout.counts[event.previousState] > 0) rollout.counts[event.previousState] -= 1;
    rollout.counts[event.state] += 1;
  }
  // The list view has no devices; in the detail view a device that joined the target set since the
  // last load is not listed yet and arrives with the next reload.
  const row = rollout.devices?.find((d) => d.deviceId === event.deviceId);
  if (row) {
    Object.assign(row, {
      updateId: event.updateId, state: event.state, retry: event.retry, progress: event.progress,
      error: event.error, reason: event.reason, updatedAt: event.at,
    });
  }
  return true;
}

/** Applies a `rollout` event (a state or wave change) in place. */
export function applyRolloutEvent(rollout, event) {
  if (event.rolloutId !== rollout.id) return false;
  Object.assign(rollout, { state: event.state, currentWave: event.wave, reason: event.reason });
  return true;
}
