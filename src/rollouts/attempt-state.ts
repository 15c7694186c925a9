// The update attempt state machine. States only move forward; a terminal state is final. This is
// what keeps QoS 1 redeliveries and out-of-order reports from corrupting an attempt's history.
import { isTerminal, notStarted, type AttemptState, type ReportedState } from './states.js';

/** How far along an attempt is; final states rank equal (and highest). */
export const ATTEMPT_RANK: Readonly<Record<AttemptState, number>> = {
  pending: 0, sent: 1, deferred: 1, accepted: 2, downloading: 3, downloaded: 4, rebooting: 5,
  succeeded: 6, failed: 6, rolled_back: 6, rejected: 6, cancelled: 6, timed_out: 6,
};

export type Transition =
  | { kind: 'advance'; state: AttemptState; progress: number | null }
  | { kind: 'progress'; progress: number }
  | { kind: 'ignore'; why: 'duplicate' | 'out-of-order' | 'final' };

/** What a device report does to an attempt in `current` state with `progress` so far. */
export function applyReport(current: { state: AttemptState; progress: number | null }, report: { state: ReportedState; progress?: number }): Transition {
  if (isTerminal(current.state)) return { kind: 'ignore', why: 'final' };
  // A deferral (docs/protocol.md, "Deferral") answers an offer the device has not started on; each
  // one is recorded, a second one too: the server offers again after every one of them.
  if (report.state === 'deferred') return notStarted(current.state) ? { kind: 'advance', state: 'deferred', progress: null } : { kind: 'ignore', why: 'out-of-order' };
  const progress = report.progress === undefined ? null : Math.round(report.progress);
  if (ATTEMPT_RANK[report.state] > ATTEMPT_RANK[current.state]) {
    return { kind: 'advance', state: report.state, progress: report.state === 'downloading' ? progress ?? 0 : report.state === 'downloaded' ? 100 : current.progress };
  }
  if (report.state === current.state) {
    if (report.state === 'downloading' && progress !== null && progress > (current.progress ?? 0)) return { kind: 'progress', progress };
    return { kind: 'ignore', why: 'duplicate' };
  }
  return { kind: 'ignore', why: 'out-of-order' };
}
