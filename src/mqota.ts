// The composition root: certificates, database, in-memory indexes, broker and HTTPS app, wired
// together and started; `close()` stops them in reverse order. main.ts and the tests both use it.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startBroker, type Broker } from '../broker/index.js';
import { topics } from '../broker/topics.js';
import { ensurePki } from '../certs/pki.js';
import { resolveAdminToken } from './auth/admin-token.js';
import { CertificateLedger } from './auth/certificate-ledger.js';
import { publicBaseUrl, type Config } from './config.js';
import { openDatabase, type Database } from './db/database.js';
import { WriteBehind } from './db/write-behind.js';
import { FirmwareCatalog } from './firmware/catalog.js';
import { ImageStore } from './firmware/image-store.js';
import { DeviceRegistry } from './fleet/device-registry.js';
import { FleetEvents } from './events.js';
import { buildApp, type App } from './http/app.js';
import type { Logger } from './logger.js';
import { encodeCommand } from './protocol/messages.js';
import { RolloutEngine } from './rollouts/rollout-engine.js';
import { startStatusTopics } from './monitoring/status-topics.js';
import type { Links, Services } from './services.js';

export interface Mqota {
  services: Services;
  httpsPort: number;
  mqttPort: number;
  /** Base URL of the HTTPS API and images. */
  publicUrl: string;
  adminToken: { token: string; generated: boolean; file: string | null };
  pkiCreated: boolean;
  fingerprints: { ca: string; server: string; deviceCa: string };
  close(): Promise<void>;
}

export async function startMqota(config: Config, logger: Logger): Promise<Mqota> {
  const stack: Array<() => Promise<void> | void> = [];
  const close = async () => { for (const stop of stack.reverse()) await stop(); stack.length = 0; };
  try {
    const pki = await ensurePki({ dir: config.certsDir, hostnames: config.hostnames });
    const adminToken = await resolveAdminToken({ configured: config.adminToken, dataDir: config.dataDir });

    const db: Database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger });
    stack.push(() => db.close());
    const writes = new WriteBehind(db.prisma, logger.child({ component: 'db' }));
    stack.push(() => writes.close());

    const images = new ImageStore(path.join(config.dataDir, 'firmware'), config.maxImageBytes);
    await images.init();
    const catalog = new FirmwareCatalog(db.prisma, images);
    const registry = new DeviceRegistry(writes);
    const certificates = new CertificateLedger(db.prisma, pki.paths);
    await Promise.all([catalog.load(), registry.load(db.prisma), certificates.load()]);

    const events = new FleetEvents(logger);
    let links: Links | null = null;
    const linksReady = (): Links => { if (!links) throw new Error('links used before the listeners are bound'); return links; };
    let broker: Broker | null = null;
    const engine = new RolloutEngine({
      prisma: db.prisma, writes, registry, catalog, events, logger, tickMs: config.rolloutTickMs,
      imageUrl: (sha256) => linksReady().imageUrl(sha256),
      commands: { send: (deviceId, command) => broker!.publish(topics.command(deviceId), encodeCommand(command), { qos: 1 }) },
    });
    await engine.load();
    stack.push(() => engine.close());

    const [key, cert, clientCa] = await Promise.all([pki.paths.serverKey, pki.paths.serverCert, pki.paths.deviceCaCert].map((p) => readFile(p, 'utf8')));
    broker = await startBroker({
      port: config.mqttPort, host: config.host, tls: { key, cert, clientCa },
      plaintextPort: config.mqttPlaintextPort ?? undefined, maxPacketBytes: config.mqttMaxPacketBytes, connectTimeoutMs: config.mqttConnectTimeoutMs, logger: logger.child({ component: 'mqtt' }),
      isRevoked: certificates.isRevoked,
    });
    stack.push(() => broker!.close());
    certificates.onRevoke((commonName, serial) => broker!.disconnectCertificate(commonName, serial));
    broker.onDeviceMessage(({ deviceId, kind, payload }) => {
      const handled = kind === 'announce' ? engine.handleAnnounce(deviceId, payload) : engine.handleStatus(deviceId, payload);
      handled.catch((err) => logger.error({ err, deviceId, kind }, 'device message failed'));
    });
    broker.onPresence((deviceId, online) => engine.handlePresence(deviceId, online));
    stack.push(await startStatusTopics({ events, engine, broker, prisma: db.prisma, logger })); // rollouts/{id}/progress, fleet/{id}/events

    const services: Services = { config, logger, db, writes, catalog, registry, engine, events, broker, pki: pki.paths, certificates, adminToken: adminToken.token, links: { imageUrl: (s) => linksReady().imageUrl(s), brokerUrl: () => linksReady().brokerUrl() } };
    const app: App = await buildApp(services, { key, cert, clientCa });
    await app.listen({ port: config.httpsPort, host: config.host });
    stack.push(() => app.close()); // the API stops first, then the broker, then the writes drain
    const httpsPort = (app.server.address() as { port: number }).port;
    const publicUrl = publicBaseUrl(config, httpsPort);
    const brokerHost = new URL(publicUrl).hostname;
    links = {
      imageUrl: (sha256) => `${publicUrl}/firmware/${sha256}.bin`,
      brokerUrl: () => `mqtts://${brokerHost}:${broker!.port}`,
    };
    engine.start();
    return { services, httpsPort, mqttPort: broker.port, publicUrl, adminToken, pkiCreated: pki.created, fingerprints: pki.fingerprints, close };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}
