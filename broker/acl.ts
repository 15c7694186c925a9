// Authorization rules, as pure functions of an identity and a topic (see broker/README.md for the
// table). The Aedes hooks in broker/index.ts only translate these answers into MQTT behaviour.

import type { Identity } from '../certs/identity.js';
import { MONITOR_FILTERS, topics } from './topics.js';

/** May this client PUBLISH to `topic`? Devices: their own announce and status. Monitors: nothing. */
export function mayPublish(identity: Identity, topic: string): boolean {
  if (identity.role !== 'device') return false;
  return topic === topics.announce(identity.id) || topic === topics.status(identity.id);
}

/**
 * May this client SUBSCRIBE with `filter`? Devices: exactly their own command topic (no
 * wildcard, so they can never see another device's traffic). Monitors: a filter that selects
 * nothing outside MONITOR_FILTERS.
 */
export function maySubscribe(identity: Identity, filter: string): boolean {
  if (identity.role === 'device') return filter === topics.command(identity.id);
  return MONITOR_FILTERS.some((allowed) => filterWithin(filter, allowed));
}

/** May a message on `topic` be sent to this client? Defence in depth behind maySubscribe. */
export function mayReceive(identity: Identity, topic: string): boolean {
  if (identity.role === 'device') return topic === topics.command(identity.id);
  return MONITOR_FILTERS.some((allowed) => topicMatches(allowed, topic));
}

/** Highest QoS granted on a subscription: commands are QoS 1, and a server may grant less than asked [MQTT-3.8.4-6]. */
export const MAX_GRANTED_QOS = 1;

/**
 * Whether every topic matched by `filter` is also matched by `allowed`, i.e. `filter` is
 * `allowed` or a narrowing of it. `+` in `filter` only fits under `+` or `#` in `allowed`,
 * `#` only under `#`.
 */
export function filterWithin(filter: string, allowed: string): boolean {
  const f = filter.split('/');
  const a = allowed.split('/');
  for (let i = 0; i < a.length; i++) {
    const al = a[i];
    if (al === '#') return true; // matches the parent level too (MQTT 3.1.1 §4.7.1.2)
    if (i >= f.length) return false;
    const fl = f[i];
    if (fl === '#') return false;
    if (al === '+') continue;
    if (fl !== al) return false; // a literal level admits only itself ('+' in filter is wider)
  }
  return f.length === a.length;
}

/** MQTT topic matching of a concrete topic name against a filter (MQTT 3.1.1 §4.7.1, [MQTT-4.7.2-1]). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  // Wildcards at the first level never match topics starting with '$' [MQTT-4.7.2-1].
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const fl = f[i];
    if (fl === '#') return true;
    if (i >= t.length) return false;
    if (fl !== '+' && fl !== t[i]) return false;
  }
  return f.length === t.length;
}
