// The one place that knows the topic scheme (docs/protocol.md, "Topics"). Everything else builds
// and parses topics through here, so a change of scheme is a change of this file.

import { DEVICE_ID_PATTERN } from '../certs/identity.js';

export type DeviceTopicKind = 'announce' | 'command' | 'status';

const DEVICE_KINDS: readonly DeviceTopicKind[] = ['announce', 'command', 'status'];

export const topics = {
  /** device → server, after every connect */
  announce: (id: string): string => `devices/${id}/announce`,
  /** server → device */
  command: (id: string): string => `devices/${id}/command`,
  /** device → server, update progress */
  status: (id: string): string => `devices/${id}/status`,
  /** server → monitors, read-only */
  rolloutProgress: (rolloutId: string): string => `rollouts/${rolloutId}/progress`,
  /** server → monitors, read-only */
  fleetEvents: (deviceId: string): string => `fleet/${deviceId}/events`,
};

/** Topic filters a monitor may subscribe to (or narrow down); monitors publish nothing. */
export const MONITOR_FILTERS: readonly string[] = ['rollouts/#', 'fleet/#', 'devices/+/status'];

export function parseDeviceTopic(topic: string): { deviceId: string; kind: DeviceTopicKind } | null {
  const parts = topic.split('/');
  if (parts.length !== 3 || parts[0] !== 'devices') return null;
  const [, deviceId, kind] = parts as [string, string, string];
  if (!DEVICE_ID_PATTERN.test(deviceId) || !DEVICE_KINDS.includes(kind as DeviceTopicKind)) return null;
  return { deviceId, kind: kind as DeviceTopicKind };
}
