// The embedded MQTT broker: Aedes behind a mutual-TLS listener. It knows topics and identities,
// nothing of firmware or rollouts; the orchestrator talks to it through the Broker interface
// only, so an external broker could take its place.

import { Aedes, type Client } from 'aedes';
import { constants as cryptoConstants } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { HandshakeGate, type HandshakeGateOptions, type HandshakeStats } from './handshake-gate.js';
import { capSubscribeQos, createHooks, storableSubscription, type BeforeAck, type RevocationCheck } from './hooks.js';
import { identityOf } from './identity.js';
import { guardPacketSize } from './packet-size.js';
import { Presence } from './presence.js';
import { Refusals, type RefusalReason } from './refusals.js';
import { maxDeviceConnections, openFileLimit } from './connection-limit.js';
import { sessionStore } from './sessions.js';
import { dropClusterAnnouncements } from './cluster-announcements.js';
import { isClaim, type ClaimIdentity } from './acl.js';
import type { ConnectionIdentity } from '../certs/identity.js';
import { MAX_CLIENT_ID_LENGTH, parseDeviceTopic, provisionTopics } from './topics.js';

export { MONITOR_FILTERS, PRESENCE_PAYLOAD, SERVICE_SHARE_GROUP, parseDeviceTopic, provisionTopics, topics } from './topics.js';
export type { RevocationCheck } from './hooks.js';
export { REFUSAL_REASONS, type RefusalReason } from './refusals.js';
export type { HandshakeStats } from './handshake-gate.js';

export const DEFAULT_MAX_PACKET_BYTES = 64 * 1024;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export interface BrokerOptions {
  /** TLS port; 0 picks a free one (tests). */
  port: number;
  /** Listen address; default: all addresses (`::` where IPv6 exists). */
  host?: string;
  /** Server key and certificate, and the CA that signs client certificates (the device CA). */
  tls: { key: string | Buffer; cert: string | Buffer; clientCa: string | Buffer };
  /**
   * An extra plain-TCP listener, only when set. It authenticates no one: without a TLS client
   * certificate there is no identity, so every CONNECT on it is refused with CONNACK 5 (and
   * logged). It exists so that a misconfigured device shows up in the logs instead of timing out.
   */
  plaintextPort?: number;
  /** Largest MQTT packet accepted, header included; a larger one closes that connection. Default 64 KiB. */
  maxPacketBytes?: number;
  /**
   * A connection that has not sent CONNECT this long after it was accepted is closed, whether it
   * is still waiting for a handshake slot, in its TLS handshake, or past it. Default 10 s.
   */
  connectTimeoutMs?: number;
  /**
   * Connections held at most (per listener); more are closed at accept. Default: the open-file
   * limit minus a reserve (connection-limit.ts); null: no bound.
   */
  maxConnections?: number | null;
  /** Admission of TLS handshakes (see handshake-gate.ts); the defaults suit a fleet. */
  handshakes?: Partial<HandshakeGateOptions>;
  /** Asked at every CONNECT with the client certificate's serial; a revoked one gets CONNACK 5. */
  isRevoked?: RevocationCheck;
  logger: Logger;
}

/** A CSR sent with a claim certificate on `provision/{claimId}/request`, for the device id in the client id. */
export interface ClaimRequest {
  claimId: string;
  deviceId: string;
  /** The claim certificate's serial (normalized), so a request is tied to the certificate it came with. */
  serial: string;
  payload: Buffer;
}

export interface DeviceMessage {
  deviceId: string;
  kind: 'announce' | 'status';
  payload: Buffer;
}

export interface Broker {
  /** The TLS port actually bound (0 before listen()). */
  readonly port: number;
  /** The plaintext port actually bound, when one was configured. */
  readonly plaintextPort: number | undefined;
  /** For tests and metrics only. */
  readonly aedes: Aedes;
  /** Publishes as the server (no ACL). QoS defaults to 1, so a command reaches an offline device with a persistent session. */
  publish(topic: string, payload: string | Buffer, opts?: { qos?: 0 | 1; retain?: boolean }): Promise<void>;
  /**
   * announce/status publishes of devices, after the ACL let them through. The broker acknowledges
   * a message (PUBACK) only once every handler's promise has resolved, and reads nothing more from
   * that device until then; a rejection closes the connection unacknowledged.
   */
  onDeviceMessage(handler: (m: DeviceMessage) => Promise<void> | void): void;
  /**
   * Provisioning requests of claim connections, after the ACL let them through; acknowledged once
   * the handler resolves. The handler answers on `provision/{claimId}/response/{deviceId}` itself.
   */
  onClaimRequest(handler: (r: ClaimRequest) => Promise<void>): void;
  /** A device-role client connected (after its CONNECT was authorized) or disconnected. */
  onPresence(handler: (deviceId: string, online: boolean) => void): void;
  connectedDevices(): number;
  /**
   * Connected clients that may read the status topics (monitors). Device events there are QoS 0
   * and not retained: with none connected, nobody can get them, and they need not be published.
   */
  statusTopicReaders(): number;
  /** Closes the connection of this client id if it authenticated with this certificate (normalized serial); says whether it did. */
  disconnectCertificate(clientId: string, serial: string): boolean;
  /** TLS handshakes running and waiting, for metrics. */
  handshakes(): HandshakeStats;
  /** TLS connections accepted that have not sent CONNECT yet (in or after their handshake), each under the connect deadline. */
  awaitingConnect(): number;
  /** Clients and packets turned away so far, by reason, for metrics. */
  refusals(): ReadonlyMap<RefusalReason, number>;
  /** Opens the TLS listener (and the plaintext one, when configured). */
  listen(): Promise<void>;
  /** Closes the listeners, every client connection and Aedes. */
  close(): Promise<void>;
  /** Whether devices can be heard (Aedes not closed), for /healthz. */
  healthy(): boolean;
}

/** A broker listening on its ports. */
export async function startBroker(opts: BrokerOptions): Promise<Broker> {
  const broker = await createBroker(opts);
  try {
    await broker.listen();
  } catch (err) {
    await broker.close();
    throw err;
  }
  return broker;
}

/**
 * A broker that does not listen yet: the orchestrator subscribes to its device messages before
 * `listen()`, so no device is heard before someone handles what it says.
 */
export async function createBroker(opts: BrokerOptions): Promise<Broker> {
  const { logger } = opts;
  const maxPacketBytes = opts.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  const connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const fileLimit = openFileLimit();
  const maxConnections = opts.maxConnections === undefined ? maxDeviceConnections(null, fileLimit) : opts.maxConnections;
  /** Applies the connection limit to a listener; a connection over it is closed by Node at accept. */
  function limitConnections(listener: net.Server): void {
    if (maxConnections === null) return;
    listener.maxConnections = maxConnections;
    listener.on('drop', (data?: { remoteAddress?: string }) => {
      refusals.count('too-many-connections');
      const refused = refusals.snapshot().get('too-many-connections')!;
      if (refused % 1000 === 1) {
        logger.warn({ remoteAddress: data?.remoteAddress, maxConnections, openFileLimit: fileLimit, refused },
          'mqtt: connection limit reached, connection closed (raise the open-file limit or MQTT_MAX_CONNECTIONS)');
      }
    });
  }
  const refusals = new Refusals();

  const messageHandlers: ((m: DeviceMessage) => Promise<void> | void)[] = [];
  let claimHandler: ((r: ClaimRequest) => Promise<void>) | undefined;
  const presenceHandlers: ((deviceId: string, online: boolean) => void)[] = [];

  // A device's announce or status, handed to the orchestrator before the broker acknowledges it.
  const beforeAck: BeforeAck = (client, packet) => {
    const identity = identityOf(client);
    if (identity && isClaim(identity)) {
      // authorizePublish allowed only this claim's request topic.
      if (!claimHandler || packet.topic !== provisionTopics.request(identity.id)) return null;
      return claimHandler({
        claimId: identity.id, deviceId: identity.deviceId, serial: (identity as ClaimIdentity & Partial<ConnectionIdentity>).serial ?? "",
        payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
      });
    }
    if (identity?.role !== 'device' || !messageHandlers.length) return null;
    const parsed = parseDeviceTopic(packet.topic);
    // authorizePublish already held devices to their own topics; this is the second look.
    // Presence comes from the connection here; the presence topic is for external brokers.
    if (!parsed || parsed.deviceId !== identity.id || (parsed.kind !== 'announce' && parsed.kind !== 'status')) return null;
    const message: DeviceMessage = {
      deviceId: parsed.deviceId,
      kind: parsed.kind,
      payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
    };
    return Promise.all(messageHandlers.map(async (handler) => handler(message))).then(() => undefined);
  };

  const aedes = await Aedes.createBroker({
    ...createHooks(logger, opts.isRevoked, refusals.count, beforeAck),
    // A client that sends no CONNECT is holding a connection for nothing. On the TLS listener the
    // connect deadline below counts from the accept, before this one starts; this one also covers
    // the plaintext listener.
    connectTimeout: connectTimeoutMs,
    // Our ids are up to 64 characters, a claim's 129: [MQTT-3.1.3-5] requires 23, a server may allow more (§3.1.3.1).
    maxClientsIdLength: MAX_CLIENT_ID_LENGTH,
    // No in-flight limit in the message router: with one (Aedes' default is 100), mqemitter drains
    // its queue recursively, one stack frame per queued message without a subscriber, and a
    // rollout wave of a few thousand commands plus their fleet events overflowed the stack.
    // Back-pressure comes from the sockets and QoS 1 inflight windows instead.
    concurrency: 0,
    persistence: sessionStore(storableSubscription),
  });
  dropClusterAnnouncements(aedes);

  const presence = new Presence((deviceId, online) => {
    for (const handler of presenceHandlers) {
      try {
        handler(deviceId, online);
      } catch (err) {
        logger.error({ err, deviceId }, 'mqtt: presence handler failed');
      }
    }
  });

  // Monitoring clients' connections, kept only so a revoked certificate can be cut off.
  const monitors = new Presence(() => undefined);
  // Every monitoring connection (several may share a certificate, so not by id): who may read the status topics.
  const statusReaders = new Set<Client>();
  // Claim connections by claim id: many devices of a batch share one certificate.
  const claims = new Map<string, Set<Client>>();

  aedes.on('client', (client) => {
    // CONNECT arrived: the keep-alive governs from here [MQTT-3.1.2-24]. Ended now rather than
    // left to fire: every device would otherwise hold its deadline's timer for 10 s after connecting.
    const raw = rawSocketOf(client.conn as tls.TLSSocket);
    if (raw) endConnectDeadline(raw);
    const identity = identityOf(client);
    if (!identity) return;
    logger.info({ deviceId: identity.id, role: identity.role, clean: client.clean }, 'mqtt: client connected');
    if (identity.role === 'claim') {
      let open = claims.get(identity.id);
      if (!open) claims.set(identity.id, (open = new Set()));
      open.add(client);
      return;
    }
    if (identity.role !== 'device') statusReaders.add(client);
    (identity.role === 'device' ? presence : monitors).connected(identity.id, client);
  });

  aedes.on('clientDisconnect', (client) => {
    const identity = identityOf(client);
    if (!identity) return;
    logger.info({ deviceId: identity.id, role: identity.role }, 'mqtt: client disconnected');
    if (identity.role === 'claim') {
      const open = claims.get(identity.id);
      open?.delete(client);
      if (open?.size === 0) claims.delete(identity.id);
      return;
    }
    statusReaders.delete(client);
    (identity.role === 'device' ? presence : monitors).disconnected(identity.id, client);
  });

  aedes.on('clientError', (client, err) => {
    logger.debug({ deviceId: identityOf(client)?.id ?? client.id, err: err.message }, 'mqtt: client error');
  });
  aedes.on('connectionError', (client, err) => {
    logger.debug({ remoteAddress: remoteAddressOf(client), err: err.message }, 'mqtt: connection error before CONNECT');
  });
  aedes.on('keepaliveTimeout', (client) => {
    logger.info({ deviceId: identityOf(client)?.id ?? client.id }, 'mqtt: keepalive timeout');
  });

  // Raw sockets of both listeners, handshaking or not, so close() can end them all. One shared
  // close listener serves every socket (thousands of sockets, no closure each).
  const sockets = new Set<net.Socket>();
  // A TLS connection must send CONNECT within connectTimeoutMs of its accept, however that time
  // went: waiting for a handshake slot, in the handshake (Node's handshakeTimeout is reset by every
  // byte, and on expiry it only emits tlsClientError, the socket stays open), or idle after it
  // (Aedes' connectTimeout starts only then). A device gives up sooner than that (ESP-IDF's
  // network timeout is 10 s), so a connection still waiting is held by no one, or by a flood.
  const connectDeadlines = new Map<net.Socket, NodeJS.Timeout>();
  const tlsOf = new WeakMap<net.Socket, tls.TLSSocket>();
  /** Closed by the deadline mid-handshake: the TLS socket's "socket hang up" that follows is ours, not a refusal. */
  const expired = new WeakSet<net.Socket>();
  function connectDeadlinePassed(raw: net.Socket) {
    connectDeadlines.delete(raw);
    const secure = tlsOf.get(raw);
    const client = (secure as { client?: Client } | undefined)?.client;
    if (client?.connecting || client?.connected) return; // CONNECT arrived: the keep-alive governs from here [MQTT-3.1.2-24]
    refusals.count('connect-timeout');
    logger.info({ remoteAddress: raw.remoteAddress, stage: secure ? 'after the TLS handshake' : 'before or in the TLS handshake', connectTimeoutMs },
      'mqtt: no CONNECT in time, connection closed');
    expired.add(raw);
    secure?.destroy();
    raw.destroy();
  }
  function forget(this: net.Socket) {
    sockets.delete(this);
    endConnectDeadline(this);
  }
  function endConnectDeadline(raw: net.Socket) {
    const deadline = connectDeadlines.get(raw);
    if (deadline) {
      clearTimeout(deadline);
      connectDeadlines.delete(raw);
    }
    tlsOf.delete(raw);
  }
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', forget);
  };

  const accept = (socket: net.Socket) => {
    let client: Client | undefined;
    guardPacketSize(socket, maxPacketBytes, (size) => {
      refusals.count('packet-too-large');
      logger.warn(
        { deviceId: client ? (identityOf(client)?.id ?? client.id ?? undefined) : undefined, size, maxPacketBytes },
        'mqtt: packet too large, disconnecting',
      );
    });
    client = aedes.handle(socket);
    capSubscribeQos(client);
  };

  // The TLS server never listens itself: the TCP listener below accepts sockets without reading
  // them, and the handshake gate hands each one to it (Node's documented way to inject a
  // connection) when the event loop has room for another handshake.
  const tlsServer = tls.createServer(
    {
      key: opts.tls.key,
      cert: opts.tls.cert,
      ca: opts.tls.clientCa,
      // Mutual TLS: no client certificate signed by the device CA, no handshake.
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      // No session tickets: with them every connection keeps ~14 KiB more native memory
      // (measured, bench/broker-memory.ts), and their keys are random per process, so the
      // reconnect storm after a restart gets no resumption anyway. Devices do full handshakes.
      secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
      // Only a backstop: the connect deadline above ends a stalled handshake first. (Node's default
      // is 120 s, and an idle half-open handshake costs a socket and an SSL object.)
      handshakeTimeout: connectTimeoutMs + 10_000,
    },
    (socket: tls.TLSSocket) => {
      const raw = rawSocketOf(socket);
      if (raw) {
        tlsOf.set(raw, socket);
        gate.release(raw, true);
      }
      accept(socket);
    },
  );
  tlsServer.on('tlsClientError', (err, socket) => {
    const raw = rawSocketOf(socket);
    if (!raw || !expired.has(raw)) {
      refusals.count('tls-handshake');
      logger.info({ remoteAddress: socket.remoteAddress, err: err.message }, 'mqtt: TLS handshake failed');
    }
    // Node closes the connection after most handshake errors, but not after ERR_TLS_HANDSHAKE_TIMEOUT.
    socket.destroy();
    raw?.destroy();
  });

  const gate: HandshakeGate = new HandshakeGate(
    (raw) => {
      tlsServer.emit('connection', raw);
    },
    (raw) => {
      // Log the first refusal, then one line per thousand: a flood must not flood the log too.
      const { refused } = gate.stats();
      if (refused % 1000 === 1) {
        logger.warn({ remoteAddress: raw.remoteAddress, refused }, 'mqtt: too many TLS handshakes waiting, connection closed');
      }
      raw.destroy();
    },
    opts.handshakes,
  );

  const server = net.createServer({ pauseOnConnect: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 }, (raw) => {
    track(raw);
    connectDeadlines.set(raw, setTimeout(connectDeadlinePassed, connectTimeoutMs, raw));
    gate.admit(raw);
  });
  server.on('error', (err) => logger.error({ err }, 'mqtt: TLS listener error'));
  limitConnections(server);

  let plaintext: net.Server | undefined;
  let port = 0;
  let plaintextPort: number | undefined;

  async function listenAll(): Promise<void> {
    await listen(server, opts.port, opts.host);
    if (opts.plaintextPort !== undefined) {
      plaintext = net.createServer({ noDelay: true }, (socket) => {
        track(socket);
        accept(socket);
      });
      plaintext.on('error', (err) => logger.error({ err }, 'mqtt: plaintext listener error'));
      limitConnections(plaintext);
      await listen(plaintext, opts.plaintextPort, opts.host);
    }
    port = (server.address() as AddressInfo).port;
    plaintextPort = plaintext ? (plaintext.address() as AddressInfo).port : undefined;
    logger.info({ port, maxPacketBytes, maxConnections, openFileLimit: fileLimit }, 'mqtt: TLS listener ready');
    if (plaintextPort !== undefined) {
      logger.warn({ port: plaintextPort }, 'mqtt: plaintext listener enabled; it authenticates no client (CONNACK 5 for all)');
    }
  }

  let closing: Promise<void> | undefined;

  return {
    get port() { return port; },
    get plaintextPort() { return plaintextPort; },
    aedes,

    listen() {
      return listenAll();
    },

    publish(topic, payload, publishOpts = {}) {
      if (topic.length === 0 || topic.includes('+') || topic.includes('#')) {
        // [MQTT-3.3.2-2]: a topic name has no wildcards
        return Promise.reject(new Error(`invalid topic name ${JSON.stringify(topic)}`));
      }
      return new Promise<void>((resolve, reject) => {
        aedes.publish(
          {
            cmd: 'publish',
            topic,
            payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
            qos: publishOpts.qos ?? 1,
            retain: publishOpts.retain ?? false,
            dup: false,
          },
          (err) => (err ? reject(err) : resolve()),
        );
      });
    },

    onDeviceMessage(handler) {
      messageHandlers.push(handler);
    },

    onClaimRequest(handler) {
      claimHandler = handler;
    },

    onPresence(handler) {
      presenceHandlers.push(handler);
    },

    connectedDevices() {
      return presence.count();
    },

    statusTopicReaders() {
      return statusReaders.size;
    },

    disconnectCertificate(clientId, serial) {
      const claimConnections = [...(claims.get(clientId) ?? [])].filter((c) => (identityOf(c) as ConnectionIdentity | undefined)?.serial === serial);
      if (claimConnections.length) {
        logger.warn({ claimId: clientId, serial, connections: claimConnections.length }, 'mqtt: claim certificate revoked, disconnecting');
        for (const c of claimConnections) c.close();
        return true;
      }
      const client = (presence.connection(clientId) ?? monitors.connection(clientId)) as Client | undefined;
      const identity = identityOf(client);
      if (!client || !identity || !('serial' in identity) || identity.serial !== serial) return false;
      logger.warn({ deviceId: identity.id, role: identity.role, serial }, 'mqtt: certificate revoked, disconnecting');
      client.close();
      return true;
    },

    handshakes() {
      return gate.stats();
    },

    awaitingConnect() {
      return connectDeadlines.size;
    },

    healthy() {
      return !aedes.closed;
    },

    refusals() {
      return refusals.snapshot();
    },

    close() {
      closing ??= (async () => {
        const listenersClosed = [server, plaintext]
          .filter((s): s is net.Server => s !== undefined && s.listening)
          .map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
        gate.close();
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await Promise.all(listenersClosed);
        logger.info({ port }, 'mqtt: broker closed');
      })();
      return closing;
    },
  };
}

function listen(server: net.Server, port: number, host: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * The accepted socket a server-side TLS socket wraps. Node keeps it as `_parent` (undocumented,
 * there since Node 0.11, the same on 20, 22 and 24): without it no handshake would leave the gate,
 * which the broker tests would see at once.
 */
function rawSocketOf(socket: tls.TLSSocket): net.Socket | undefined {
  const parent = (socket as { _parent?: unknown })._parent;
  return parent instanceof net.Socket ? parent : undefined;
}

function remoteAddressOf(client: Client): string | undefined {
  return (client.conn as { remoteAddress?: string }).remoteAddress;
}
