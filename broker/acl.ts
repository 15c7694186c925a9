// Authorization rules, as pure functions of an identity and a topic (see broker/README.md for the
// table). The Aedes hooks in broker/index.ts only translate these answers into MQTT behaviour.

import type { Identity } from '../certs/identity.js';
import { claimantOf, MONITOR_FILTERS, provisionTopics, topics } from './topics.js';

/**
 * A connection made with a claim certificate (`id` = the claim id) on behalf of the device id it
 * asks for, read from its client id (topics.ts, claimantOf).
 */
export interface ClaimIdentity extends Identity {
  readonly role: 'claim';
  readonly deviceId: string;
}

/** Whether `identity` is a claim connection that named the device it claims for. */
export function isClaim(identity: Identity): identity is ClaimIdentity {
  return identity.role === 'claim' && typeof (identity as Partial<ClaimIdentity>).deviceId === 'string';
}

/**
 * Who a CONNECT is, or why it is refused, from its certificate's identity and its client id.
 * A device or monitor: the client id is the certificate CN, which ties the session (and so the
 * topics) to the certificate. A claim: `{claimId}:{deviceId}`, with a clean session, since a
 * claim connection is one question and one answer and the broker keeps nothing of it
 * [MQTT-3.1.2-6].
 */
export function sessionIdentity(identity: Identity, clientId: string, cleanSession: boolean): { identity: Identity } | { refused: string } {
  if (identity.role !== 'claim') {
    return clientId === identity.id ? { identity } : { refused: 'client id must equal the certificate CN' };
  }
  const deviceId = claimantOf(identity.id, clientId);
  if (!deviceId) return { refused: `a claim certificate connects with client id "${identity.id}:<device id>"` };
  if (!cleanSession) return { refused: 'a claim connection must use a clean session' };
  const claim: ClaimIdentity = { ...identity, role: 'claim', deviceId };
  return { identity: claim };
}

/**
 * May this client PUBLISH to `topic`? Devices: their own announce and status. Monitors: nothing.
 * Claims: their claim's request topic only.
 */
export function mayPublish(identity: Identity, topic: string): boolean {
  if (isClaim(identity)) return topic === provisionTopics.request(identity.id);
  if (identity.role !== 'device') return false;
  return topic === topics.announce(identity.id) || topic === topics.status(identity.id);
}

/**
 * May this client SUBSCRIBE with `filter`? Devices: exactly their own command topic (no
 * wildcard, so they can never see another device's traffic). Claims: exactly the response topic
 * of the device id they claim for. Monitors: a filter that selects nothing outside MONITOR_FILTERS.
 */
export function maySubscribe(identity: Identity, filter: string): boolean {
  if (identity.role === 'device') return filter === topics.command(identity.id);
  if (identity.role === 'claim') return isClaim(identity) && filter === provisionTopics.response(identity.id, identity.deviceId);
  return MONITOR_FILTERS.some((allowed) => filterWithin(filter, allowed));
}

/** May a message on `topic` be sent to this client? Defence in depth behind maySubscribe. */
export function mayReceive(identity: Identity, topic: string): boolean {
  if (identity.role === 'device') return topic === topics.command(identity.id);
  if (identity.role === 'claim') return isClaim(identity) && topic === provisionTopics.response(identity.id, identity.deviceId);
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
