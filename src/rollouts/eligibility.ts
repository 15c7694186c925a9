// The one answer to "should this device get this firmware now, and if not, why". Pure: it reads
// a rollout's committed standing, the device as announced and the time, and decides.
import { compareVersions } from '../firmware/version.js';
import type { Device } from '../fleet/device-registry.js';
import type { NoneReason } from '../protocol/messages.js';
import type { ActiveRollout } from './active-rollout.js';
import { isTerminal, OPERATOR_RETRYABLE_STATES, RETRYABLE_STATES } from './states.js';
import { withinWindow } from './policy.js';

export interface FirmwareFacts { type: string; version: string; chip: string | null; secureVersion: number | null }
export interface DeviceFacts { type: string; version: string; chip: string | null; secureVersion: number | null }

export type VersionDecision = { ok: true; downgrade: boolean } | { ok: false; reason: NoneReason };

/** A device that has announced: it has a type and a version. */
export type AnnouncedDevice = Device & { type: string; version: string };

export type Offer = { ok: true; retry: number } | { ok: false; reason: NoneReason };

export type Choice = { kind: 'update'; rollout: ActiveRollout; retry: number } | { kind: 'none'; reason: NoneReason };

/** An image built for another chip never goes to a device that announced its chip. */
export function chipCompatible(firmwareChip: string | null, deviceChip: string | null): boolean {
  return !firmwareChip || !deviceChip || firmwareChip === deviceChip;
}

/** No cross-type update; no downgrade unless allowed, and never below the device's secure version. */
export function versionDecision(fw: FirmwareFacts, device: DeviceFacts, allowDowngrade: boolean): VersionDecision {
  if (fw.type !== device.type) return { ok: false, reason: 'not-targeted' };
  if (!chipCompatible(fw.chip, device.chip)) return { ok: false, reason: 'chip-mismatch' };
  const order = compareVersions(fw.version, device.version);
  if (order > 0) return { ok: true, downgrade: false };
  if (order === 0 || !allowDowngrade) return { ok: false, reason: 'up-to-date' };
  // Anti-rollback: the bootloader refuses an image whose secure_version is below the eFuse value;
  // an image without one is only safe for devices that reported none.
  if ((device.secureVersion ?? 0) > (fw.secureVersion ?? 0)) return { ok: false, reason: 'secure-version' };
  return { ok: true, downgrade: true };
}

/** The device already runs what the rollout would install. */
export function alreadyThere(fwVersion: string, deviceVersion: string | null, downgrade: boolean): boolean {
  if (!deviceVersion) return false;
  const order = compareVersions(deviceVersion, fwVersion);
  return downgrade ? order === 0 : order >= 0;
}

/**
 * Whether the device would get this rollout's image now (`retry`: which attempt it would be), and
 * if not, why. Order matters: the reasons an operator can act on come before the passing ones.
 */
export function offer(rollout: ActiveRollout, device: AnnouncedDevice, now: number): Offer {
  if (rollout.state === 'scheduled') return { ok: false, reason: 'rollout-scheduled' };
  if (rollout.state === 'paused') return { ok: false, reason: 'rollout-paused' };
  const member = rollout.members.get(device.id);
  if (!member) return { ok: false, reason: 'not-targeted' };
  const decision = versionDecision(rollout.firmware, device, rollout.policy.allowDowngrade);
  if (!decision.ok) return decision;
  if (member.wave > rollout.currentWave) return { ok: false, reason: 'waiting-for-wave' };
  let retry = 0;
  const latest = member.latest;
  if (latest) {
    if (!isTerminal(latest.state) || latest.state === 'succeeded' || latest.state === 'cancelled') return { ok: false, reason: 'up-to-date' };
    // An operator's retry (rollout-edits.ts) needs no back-off: someone decided it is time.
    const granted = OPERATOR_RETRYABLE_STATES.has(latest.state) && latest.retry < (member.retryUpTo ?? 0);
    if (granted) retry = latest.retry + 1;
    else if (!RETRYABLE_STATES.has(latest.state) || latest.retry >= rollout.policy.maxRetries) return { ok: false, reason: 'previously-failed' };
    else {
      const backoff = rollout.policy.retryBackoffSeconds * 1000 * 2 ** latest.retry;
      if ((latest.finishedAt ?? 0) + backoff > now) return { ok: false, reason: 'retry-backoff' };
      retry = latest.retry + 1;
    }
  }
  if (!withinWindow(new Date(now), rollout.policy.maintenanceWindow)) return { ok: false, reason: 'outside-maintenance-window' };
  if (!rollout.rateAllows(now)) return { ok: false, reason: 'rate-limited' };
  return { ok: true, retry };
}

/**
 * What an announcing device gets from the active rollouts of its type: the newest firmware it may
 * have now, or the reason it gets none (the most telling reason among the rollouts that target it).
 */
export function chooseUpdate(device: AnnouncedDevice, rollouts: readonly ActiveRollout[], now: number, typeInCatalog: boolean): Choice {
  const offers = rollouts.map((rollout) => ({ rollout, offer: offer(rollout, device, now) })).sort((a, b) => newestFirst(a.rollout, b.rollout));
  for (const o of offers) if (o.offer.ok) return { kind: 'update', rollout: o.rollout, retry: o.offer.retry };
  const blocked = offers.find((o) => !o.offer.ok && o.offer.reason !== 'not-targeted' && o.offer.reason !== 'up-to-date');
  if (blocked && !blocked.offer.ok) return { kind: 'none', reason: blocked.offer.reason };
  return { kind: 'none', reason: typeInCatalog ? 'up-to-date' : 'unknown-type' };
}

/** Prefer the newest firmware; between equal versions, the older rollout. */
function newestFirst(a: ActiveRollout, b: ActiveRollout): number {
  return compareVersions(b.firmware.version, a.firmware.version) || a.createdAt.getTime() - b.createdAt.getTime();
}
