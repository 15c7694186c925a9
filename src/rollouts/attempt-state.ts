// The update attempt state machine. States only move forward; a terminal state is final. This is
// what keeps QoS 1 redeliveries and out-of-order reports from corrupting an attempt's history.
import type { ReportedState } from '../protocol/messages.js';

export const ATTEMPT_STATES = ['pending', 'sent', 'accepted', 'downloading', 'downloaded', 'rebooting',
  'succeeded', 'failed', 'rolled_back', 'rejected', 'cancelled', 'timed_out'] as const;
export type AttemptState = (typeof ATTEMPT_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<AttemptState> = new Set(['succeeded', 'failed', 'rolled_back', 'rejected', 'cancelled', 'timed_out']);

/** States an attempt can still leave. */
export const OPEN_STATES: readonly AttemptState[] = ATTEMPT_STATES.filter((s) => !TERMINAL_STATES.has(s));

/** Outcomes that count against a rollout's failure threshold. */
export const FAILURE_STATES: ReadonlySet<AttemptState> = new Set(['failed', 'rolled_back', 'timed_out']);

/** Failures worth another attempt: the device may succeed next time with the same image. */
export const RETRYABLE_STATES: ReadonlySet<AttemptState> = new Set(['failed', 'timed_out']);

const RANK: Record<AttemptState, number> = {
  pending: 0, sent: 1, accepted: 2, downloading: 3, downloaded: 4, rebooting: 5,
  succeeded: 6, failed: 6, rolled_back: 6, rejected: 6, cancelled: 6, timed_out: 6,
};

/** Attempts per state, all states present. */
export function zeroCounts(): Record<AttemptState, number> {
  return Object.fromEntries(ATTEMPT_STATES.map((s) => [s, 0])) as Record<AttemptState, number>;
}

export function isTerminal(state: AttemptState): boolean {
  return TERMINAL_STATES.has(state);
}

/** States in which the device has not started work yet, so a resend or a cancel still makes sense. */
export function notStarted(state: AttemptState): boolean {
  return state === 'pending' || state === 'sent';
}

export type Transition =
  | { kind: 'advance'; state: AttemptState; progress: number | null }
  | { kind: 'progress'; progress: number }
  | { kind: 'ignore'; why: 'duplicate' | 'out-of-order' | 'final' };

/** What a device report does to an attempt in `current` state with `progress` so far. */
export function applyReport(current: { state: AttemptState; progress: number | null }, report: { state: ReportedState; progress?: number }): Transition {
  if (isTerminal(current.state)) return { kind: 'ignore', why: 'final' };
  const progress = report.progress === undefined ? null : Math.round(report.progress);
  if (RANK[report.state] > RANK[current.state]) {
    return { kind: 'advance', state: report.state, progress: report.state === 'downloading' ? progress ?? 0 : report.state === 'downloaded' ? 100 : current.progress };
  }
  if (report.state === current.state) {
    if (report.state === 'downloading' && progress !== null && progress > (current.progress ?? 0)) return { kind: 'progress', progress };
    return { kind: 'ignore', why: 'duplicate' };
  }
  return { kind: 'ignore', why: 'out-of-order' };
}
