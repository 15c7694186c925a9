// mqtt.js clients for tests against the broker: mutual TLS with certificates from a TestPki,
// no automatic reconnects (a test decides when to reconnect), and small promise helpers that
// resolve on what actually arrived on the wire.
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { ClientRole } from '../../certs/identity.js';
import { PRESENCE_PAYLOAD, topics } from '../../src/topics.js';
import type { ClientCredentials, TestPki } from './pki.js';

export interface ConnectOptions {
  /** The broker's TLS port. */
  port: number;
  pki: TestPki;
  /** Default 127.0.0.1 (an IP SAN of the test server certificate). */
  host?: string;
  /** Certificate OU; default 'device'. */
  role?: ClientRole;
  /** MQTT client id; default the certificate CN (the id). */
  clientId?: string;
  /** Default false: devices keep a persistent session. */
  clean?: boolean;
  /** Use these instead of a certificate issued for id/role (e.g. pki.issueForeign(id)). */
  credentials?: ClientCredentials;
  /** Connect with no client certificate at all. */
  withoutCertificate?: boolean;
  /**
   * Presence as devices keep it for an external broker: a retained `{"online":false}` last will
   * on devices/{id}/presence and a retained `{"online":true}` after every CONNACK.
   */
  presence?: boolean;
  /** Anything else for mqtt.js. */
  mqtt?: Partial<IClientOptions>;
}

/** Starts an mqtt.js client over mutual TLS as `id`; does not wait for CONNACK. */
export async function openDevice(id: string, opts: ConnectOptions): Promise<MqttClient> {
  const creds = opts.credentials ?? (opts.withoutCertificate ? undefined : await opts.pki.issue(id, opts.role ?? 'device'));
  const will = opts.presence ? { will: { topic: topics.presence(id), payload: Buffer.from(PRESENCE_PAYLOAD.offline), qos: 1 as const, retain: true } } : {};
  const client = mqtt.connect({
    protocol: 'mqtts',
    host: opts.host ?? '127.0.0.1',
    port: opts.port,
    protocolVersion: 4,
    clientId: opts.clientId ?? id,
    clean: opts.clean ?? false,
    ca: opts.pki.caPem,
    ...(creds ? { cert: creds.certPem, key: creds.keyPem } : {}),
    rejectUnauthorized: true,
    reconnectPeriod: 0,
    connectTimeout: 30_000, // a failure bound: a connect storm on a loaded machine is slow, not broken
    keepalive: 30,
    ...will,
    ...opts.mqtt,
  });
  if (opts.presence) client.on('connect', () => client.publish(topics.presence(id), PRESENCE_PAYLOAD.online, { qos: 1, retain: true }));
  return client;
}

/** Connects as `id` and resolves once CONNACK 0 arrived; rejects (and ends the client) on any failure. */
export async function connectDevice(id: string, opts: ConnectOptions): Promise<MqttClient> {
  const client = await openDevice(id, opts);
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      client.removeListener('connect', ok);
      client.end(true);
      reject(err);
    };
    const ok = () => {
      client.removeListener('error', fail);
      client.removeListener('close', closed);
      resolve(client);
    };
    const closed = () => fail(new Error(`connection of ${id} closed before CONNACK`));
    client.once('connect', ok);
    client.once('error', fail);
    client.once('close', closed);
  });
}

/**
 * How a connection attempt that should fail did fail: the CONNACK return code when the broker
 * answered one, otherwise the transport error (TLS alert, reset) or just a close. `connected`
 * is true if the broker accepted the connection after all.
 */
export async function connectFailure(
  id: string,
  opts: ConnectOptions,
): Promise<{ connected: boolean; returnCode?: number; error?: Error }> {
  const client = await openDevice(id, opts);
  return new Promise((resolve) => {
    let error: Error | undefined;
    client.on('error', (err: Error & { code?: unknown }) => {
      error ??= err;
      if (typeof err.code === 'number') {
        client.end(true);
        resolve({ connected: false, returnCode: err.code, error: err });
      }
    });
    client.once('connect', () => {
      client.end(true);
      resolve({ connected: true });
    });
    client.once('close', () => {
      client.end(true);
      resolve({ connected: false, error });
    });
  });
}

/** SUBSCRIBE and return SUBACK's return codes, one per filter (0x80 = refused), whether or not mqtt.js calls that an error. */
export function subscribeCodes(client: MqttClient, filters: string | string[], qos: 0 | 1 | 2 = 1): Promise<number[]> {
  return new Promise((resolve, reject) => {
    client.subscribe(filters, { qos }, (err, _granted, packet) => {
      const codes = (packet as { granted?: number[] } | undefined)?.granted;
      if (codes) resolve(codes);
      else reject(err ?? new Error('no SUBACK'));
    });
  });
}

/** Resolves with the next PUBLISH received on `topic` (any topic if omitted); rejects after timeoutMs (a failure bound). */
export function nextMessage(client: MqttClient, topic?: string, timeoutMs = 30_000): Promise<{ topic: string; payload: Buffer; packet: IPublishPacket }> {
  return new Promise((resolve, reject) => {
    const onMessage = (t: string, payload: Buffer, packet: IPublishPacket) => {
      if (topic !== undefined && t !== topic) return;
      clearTimeout(timer);
      client.removeListener('message', onMessage);
      resolve({ topic: t, payload, packet });
    };
    const timer = setTimeout(() => {
      client.removeListener('message', onMessage);
      reject(new Error(`no message${topic ? ` on ${topic}` : ''} within ${timeoutMs} ms`));
    }, timeoutMs);
    client.on('message', onMessage);
  });
}

/** Collects every PUBLISH the client receives from now on. */
export function collectMessages(client: MqttClient): { topic: string; payload: string }[] {
  const received: { topic: string; payload: string }[] = [];
  client.on('message', (topic, payload) => received.push({ topic, payload: payload.toString() }));
  return received;
}

/** Resolves true when the client's connection closes within timeoutMs (a failure bound), false otherwise. */
export function closedWithin(client: MqttClient, timeoutMs = 30_000): Promise<boolean> {
  if (!client.connected && client.disconnected) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.removeListener('close', onClose);
      resolve(false);
    }, timeoutMs);
    const onClose = () => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once('close', onClose);
  });
}

/** Ends clients at once, ignoring errors (test cleanup). */
export async function endAll(...clients: (MqttClient | undefined)[]): Promise<void> {
  await Promise.all(clients.map((c) => (c ? c.endAsync(true).catch(() => undefined) : undefined)));
}
