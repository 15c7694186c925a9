// Whether a firmware may go to a device, from versions, chips and anti-rollback alone. Pure.
import semver from 'semver';
import type { NoneReason } from '../protocol/messages.js';

export interface FirmwareFacts { type: string; version: string; chip: string | null; secureVersion: number | null }
export interface DeviceFacts { type: string; version: string; chip: string | null; secureVersion: number | null }

export type VersionDecision = { ok: true; downgrade: boolean } | { ok: false; reason: NoneReason };

/** An image built for another chip never goes to a device that announced its chip. */
export function chipCompatible(firmwareChip: string | null, deviceChip: string | null): boolean {
  return !firmwareChip || !deviceChip || firmwareChip === deviceChip;
}

/** No cross-type update; no downgrade unless allowed, and never below the device's secure version. */
export function versionDecision(fw: FirmwareFacts, device: DeviceFacts, allowDowngrade: boolean): VersionDecision {
  if (fw.type !== device.type) return { ok: false, reason: 'not-targeted' };
  if (!chipCompatible(fw.chip, device.chip)) return { ok: false, reason: 'chip-mismatch' };
  const order = semver.compare(fw.version, device.version);
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
  return downgrade ? semver.eq(deviceVersion, fwVersion) : semver.gte(deviceVersion, fwVersion);
}
