// Authorization rules, as pure functions of an identity and a topic (see broker/README.md for the
// table). The Aedes hooks in broker/index.ts only translate these answers into MQTT behaviour.

import type { ClientRole, Identity } from '../certs/identity.js';
import { claimantOf, MONITOR_FILTERS, provisionTopics, STATUS_TOPIC_FILTERS, topics } from './topics.js';

/** Stands for the client's own id (its certificate CN) in ACL_RULES. */
export const OWN_ID = '{id}';
/**
 * Stands, in a claim's rules, for the device id the claim connection asked for in its client id
 * (`{claimId}:{deviceId}`, sessionIdentity). An external broker cannot read it out of the client
 * id, so broker-config.ts writes `+` there (docs/provisioning.md).
 */
export const CLAIMANT = '{device}';

export interface RoleRules {
  /** Topic filters the role may publish to. */
  readonly publish: readonly string[];
  /** Filters the role may subscribe to, or narrow down; it receives only topics they match. */
  readonly subscribe: readonly string[];
}

/**
 * The whole ACL as data, with OWN_ID for the client's own id. The hooks of the embedded broker
 * apply it through the functions below; `mqota broker config` writes the same table as an
 * external broker's ACL file (src/device-link/broker-config.ts), so the two cannot drift.
 *
 * - device: its own announce, status and presence; exactly its own command topic (no wildcard,
 *   so it can never see another device's traffic).
 * - monitor: publishes nothing; reads the status topics and device statuses.
 * - service (mqota on an external broker): reads what devices send, writes their commands and
 *   the status topics.
 * - claim (a batch's shared certificate, docs/provisioning.md): its claim's request topic, and
 *   exactly the response topic of the device id it asked for.
 */
export const ACL_RULES: Readonly<Record<ClientRole, RoleRules>> = {
  device: {
    publish: [topics.announce(OWN_ID), topics.status(OWN_ID), topics.presence(OWN_ID)],
    subscribe: [topics.command(OWN_ID)],
  },
  monitor: { publish: [], subscribe: MONITOR_FILTERS },
  service: {
    publish: [topics.command('+'), ...STATUS_TOPIC_FILTERS],
    subscribe: [topics.announce('+'), topics.status('+'), topics.presence('+')],
  },
  claim: {
    publish: [provisionTopics.request(OWN_ID)],
    subscribe: [provisionTopics.response(OWN_ID, CLAIMANT)],
  },
};

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
 * ACL_RULES ready for the per-message path (authorizeForward runs for every delivery): each filter
 * split once around its placeholders, so a check costs a concatenation and, for a filter without
 * wildcards, one string comparison.
 */
interface CompiledFilter {
  /** Literal pieces, with a placeholder between each two. */
  pieces: string[];
  /** The placeholder after each piece but the last. */
  slots: (typeof OWN_ID | typeof CLAIMANT)[];
  wildcard: boolean;
}
const COMPILED = Object.fromEntries(Object.entries(ACL_RULES).map(([role, rules]) => [role, {
  publish: rules.publish.map(compile),
  subscribe: rules.subscribe.map(compile),
}])) as Record<ClientRole, Record<keyof RoleRules, CompiledFilter[]>>;

function compile(filter: string): CompiledFilter {
  const pieces: string[] = [];
  const slots: CompiledFilter['slots'] = [];
  const placeholders = /\{id\}|\{device\}/g;
  let from = 0;
  for (const m of filter.matchAll(placeholders)) {
    pieces.push(filter.slice(from, m.index));
    slots.push(m[0] as CompiledFilter['slots'][number]);
    from = m.index! + m[0].length;
  }
  pieces.push(filter.slice(from));
  return { pieces, slots, wildcard: filter.includes('+') || filter.includes('#') };
}

/**
 * The filter with OWN_ID replaced by this client's id and CLAIMANT by the device id a claim asked
 * for (ids hold no `/`, `+`, `#`); null when the client has no such id.
 */
function expand(f: CompiledFilter, identity: Identity): string | null {
  // A claim certificate that named no device (the hooks never store one) may do nothing.
  if (identity.role === 'claim' && !isClaim(identity)) return null;
  if (!f.slots.length) return f.pieces[0]!;
  let out = f.pieces[0]!;
  for (let i = 0; i < f.slots.length; i++) {
    const value = f.slots[i] === OWN_ID ? identity.id : isClaim(identity) ? identity.deviceId : null;
    if (value === null) return null;
    out += value + f.pieces[i + 1]!;
  }
  return out;
}

/** May this client PUBLISH to `topic`? */
export function mayPublish(identity: Identity, topic: string): boolean {
  return COMPILED[identity.role].publish.some((f) => {
    const allowed = expand(f, identity);
    if (allowed === null) return false;
    return f.wildcard ? topicMatches(allowed, topic) : allowed === topic;
  });
}

/**
 * May this client SUBSCRIBE with `filter`? Only with a filter that selects nothing outside its
 * role's filters; a device's and a claim's one filter has no wildcard, so only that exact filter
 * passes.
 */
export function maySubscribe(identity: Identity, filter: string): boolean {
  return COMPILED[identity.role].subscribe.some((f) => {
    const allowed = expand(f, identity);
    if (allowed === null) return false;
    return f.wildcard ? filterWithin(filter, allowed) : allowed === filter;
  });
}

/** May a message on `topic` be sent to this client? Defence in depth behind maySubscribe. */
export function mayReceive(identity: Identity, topic: string): boolean {
  return COMPILED[identity.role].subscribe.some((f) => {
    const allowed = expand(f, identity);
    if (allowed === null) return false;
    return f.wildcard ? topicMatches(allowed, topic) : allowed === topic;
  });
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
