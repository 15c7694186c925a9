// A rollout's controls, as an operator sets them and as the engine applies them. Defaults follow
// what AWS IoT Jobs and hawkBit users expect: one wave, no rate limit, no soak, no retries.

export interface FailureThreshold {
  /** Pause once this many attempts have failed (FAILURE_STATES in states.ts). */
  count?: number;
  /** Pause once failures reach this percentage of finished attempts... */
  percent?: number;
  /** ...counted only from this many finished attempts on. */
  minSample?: number;
}

export interface MaintenanceWindow {
  /** Daily window in UTC, 'HH:MM'; start > end wraps midnight. */
  start: string;
  end: string;
}

export interface RolloutPolicy {
  /** A wave is promoted when this share of its devices succeeded (and stayed healthy). */
  minSuccessRatio: number;
  /** How long a device must stay healthy after `succeeded` to count for promotion. */
  soakSeconds: number;
  /** At most this many new update commands per minute across the rollout (null: no limit). */
  maxPerMinute: number | null;
  failureThreshold: FailureThreshold | null;
  /** What reaching the failure threshold does. */
  onFailureThreshold: 'pause' | 'abort';
  /** An attempt with no progress for this long becomes timed_out (null: never). */
  attemptTimeoutSeconds: number | null;
  /** Retries per device after failed or timed_out, with exponential back-off. */
  maxRetries: number;
  retryBackoffSeconds: number;
  maintenanceWindow: MaintenanceWindow | null;
  /**
   * How long a wave waits for members it cannot reach (offline, nothing in flight), counted from
   * the wave's start or the latest resume; past it they count as `skipped: offline` (null: wait
   * for ever). See wave-deadline.ts.
   */
  waveDeadlineSeconds: number | null;
  /** Only with a reason; never below a device's reported secureVersion. */
  allowDowngrade: boolean;
  downgradeReason: string | null;
}

export const DEFAULT_POLICY: RolloutPolicy = {
  minSuccessRatio: 1,
  soakSeconds: 0,
  maxPerMinute: null,
  failureThreshold: null,
  onFailureThreshold: 'pause',
  attemptTimeoutSeconds: null,
  maxRetries: 0,
  retryBackoffSeconds: 60,
  maintenanceWindow: null,
  waveDeadlineSeconds: 600,
  allowDowngrade: false,
  downgradeReason: null,
};

export function policyFrom(stored: unknown): RolloutPolicy {
  return { ...DEFAULT_POLICY, ...(stored && typeof stored === 'object' ? stored as Partial<RolloutPolicy> : {}) };
}

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

export function validWindow(w: MaintenanceWindow): boolean {
  return HHMM.test(w.start) && HHMM.test(w.end) && w.start !== w.end;
}

/** Whether `now` falls in the daily UTC window (always, without one). */
export function withinWindow(now: Date, window: MaintenanceWindow | null): boolean {
  if (!window) return true;
  const minutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
  const t = now.getUTCHours() * 60 + now.getUTCMinutes();
  const start = minutes(window.start);
  const end = minutes(window.end);
  return start < end ? t >= start && t < end : t >= start || t < end;
}

/** Whether failures have reached the threshold. */
export function failureThresholdReached(t: FailureThreshold | null, failures: number, finished: number): boolean {
  if (!t) return false;
  if (t.count !== undefined && failures >= t.count) return true;
  if (t.percent !== undefined && finished >= (t.minSample ?? 1) && finished > 0 && (failures / finished) * 100 >= t.percent) return true;
  return false;
}
