// The one JSON shape of monitoring events (docs/protocol.md, "Monitoring"): FleetEvents turned
// into `{type, deviceId, at, ...}` for `fleet/{deviceId}/events`, and `{type: 'rollout',
// rolloutId, at, ...}` for the server-sent event stream. Field names never reuse `type` for
// anything but the event type, so an announce's firmware type is `firmwareType`.
import type { FleetEventMap, FleetEventName } from '../events.js';

export const MONITOR_EVENT_TYPES: readonly FleetEventName[] = ['attempt', 'rollout', 'presence', 'announce', 'command', 'rejection'];

/** Event types that concern one device and go to its `fleet/{deviceId}/events` topic. */
export const DEVICE_EVENT_TYPES: readonly FleetEventName[] = ['announce', 'presence', 'command', 'attempt', 'rejection'];

export type MonitorEvent = { type: FleetEventName; at: string; deviceId?: string | null; rolloutId?: string } & Record<string, unknown>;

/** The normalised form of a fleet event. A rejection may have no device (an MQTT refusal before CONNECT): `deviceId: null`. */
export function toMonitorEvent<K extends FleetEventName>(type: K, event: FleetEventMap[K]): MonitorEvent {
  const e = event as FleetEventMap[FleetEventName];
  const at = e.at.toISOString();
  switch (type) {
    case 'announce': {
      const a = e as FleetEventMap['announce'];
      return { type, deviceId: a.deviceId, at, firmwareType: a.type, version: a.version, chip: a.chip };
    }
    case 'presence': {
      const p = e as FleetEventMap['presence'];
      return { type, deviceId: p.deviceId, at, online: p.online };
    }
    case 'command': {
      const c = e as FleetEventMap['command'];
      return { type, deviceId: c.deviceId, at, action: c.action, updateId: c.updateId, reason: c.reason };
    }
    case 'attempt': {
      const a = e as FleetEventMap['attempt'];
      return {
        type, deviceId: a.deviceId, at, rolloutId: a.rolloutId, updateId: a.updateId, firmwareId: a.firmwareId, retry: a.retry,
        state: a.state, previousState: a.previousState, progress: a.progress, error: a.error, reason: a.reason,
      };
    }
    case 'rejection': {
      const r = e as FleetEventMap['rejection'];
      return { type, deviceId: r.deviceId, at, kind: r.kind, error: r.error };
    }
    case 'rollout': {
      const r = e as FleetEventMap['rollout'];
      return { type, rolloutId: r.rolloutId, at, state: r.state, previousState: r.previousState, wave: r.wave, reason: r.reason, actor: r.actor };
    }
  }
  throw new Error(`unknown fleet event ${String(type)}`);
}
