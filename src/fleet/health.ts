// A device's own account of its condition (the `health` of an announce), as stored, and the rule
// that turns it into a rollout decision: a crash right after an update makes the update unhealthy.
import type { DeviceHealth, ResetReason } from '../protocol/messages.js';

/** A health report as stored on the device: what it said and when (ISO 8601). */
export type StoredHealth = DeviceHealth & { at: string };

/** Reset reasons that mean the previous boot ended in a crash (esp_reset_reason_t: ESP_RST_PANIC, *_WDT). */
export const CRASH_RESET_REASONS: ReadonlySet<ResetReason> = new Set(['panic', 'int_wdt', 'task_wdt', 'wdt']);

export interface HealthCheckInput {
  /** The device's latest attempt in the rollout: only a success can turn unhealthy. */
  latest: { state: string; finishedAt: number | null } | null;
  /** Already counted unhealthy: nothing more to decide. */
  unhealthy: boolean;
  /** The device announces the rollout's version (or one it counts as already there). */
  onTargetVersion: boolean;
  resetReason: ResetReason | null | undefined;
  soakSeconds: number;
  now: number;
}

/**
 * Why a device that succeeded no longer counts as healthy, or null. Two ways: it announces another
 * version than the rollout's (it fell back), or it announces the new version after a boot that a
 * crash caused (panic or watchdog) within the soak time, though it never rolled back. With no
 * soak there is no time to watch, so only the first rule applies.
 */
export function unhealthyReason(i: HealthCheckInput): string | null {
  if (i.unhealthy || i.latest?.state !== 'succeeded') return null;
  if (!i.onTargetVersion) return 'left the new version after succeeding';
  if (i.resetReason && CRASH_RESET_REASONS.has(i.resetReason)
    && i.latest.finishedAt !== null && i.now <= i.latest.finishedAt + i.soakSeconds * 1000) {
    return `rebooted after a crash (reset reason ${i.resetReason}) within the soak time`;
  }
  return null;
}
