// Which update, if any, a device gets when it announces. Pure: everything it needs is passed in.
import semver from 'semver';
import type { NoneReason } from '../protocol/messages.js';
import { isTerminal, type AttemptState } from './attempt-state.js';

export interface TargetRollout {
  id: string;
  createdAt: Date;
  firmware: { id: string; type: string; version: string; chip: string | null };
  /** Explicit targets, or null for every device of the firmware's type. */
  targets: ReadonlySet<string> | null;
}

export interface EligibilityInput {
  device: { id: string; type: string; version: string; chip: string | null };
  /** Running rollouts whose firmware has the device's type. */
  rollouts: readonly TargetRollout[];
  catalogHasType: boolean;
  /** The state of the device's latest attempt in a rollout, if any. */
  attemptState(rolloutId: string): AttemptState | undefined;
}

export type Eligibility = { eligible: true; rollout: TargetRollout } | { eligible: false; reason: NoneReason };

export function targets(rollout: TargetRollout, deviceId: string): boolean {
  return rollout.targets === null || rollout.targets.has(deviceId);
}

/** An image built for another chip never goes to a device that announced its chip. */
export function chipCompatible(firmwareChip: string | null, deviceChip: string | null): boolean {
  return !firmwareChip || !deviceChip || firmwareChip === deviceChip;
}

export function decideEligibility({ device, rollouts, catalogHasType, attemptState }: EligibilityInput): Eligibility {
  if (!catalogHasType) return { eligible: false, reason: 'unknown-type' };
  // No downgrade, no cross-type update.
  const newer = rollouts.filter((r) => r.firmware.type === device.type && semver.gt(r.firmware.version, device.version));
  if (!newer.length) return { eligible: false, reason: 'up-to-date' };
  const targeted = newer.filter((r) => targets(r, device.id));
  if (!targeted.length) return { eligible: false, reason: 'not-targeted' };
  const compatible = targeted.filter((r) => chipCompatible(r.firmware.chip, device.chip));
  if (!compatible.length) return { eligible: false, reason: 'chip-mismatch' };
  // One attempt per device and rollout: a device that failed or rolled back is not sent the same image again.
  const fresh = compatible.filter((r) => attemptState(r.id) === undefined);
  if (!fresh.length) {
    const failed = compatible.some((r) => { const s = attemptState(r.id); return s !== undefined && isTerminal(s) && s !== 'succeeded'; });
    return { eligible: false, reason: failed ? 'previously-failed' : 'up-to-date' };
  }
  const best = fresh.reduce((a, b) => {
    const order = semver.compare(b.firmware.version, a.firmware.version);
    return order > 0 || (order === 0 && b.createdAt < a.createdAt) ? b : a;
  });
  return { eligible: true, rollout: best };
}
