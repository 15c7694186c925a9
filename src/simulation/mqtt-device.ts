// A simulated device's MQTT side, as docs/protocol.md describes it: mutual TLS with its own
// certificate, a persistent session (clean = false) and a QoS 1 subscription to its command
// topic; announces and status reports at QoS 1. Shared by `mqota simulate` (simulated-fleet.ts)
// and the benchmark's fleet (bench/fleet.ts), which adds its measurements around it.
import tls, { type SecureContext } from 'node:tls';
import { MqttClient, type IClientOptions } from 'mqtt';
import { PRESENCE_PAYLOAD, topics } from '../topics.js';

export interface BrokerAddress { host: string; port: number }

/**
 * The key-exchange groups a simulated device offers: what ESP-IDF's mbedTLS offers (X25519, then
 * the NIST curves) and no post-quantum hybrid, which mbedTLS does not have. With Node 24 (OpenSSL
 * 3.5) a client offers X25519MLKEM768 first, and the server then holds ~7 KiB more per connection
 * (`bench/broker-memory.ts --tls-only`, bench/README.md "Connect, sixth round"): a simulated fleet
 * must cost the server what devices cost it.
 */
export const DEVICE_KEY_EXCHANGE_GROUPS = 'X25519:P-256:P-384';

/** A simulated device's TLS material as a context, with the groups a device offers. */
export function deviceSecureContext(material: { ca: string; cert: string; key: string }): SecureContext {
  return tls.createSecureContext({ ...material, ecdhCurve: DEVICE_KEY_EXCHANGE_GROUPS });
}

/**
 * A TLS connection to the broker, verified like mqtt.js's own (chain against the CA, then the
 * server's name) but cheaper for a process that simulates a thousand devices. Node checks the
 * name with getPeerCertificate(true), which turns the whole chain into JS objects with three
 * fingerprints per certificate: 0.68 ms a connection, 13 % of the fleet's CPU while connecting.
 * The name check needs only the subject alternative names, which getPeerX509Certificate gives.
 */
export function connectTls(broker: BrokerAddress, secureContext: SecureContext): tls.TLSSocket {
  const socket = tls.connect({ host: broker.host, port: broker.port, secureContext, rejectUnauthorized: true });
  socket.getPeerCertificate = () => {
    const cert = socket.getPeerX509Certificate();
    return { subject: {}, subjectaltname: cert?.subjectAltName ?? '' } as tls.DetailedPeerCertificate;
  };
  return socket;
}

export class MqttDevice {
  private client: MqttClient | null = null;

  /** `onCommand` gets every payload on the device's command topic. */
  constructor(readonly id: string, private readonly secureContext: SecureContext, private readonly onCommand: (payload: Buffer) => void) {}

  get online(): boolean {
    return this.client?.connected ?? false;
  }

  /**
   * Connects (persistent session, no automatic reconnect: the caller decides) and subscribes to
   * the command topic. `onConnack` runs when the broker accepted the connection, before the
   * subscription, for callers that time the handshake. `presence`: keep devices/{id}/presence as
   * real devices do (a retained last will and a retained online message), which an external
   * broker needs (docs/scaling.md); off by default, the embedded broker ignores it.
   */
  async connect(broker: BrokerAddress, opts: { connectTimeoutMs?: number; keepaliveSeconds?: number; onConnack?: () => void; presence?: boolean } = {}): Promise<void> {
    const options: IClientOptions = {
      protocolVersion: 4, clientId: this.id, clean: false,
      reconnectPeriod: 0, connectTimeout: opts.connectTimeoutMs ?? 30_000, keepalive: opts.keepaliveSeconds ?? 120,
      ...(opts.presence ? { will: { topic: topics.presence(this.id), payload: Buffer.from(PRESENCE_PAYLOAD.offline), qos: 1 as const, retain: true } } : {}),
    };
    const client = new MqttClient(() => connectTls(broker, this.secureContext), options);
    this.client = client;
    client.on('message', (_topic, payload) => this.onCommand(payload));
    client.on('error', () => undefined); // an error also closes the connection: whoever uses the client next notices
    await new Promise<void>((resolve, reject) => {
      // Only our own listeners go afterwards: mqtt.js clears its `connected` flag and keepalive in
      // a 'close' listener of its own, so removing every 'close' listener left a dropped device "online".
      const settle = (err?: Error) => {
        client.removeListener('connect', onConnect);
        client.removeListener('error', settle);
        client.removeListener('close', onClose);
        if (err) reject(err); else resolve();
      };
      const onConnect = () => settle();
      const onClose = () => settle(new Error('closed before CONNACK'));
      client.on('connect', onConnect);
      client.on('error', settle);
      client.on('close', onClose);
    });
    opts.onConnack?.();
    const granted = await client.subscribeAsync(topics.command(this.id), { qos: 1 });
    if (granted[0]?.qos !== 1) throw new Error(`subscription granted qos ${granted[0]?.qos}`);
    if (opts.presence) await client.publishAsync(topics.presence(this.id), PRESENCE_PAYLOAD.online, { qos: 1, retain: true });
  }

  /** Fires once when the connection closes after connect() succeeded. */
  onClose(listener: () => void): void {
    this.client?.once('close', listener);
  }

  async announce(body: Record<string, unknown>): Promise<void> {
    await this.requireClient().publishAsync(topics.announce(this.id), JSON.stringify(body), { qos: 1 });
  }

  async report(body: Record<string, unknown>): Promise<void> {
    await this.requireClient().publishAsync(topics.status(this.id), JSON.stringify(body), { qos: 1 });
  }

  async end(): Promise<void> {
    await this.client?.endAsync(true).catch(() => undefined);
    this.client = null;
  }

  private requireClient(): MqttClient {
    if (!this.client) throw new Error(`${this.id} is not connected`);
    return this.client;
  }
}
