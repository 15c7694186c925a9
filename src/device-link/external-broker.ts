// mqota as a client of an external MQTT broker (Mosquitto, EMQX, HiveMQ, VerneMQ) instead of
// running its own: MQTT 5 over mutual TLS with mqota's service certificate, a persistent session,
// device messages through shared subscriptions (so several instances split them), commands out at
// QoS 1. The broker enforces identity and the ACL from the files mqota writes (broker-config.ts).
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { PRESENCE_PAYLOAD, SERVICE_SHARE_GROUP, parseDeviceTopic, topics } from '../../broker/topics.js';
import type { DeviceMessage } from '../../broker/index.js';
import type { Logger } from '../logger.js';
import type { DeviceLink } from './index.js';

export interface ExternalBrokerOptions {
  /** mqtts://host:port */
  url: string;
  /** Verifies the broker's server certificate. */
  ca: string;
  /** mqota's own client certificate (role service) and key; clientId is its CN. */
  cert: string;
  key: string;
  clientId: string;
  sessionExpirySeconds: number;
  logger: Logger;
  /** Between reconnect attempts. Default 1 s. */
  reconnectPeriodMs?: number;
}

/** The subscriptions of an instance: device messages shared by the group, presence seen by every instance. */
export const SERVICE_SUBSCRIPTIONS = {
  shared: [topics.announce('+'), topics.status('+')].map((f) => `$share/${SERVICE_SHARE_GROUP}/${f}`),
  own: [topics.presence('+')],
};

/** Tells mqtt.js's publish handler to go on without sending the PUBACK itself (see acknowledge()). */
const ACK_DEFERRED = Object.assign(new Error('acknowledged later by mqota'), { deferred: true });

/**
 * Sends a packet on the current connection. `_sendPacket` is mqtt.js's own (private in its types,
 * the same since v1); checked at connect.
 */
function sendPacket(client: MqttClient, packet: { cmd: 'puback'; messageId: number; reasonCode: number }): void {
  (client as unknown as { _sendPacket(p: unknown): void })._sendPacket(packet);
}

export function connectExternalBroker(opts: ExternalBrokerOptions): DeviceLink {
  const { logger } = opts;
  const url = new URL(opts.url);
  const port = Number(url.port || 8883);
  const messageHandlers: ((m: DeviceMessage) => Promise<void> | void)[] = [];
  const presenceHandlers: ((deviceId: string, online: boolean) => void)[] = [];
  const online = new Set<string>();
  let client: MqttClient | undefined;
  let closing: Promise<void> | undefined;

  function presence(deviceId: string, payload: Buffer): void {
    if (payload.length === 0) return; // a retained message cleared
    let isOnline: unknown;
    try {
      isOnline = (JSON.parse(payload.toString()) as { online?: unknown }).online;
    } catch { /* reported below */ }
    if (typeof isOnline !== 'boolean') {
      logger.warn({ deviceId, payload: payload.toString().slice(0, 100) }, `mqtt: presence message is not ${PRESENCE_PAYLOAD.online} or ${PRESENCE_PAYLOAD.offline}; ignored`);
      return;
    }
    // A retained copy of what is known already (every resubscribe brings them all); an offline
    // device mqota never saw online is offline in the registry already (loaded so at start).
    if (isOnline === online.has(deviceId)) return;
    if (isOnline) online.add(deviceId);
    else online.delete(deviceId);
    for (const handler of presenceHandlers) {
      try {
        handler(deviceId, isOnline);
      } catch (err) {
        logger.error({ err, deviceId }, 'mqtt: presence handler failed');
      }
    }
  }

  /**
   * Acknowledgements in the order the messages arrived [MQTT-4.6.0-2], each once its handler
   * finished. mqtt.js would send the PUBACK when handleMessage calls back, and handles the next
   * packet only then: a handler waiting for its commit would hold up every packet behind it,
   * including the PUBACKs of the commands it publishes (a deadlock). So handleMessage calls back
   * at once with a marker error, which makes mqtt.js move on without a PUBACK, and the PUBACK is
   * sent here. The queue belongs to one connection: after a reconnect the broker resends what was
   * not acknowledged [MQTT-4.4.0-1], and late completions from before are dropped.
   */
  let acks: { messageId: number; done: boolean }[] = [];
  function acknowledge(queue: typeof acks): void {
    if (queue !== acks || !client) return;
    while (acks.length && acks[0].done) {
      const { messageId } = acks.shift()!;
      sendPacket(client, { cmd: 'puback', messageId, reasonCode: 0 });
    }
  }

  function handleMessage(packet: IPublishPacket, callback: (err?: Error) => void): void {
    const parsed = parseDeviceTopic(packet.topic);
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const entry = packet.qos === 1 && packet.messageId !== undefined ? { messageId: packet.messageId, done: false } : null;
    const queue = acks;
    if (entry) queue.push(entry);
    const finished = () => {
      if (!entry) return;
      entry.done = true;
      acknowledge(queue);
    };
    callback(entry ? ACK_DEFERRED : undefined);
    if (parsed?.kind === 'presence') {
      presence(parsed.deviceId, payload);
      return finished();
    }
    if (!parsed || (parsed.kind !== 'announce' && parsed.kind !== 'status')) {
      // The ACL lets only device topics reach us; anything else is acknowledged and dropped.
      logger.warn({ topic: packet.topic }, 'mqtt: message on a topic mqota does not read; dropped');
      return finished();
    }
    const message: DeviceMessage = { deviceId: parsed.deviceId, kind: parsed.kind, payload };
    Promise.all(messageHandlers.map(async (handler) => handler(message))).then(finished, (err: Error) => {
      // Not acknowledged: the broker keeps it in our session and sends it again after a reconnect.
      logger.error({ err, deviceId: message.deviceId, topic: packet.topic }, 'mqtt: device message not handled; reconnecting to have it sent again');
      if (queue === acks) client?.stream?.destroy();
    });
  }

  async function subscribe(c: MqttClient): Promise<void> {
    const granted = await c.subscribeAsync([...SERVICE_SUBSCRIPTIONS.shared, ...SERVICE_SUBSCRIPTIONS.own], { qos: 1 });
    const refused = granted.filter((g) => g.qos > 2).map((g) => g.topic);
    if (refused.length) throw new Error(`the broker refused mqota's subscriptions to ${refused.join(', ')}: is the service certificate (${opts.clientId}) in its ACL? (mqota broker config)`);
  }

  return {
    get port() { return port; },
    publicUrl: `mqtts://${url.host}`,

    listen() {
      return new Promise<void>((resolve, reject) => {
        const c = mqtt.connect({
          protocol: 'mqtts', host: url.hostname, port, protocolVersion: 5,
          clientId: opts.clientId,
          // A persistent session: what devices send while mqota is away waits for it.
          clean: false, properties: { sessionExpiryInterval: opts.sessionExpirySeconds },
          ca: opts.ca, cert: opts.cert, key: opts.key, rejectUnauthorized: true,
          reconnectPeriod: opts.reconnectPeriodMs ?? 1000, connectTimeout: 30_000, keepalive: 30,
          // With the session resumed the broker resends what we did not acknowledge [MQTT-4.4.0-1];
          // mqtt.js must not resubscribe on its own (we do, and check the SUBACK).
          resubscribe: false,
        });
        if (typeof (c as unknown as { _sendPacket?: unknown })._sendPacket !== 'function') {
          c.end(true);
          return reject(new Error('this mqtt.js has no _sendPacket: acknowledgements after commit need it (see external-broker.ts)'));
        }
        c.handleMessage = handleMessage as MqttClient['handleMessage'];
        client = c;
        c.on('close', () => { acks = []; }); // a new connection, a new order of PUBACKs
        let first = true;
        c.on('connect', (connack) => {
          logger.info({ url: opts.url, clientId: opts.clientId, sessionPresent: connack.sessionPresent }, 'mqtt: connected to the external broker');
          subscribe(c).then(() => {
            if (first) { first = false; resolve(); }
          }, (err: Error) => {
            logger.error({ err }, 'mqtt: subscriptions refused');
            if (first) { first = false; c.end(true); reject(err); }
          });
        });
        c.on('error', (err) => {
          logger.warn({ err: err.message, url: opts.url }, 'mqtt: external broker connection error');
          // A refused CONNECT (bad certificate, not authorized) will not get better by itself at start.
          if (first && (err as { code?: unknown }).code !== undefined && typeof (err as { code?: unknown }).code === 'number') {
            first = false;
            c.end(true);
            reject(new Error(`the external broker ${opts.url} refused mqota's connection: ${err.message}`));
          }
        });
        c.on('offline', () => logger.warn({ url: opts.url }, 'mqtt: external broker unreachable; reconnecting'));
      });
    },

    publish(topic, payload, publishOpts = {}) {
      if (!client) return Promise.reject(new Error('not connected to the external broker yet'));
      if (topic.length === 0 || topic.includes('+') || topic.includes('#')) {
        return Promise.reject(new Error(`invalid topic name ${JSON.stringify(topic)}`)); // [MQTT-3.3.2-2]
      }
      // QoS 1 resolves on the broker's PUBACK: from then on the broker holds the command, also for an offline device's session.
      return client.publishAsync(topic, payload, { qos: publishOpts.qos ?? 1, retain: publishOpts.retain ?? false }).then(() => undefined);
    },

    onDeviceMessage(handler) { messageHandlers.push(handler); },
    onPresence(handler) { presenceHandlers.push(handler); },
    onClaimRequest() {
      // Answering a claim needs the device id it asked for and the claim certificate it came with,
      // which only the embedded broker's hooks see; an external broker tells mqota neither.
      logger.warn({ url: opts.url }, 'mqtt: provisioning by claim is served by the embedded broker only; claim connections to the external broker get no answer (docs/provisioning.md)');
    },
    connectedDevices() { return online.size; },
    // The external broker's monitors are not known here: always published.
    statusTopicReaders() { return Number.POSITIVE_INFINITY; },

    disconnectCertificate(clientId) {
      // The broker holds the connection; it refuses the certificate from its next handshake on (CRL).
      logger.warn({ deviceId: clientId }, 'mqtt: certificate revoked; the external broker refuses it once its CRL is reloaded');
      return false;
    },

    handshakes() { return { inProgress: 0, queued: 0, window: 0, refused: 0 }; },
    awaitingConnect() { return 0; },
    refusals() { return new Map(); },
    healthy() { return client?.connected ?? false; },

    close() {
      closing ??= client ? client.endAsync(true).then(() => logger.info({ url: opts.url }, 'mqtt: external broker connection closed')) : Promise.resolve();
      return closing;
    },
  };
}
