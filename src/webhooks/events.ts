// The events a webhook can subscribe to, and how a fleet event becomes one: the JSON payload's
// `data` and the one-line text of the Slack format. Pure: no I/O.
import type { AttemptEvent, PresenceEvent, RolloutEvent } from '../events.js';

export const WEBHOOK_EVENTS = ['rollout.state', 'rollout.failure_threshold', 'device.rolled_back', 'device.offline_during_update'] as const;
export type WebhookEventName = typeof WEBHOOK_EVENTS[number];

export const WEBHOOK_FORMATS = ['json', 'slack'] as const;
export type WebhookFormat = typeof WEBHOOK_FORMATS[number];

/** An event to deliver: its name, the payload's `data`, and a sentence for chat receivers. */
export interface WebhookEvent {
  event: WebhookEventName;
  at: Date;
  data: Record<string, unknown>;
  text: string;
}

// The reason src/rollouts/active-rollout.ts gives when it pauses or aborts a rollout at the
// threshold (tests/webhooks.test.ts reaches the threshold for real, so a change of wording fails there).
const FAILURE_THRESHOLD = /^failure threshold reached/;

/** A rollout transition: a state change (not a new wave in the same state), and the threshold if that was why. */
export function fromRollout(e: RolloutEvent): WebhookEvent[] {
  if (e.state === e.previousState) return [];
  const data = { rolloutId: e.rolloutId, state: e.state, previousState: e.previousState, wave: e.wave + 1, reason: e.reason, actor: e.actor };
  const out: WebhookEvent[] = [{
    event: 'rollout.state', at: e.at, data,
    // An operator's reason names them already ("paused by alice"): the actor is added only when it does not.
    text: `mqota: rollout ${e.rolloutId} is ${e.state}${e.previousState ? ` (was ${e.previousState})` : ''}${e.reason ? `: ${e.reason}` : ''}${e.actor && !e.reason?.includes(`by ${e.actor}`) ? ` — by ${e.actor}` : ''}`,
  }];
  if (e.actor === null && e.reason && FAILURE_THRESHOLD.test(e.reason)) {
    out.push({ event: 'rollout.failure_threshold', at: e.at, data, text: `mqota: rollout ${e.rolloutId} ${e.state}: ${e.reason}` });
  }
  return out;
}

export function fromAttempt(e: AttemptEvent): WebhookEvent[] {
  if (e.state !== 'rolled_back' || e.previousState === 'rolled_back') return [];
  return [{
    event: 'device.rolled_back', at: e.at,
    data: { deviceId: e.deviceId, rolloutId: e.rolloutId, updateId: e.updateId, firmwareId: e.firmwareId, error: e.error, reason: e.reason },
    text: `mqota: device ${e.deviceId} rolled back the update of rollout ${e.rolloutId}${e.reason ? `: ${e.reason}` : e.error ? `: ${e.error}` : ''}`,
  }];
}

/** `update` is the attempt the device was in the middle of when it went offline, if any. */
export function fromPresence(e: PresenceEvent, update: { updateId: string; rolloutId: string; state: string } | undefined): WebhookEvent[] {
  // A device that reported `rebooting` goes offline by design (it restarts into the new image):
  // an alert for it would come with every update of every real device. One that never comes back
  // holds its wave ("updating") and fails at the rollout's attempt timeout, when it has one.
  if (e.online || !update || update.state === 'rebooting') return [];
  return [{
    event: 'device.offline_during_update', at: e.at,
    data: { deviceId: e.deviceId, rolloutId: update.rolloutId, updateId: update.updateId, state: update.state },
    text: `mqota: device ${e.deviceId} went offline during an update (rollout ${update.rolloutId}, ${update.state})`,
  }];
}

/** The body sent: the JSON envelope, or Slack's `{"text"}` (an incoming webhook's format). */
export function encodeBody(e: WebhookEvent, format: WebhookFormat, deliveryId: string): string {
  if (format === 'slack') return JSON.stringify({ text: e.text });
  return JSON.stringify({ id: deliveryId, event: e.event, at: e.at.toISOString(), data: e.data });
}
