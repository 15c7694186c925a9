// Which devices a rollout targets: the firmware's type, narrowed by explicit ids, tags, a semver
// range of the running version and a release channel.
import semver from 'semver';
import type { Device } from '../fleet/device-registry.js';

export interface Targeting {
  type: string;
  deviceIds: ReadonlySet<string> | null;
  /** The device must carry every one of these. */
  tags: readonly string[];
  versionRange: string | null;
  channel: string | null;
}

export function matchesTargeting(t: Targeting, d: Device): boolean {
  if (d.type !== t.type) return false;
  if (t.deviceIds && !t.deviceIds.has(d.id)) return false;
  if (t.tags.length && !t.tags.every((tag) => d.tags.includes(tag))) return false;
  if (t.channel && d.channel !== t.channel) return false;
  if (t.versionRange && !(d.version && semver.satisfies(d.version, t.versionRange, { includePrerelease: true }))) return false;
  return true;
}
