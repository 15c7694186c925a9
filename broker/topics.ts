// The device topics (docs/protocol.md, "Topics"): the broker's contract with devices, and the
// only place that spells one. The orchestrator's own topics (rollout progress, fleet events) are
// src/monitoring/topics.ts; src/topics.ts gathers both for the server, the CLI, tests and bench.

import { DEVICE_ID_PATTERN } from '../certs/identity.js';

export type DeviceTopicKind = 'announce' | 'command' | 'status' | 'presence';

const DEVICE_KINDS: readonly DeviceTopicKind[] = ['announce', 'command', 'status', 'presence'];

/** `devices/{id}/{kind}`. With `+` as the id, the filter over every device. */
export const topics = {
  /** device → server, after every connect */
  announce: (id: string): string => `devices/${id}/announce`,
  /** server → device */
  command: (id: string): string => `devices/${id}/command`,
  /** device → server, update progress */
  status: (id: string): string => `devices/${id}/status`,
  /**
   * device → whoever tracks presence: retained `{"online":true}` after every connect, and the same
   * retained `{"online":false}` as the device's last will. An external broker has no hooks that
   * tell mqota who is connected; the embedded broker has them and ignores this topic.
   */
  presence: (id: string): string => `devices/${id}/presence`,
};

/** The payloads of the presence topic. */
export const PRESENCE_PAYLOAD = { online: '{"online":true}', offline: '{"online":false}' } as const;

/** The orchestrator's status topics (rollout progress, fleet events): mqota publishes them, monitors read them. */
export const STATUS_TOPIC_FILTERS: readonly string[] = ['rollouts/#', 'fleet/#'];

/**
 * Provisioning by claim (docs/provisioning.md): a device holding its batch's claim certificate
 * sends a CSR on its claim's request topic and hears the answer on its own response topic.
 */
export const provisionTopics = {
  /** device (claim certificate) → server: `{"csr": "<PEM>"}` */
  request: (claimId: string): string => `provision/${claimId}/request`,
  /** server → device: `{"status": "issued" | "pending" | "refused", ...}` */
  response: (claimId: string, deviceId: string): string => `provision/${claimId}/response/${deviceId}`,
};

/**
 * The MQTT client id of a device claiming its identity: `{claimId}:{deviceId}`. Never a device's
 * own client id (`:` is not allowed in one), so a claim connection can take over no device's
 * session [MQTT-3.1.4-2]. Null when `clientId` is not one for this claim.
 */
export function claimantOf(claimId: string, clientId: string): string | null {
  if (!clientId.startsWith(`${claimId}:`)) return null;
  const deviceId = clientId.slice(claimId.length + 1);
  return DEVICE_ID_PATTERN.test(deviceId) ? deviceId : null;
}

/** The longest client id: a claim id, `:` and a device id, both up to 64 characters. */
export const MAX_CLIENT_ID_LENGTH = 64 + 1 + 64;

/**
 * Topic filters a monitor may subscribe to (or narrow down); monitors publish nothing. The
 * broker's ACL needs them, so they sit here although `rollouts/#` and `fleet/#` are the
 * orchestrator's topics (src/monitoring/topics.ts, whose test checks that every topic it builds
 * falls within these). Passing them in as broker configuration instead needs a change to
 * startBroker and createHooks.
 */
export const MONITOR_FILTERS: readonly string[] = [...STATUS_TOPIC_FILTERS, topics.status('+')];

/**
 * The shared-subscription group of mqota instances on an external broker: each device message
 * goes to one instance of the group (MQTT 5 §4.8.2).
 */
export const SERVICE_SHARE_GROUP = 'mqota';

export function parseDeviceTopic(topic: string): { deviceId: string; kind: DeviceTopicKind } | null {
  const parts = topic.split('/');
  if (parts.length !== 3 || parts[0] !== 'devices') return null;
  const [, deviceId, kind] = parts as [string, string, string];
  if (!DEVICE_ID_PATTERN.test(deviceId) || !DEVICE_KINDS.includes(kind as DeviceTopicKind)) return null;
  return { deviceId, kind: kind as DeviceTopicKind };
}
