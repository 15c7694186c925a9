// The Aedes hooks: identity at CONNECT, then the ACL on every PUBLISH, SUBSCRIBE and delivery.
// The rules themselves live in acl.ts; this file turns their answers into MQTT behaviour and
// log lines.

import type { AedesOptions, AuthenticateError, Client, Subscription } from 'aedes';
import type { Logger } from 'pino';
import { MAX_GRANTED_QOS, mayPublish, mayReceive, maySubscribe, sessionIdentity } from './acl.js';
import { identityFromConnection } from '../certs/identity.js';
import { identityOf, setIdentity } from './identity.js';
import type { RefusalReason } from './refusals.js';

type Hooks = Required<Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>>;

const NOT_AUTHORIZED = 5;

function notAuthorized(message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: NOT_AUTHORIZED }) as AuthenticateError;
}

function remoteAddress(client: Client): string | undefined {
  return (client.conn as { remoteAddress?: string }).remoteAddress;
}

/** Whether a certificate, by its normalized serial, has been revoked. */
export type RevocationCheck = (serial: string) => boolean;

/**
 * Runs what a client's publish causes before it is acknowledged; null when nothing needs to run.
 * The PUBACK (or, for QoS 0, the next read from the client) waits for the promise.
 */
export type BeforeAck = (client: Client, packet: { topic: string; payload: Buffer | string; qos: number }) => Promise<void> | null;

export function createHooks(logger: Logger, isRevoked: RevocationCheck = () => false, refused: (reason: RefusalReason) => void = () => undefined,
  beforeAck: BeforeAck = () => null): Hooks {
  return {
    authenticate(client, _username, _password, callback) {
      // The certificate is the credential; username and password are ignored.
      const identity = identityFromConnection(client.conn);
      if (!identity) {
        refused('no-identity');
        logger.warn({ clientId: client.id, remoteAddress: remoteAddress(client) }, 'mqtt: connection refused: no usable client certificate');
        return callback(notAuthorized('no usable client certificate'), false);
      }
      if (isRevoked(identity.serial)) {
        // The CA still vouches for it, so the handshake succeeded; the ledger says no.
        refused('revoked');
        logger.warn({ deviceId: identity.id, role: identity.role, serial: identity.serial, remoteAddress: remoteAddress(client) }, 'mqtt: connection refused: certificate revoked');
        return callback(notAuthorized('certificate revoked'), false);
      }
      // Ties the session (and so the topics) to the certificate: no one can take over another id.
      const session = sessionIdentity(identity, client.id, client.clean);
      if ('refused' in session) {
        refused('client-id');
        logger.warn({ deviceId: identity.id, clientId: client.id, role: identity.role },
          identity.role === 'claim' ? `mqtt: connection refused: ${session.refused}` : 'mqtt: connection refused: client id differs from certificate CN');
        return callback(notAuthorized(session.refused), false);
      }
      setIdentity(client, { ...session.identity, serial: identity.serial } as typeof identity);
      callback(null, true);
    },

    authorizePublish(client, packet, callback) {
      // No client: published by the server itself (broker.publish), which the ACL does not limit.
      // A client's last will comes here too, with the client, when its connection drops
      // [MQTT-3.1.2-8], so a will on a topic the client may not publish to is never sent.
      if (!client) return callback(null);
      const identity = identityOf(client);
      if (identity && mayPublish(identity, packet.topic)) {
        // Device reports are events for the server, not state to replay to later subscribers.
        if (identity.role === 'device') packet.retain = false;
        // Aedes writes the PUBACK of a QoS 1 publish as soon as this callback runs, before its
        // 'publish' event, so this is the last point before the acknowledgement: what the message
        // causes is committed first [MQTT-4.3.2-2: the sender keeps the message until PUBACK].
        // An error closes the connection unacknowledged, and the device sends it again.
        const handled = beforeAck(client, packet);
        if (!handled) return callback(null);
        return void handled.then(() => callback(null), (err: Error) => {
          logger.error({ err, deviceId: identity.id, topic: packet.topic }, 'mqtt: device message not handled; closing the connection unacknowledged');
          callback(err);
        });
      }
      const who = { deviceId: identity?.id ?? client.id, role: identity?.role, topic: packet.topic };
      if (client.closed) {
        refused('will');
        logger.warn(who, 'mqtt: last will refused');
        return callback(new Error(`will on ${packet.topic} not authorized`));
      }
      // MQTT 3.1.1 has no negative PUBACK [MQTT-3.3.5-2]: dropping silently would leave the
      // device believing it was heard, so Aedes closes the connection on this error.
      refused('publish');
      logger.warn(who, 'mqtt: publish refused, disconnecting');
      callback(new Error(`publish to ${packet.topic} not authorized`));
    },

    authorizeSubscribe(client, sub, callback) {
      const identity = identityOf(client);
      if (!identity || !maySubscribe(identity, sub.topic)) {
        refused('subscribe');
        logger.warn({ deviceId: identity?.id ?? client.id, role: identity?.role, topic: sub.topic }, 'mqtt: subscription refused');
        // A null subscription makes Aedes answer 0x80 for this topic [MQTT-3.8.4-5], keeping
        // the connection and the other topics of the same SUBSCRIBE [MQTT-3.8.4-4].
        return callback(null, null);
      }
      callback(null, sub.qos > MAX_GRANTED_QOS ? ({ ...sub, qos: MAX_GRANTED_QOS } as Subscription) : sub);
    },

    authorizeForward(client, packet) {
      const identity = identityOf(client);
      if (identity && mayReceive(identity, packet.topic)) return packet;
      logger.warn({ deviceId: identity?.id ?? client.id, topic: packet.topic }, 'mqtt: delivery withheld by ACL');
      return null;
    },
  };
}

/**
 * Lowers the QoS requested in a SUBSCRIBE to what we grant, before Aedes handles it: Aedes
 * takes SUBACK's granted QoS from the request, not from what authorizeSubscribe returns, and
 * the SUBACK must state the QoS actually granted [MQTT-3.8.4-5]. Uses Aedes' packet parser (the
 * only place to see a packet before its handler); if a later Aedes drops it, delivery is still
 * capped by authorizeSubscribe, only SUBACK would overstate.
 */
export function capSubscribeQos(client: Client): void {
  const parser = (client as unknown as { _parser?: { prependListener?: (e: string, l: (p: unknown) => void) => void } })._parser;
  parser?.prependListener?.('packet', (packet) => {
    const p = packet as { cmd?: string; subscriptions?: { qos: number }[] };
    if (p.cmd !== 'subscribe' || !p.subscriptions) return;
    for (const sub of p.subscriptions) if (sub.qos > MAX_GRANTED_QOS) sub.qos = MAX_GRANTED_QOS;
  });
}

/** Whether the store may keep this subscription for this client (see sessions.ts). */
export function storableSubscription(client: { id: string }, sub: Subscription): boolean {
  const identity = identityOf(client);
  return identity !== undefined && maySubscribe(identity, sub.topic);
}
