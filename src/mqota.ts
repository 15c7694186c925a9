// The composition root: certificates, database, in-memory indexes, broker and HTTPS app, built in
// dependency order and started; `close()` stops them in reverse order. main.ts and the tests both
// use it.
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { ensureCommandKey } from '../certs/command-key.js';
import { ensurePki } from '../certs/pki.js';
import { resolveAdminToken } from './auth/admin-token.js';
import { CertificateLedger } from './auth/certificate-ledger.js';
import type { FeedChange } from './cluster/change-feed.js';
import { SharedCaches } from './cluster/shared-caches.js';
import { DeviceProvisioning } from './fleet/device-provisioning.js';
import { ClaimService } from './fleet/claims.js';
import { publicBaseUrl, type Config } from './config.js';
import { openDatabase } from './db/database.js';
import { FleetRepository } from './db/fleet-repository.js';
import { FleetEvents } from './events.js';
import { FirmwareCatalog } from './firmware/catalog.js';
import { ImageStore } from './firmware/image-store.js';
import { SigningKeys } from './firmware/signing-keys.js';
import { DeviceRegistry } from './fleet/device-registry.js';
import { createDeviceLink } from './device-link/index.js';
import { oneAtATimePerDevice } from './device-link/device-order.js';
import { buildApp } from './http/app.js';
import type { Logger } from './logger.js';
import { startStatusTopics } from './monitoring/status-topics.js';
import { commandSigner } from './protocol/command-signature.js';
import { encodeCommand } from './protocol/messages.js';
import { DeviceMessageRejections } from './protocol/rejections.js';
import { AttemptTracker } from './rollouts/attempts.js';
import { RolloutLifecycle } from './rollouts/lifecycle.js';
import { LiveRollouts } from './rollouts/live-rollouts.js';
import { TurnPacer } from './rollouts/turn-pacer.js';
import { UpdateEngine } from './rollouts/update-engine.js';
import { topics } from '../broker/topics.js';
import type { Links, Services } from './services.js';
import { startWebhooks, type Clock } from './webhooks/index.js';
import { FleetHistory } from './monitoring/fleet-history.js';

export interface Mqota {
  services: Services;
  httpsPort: number;
  mqttPort: number;
  /** Base URL of the HTTPS API and images. */
  publicUrl: string;
  adminToken: { token: string; generated: boolean; file: string | null };
  pkiCreated: boolean;
  fingerprints: { ca: string; server: string; deviceCa: string };
  /** Resolves once the warm-ups that follow listening are done (http/app.ts). */
  warmedUp: Promise<void>;
  close(): Promise<void>;
}

/** Test seams: the clock of webhook retries. */
export interface MqotaOptions { webhookClock?: Clock }

export async function startMqota(config: Config, logger: Logger, opts: MqotaOptions = {}): Promise<Mqota> {
  const stack: Array<() => Promise<void> | void> = [];
  const close = async () => { for (const stop of stack.reverse()) await stop(); stack.length = 0; };
  try {
    const pki = await ensurePki({ dir: config.certsDir, hostnames: config.hostnames });
    const adminToken = await resolveAdminToken({ configured: config.adminToken, dataDir: config.dataDir });
    const [key, cert, clientCa] = await Promise.all([pki.paths.serverKey, pki.paths.serverCert, pki.paths.deviceCaCert].map((p) => readFile(p, 'utf8')));

    // Storage and what is loaded from it.
    const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger });
    stack.push(() => db.close());
    // On PostgreSQL other instances may share the database: commits tell them what changed (src/cluster/).
    // The cluster's modules bring pg: loaded only here, an embedded start never needs them (bench/README.md, "Start-up and memory").
    const clusterCode = db.kind === 'postgres' ? await loadClusterCode() : null;
    const feed = clusterCode ? new clusterCode.ChangeFeedWriter(config.instanceId) : null;
    const publish = async (change: FeedChange) => {
      const chunks = feed!.encode(change);
      if (chunks.length) await db.prisma.$executeRawUnsafe('SELECT pg_notify($1, c) FROM json_array_elements_text($2::json) AS c', feed!.channel, JSON.stringify(chunks));
    };
    const caches = new SharedCaches(feed ? (name) => publish({ caches: [name] }) : null);
    const repository = new FleetRepository(db, logger.child({ component: 'db' }), { maxBacklogRows: config.dbBacklogRows, feed });
    stack.push(() => repository.close()); // after the broker and the API stopped: what they queued lands
    const images = new ImageStore(path.join(config.dataDir, 'firmware'), config.maxImageBytes);
    await images.init();
    const catalog = new FirmwareCatalog(db.prisma, images, caches);
    const registry = new DeviceRegistry(repository);
    const certificates = new CertificateLedger(db.prisma, pki.paths, caches);
    const signingKeys = new SigningKeys(db.prisma);
    let loaded!: () => void;
    const ready = new Promise<void>((resolve) => { loaded = resolve; });
    await Promise.all([catalog.load(), registry.load({ resetPresence: config.broker.mode === 'embedded' }), certificates.load(), signingKeys.load()]);
    const commandKey = config.signCommands ? await ensureCommandKey(config.certsDir) : null;
    const signed = commandSigner({ key: commandKey?.privateKey ?? null, ttlSeconds: config.commandTtlSeconds });

    // The broker (embedded, or mqota's connection to an external one), not listening yet, and the addresses devices are given.
    const broker = await createDeviceLink(config, { tls: { key, cert, clientCa }, pki: pki.paths, certificates, logger });
    stack.push(() => broker.close());
    certificates.onRevoke((commonName, serial) => broker.disconnectCertificate(commonName, serial));
    const httpsPort = config.httpsPort || await freePort(config.host);
    const publicUrl = publicBaseUrl(config, httpsPort);
    const imageUrl = (sha256: string) => `${publicUrl}/firmware/${sha256}.bin`;

    // The rollout core: what is in flight, device messages in and commands out, lifecycles.
    const events = new FleetEvents(logger);
    const rejections = new DeviceMessageRejections({ events, logger: logger.child({ component: 'rollouts' }) });
    const rollouts = new LiveRollouts();
    const pacer = new TurnPacer(); // one budget per turn of the event loop for a fan-out's sends and commits
    const attempts = new AttemptTracker({ repository, rollout: (id) => rollouts.get(id), events, logger: logger.child({ component: 'rollouts' }), pacer });
    const engine = new UpdateEngine({
      repository, registry, catalog, attempts, rollouts, rejections, imageUrl, events, logger, pacer,
      commands: { send: (deviceId, command) => broker.publish(topics.command(deviceId), encodeCommand(signed(deviceId, command)), { qos: 1 }) },
    });
    const lifecycle = new RolloutLifecycle({ repository, registry, catalog, attempts, rollouts, engine, events, logger, tickMs: config.rolloutTickMs, pacer });
    // With others: listen to their changes before loading, apply them after (none missed), and let the leader tick.
    const cluster = clusterCode && feed && config.databaseUrl
      ? await clusterCode.startCluster({ instanceId: config.instanceId, connectionString: config.databaseUrl, registry, rollouts, attempts, lifecycle, caches, events, publish, logger }, ready)
      : null;
    if (cluster) stack.push(() => cluster.close());
    await lifecycle.load();
    loaded();
    stack.push(() => lifecycle.close());

    // Devices are heard from here on. A message waits for room in the write backlog (the device
    // keeps it unacknowledged meanwhile), and is acknowledged once what it changed is committed;
    // a device's next message is handled only then (device-order.ts).
    broker.onDeviceMessage(oneAtATimePerDevice(async ({ deviceId, kind, payload }) => {
      await repository.room();
      await (kind === 'announce' ? engine.handleAnnounce(deviceId, payload) : engine.handleStatus(deviceId, payload));
    }));
    broker.onPresence((deviceId, online) => engine.handlePresence(deviceId, online));
    await broker.listen();
    const brokerHost = new URL(publicUrl).hostname;
    const links: Links = { imageUrl, brokerUrl: () => broker.publicUrl ?? `mqtts://${brokerHost}:${broker.port}` };
    stack.push(await startStatusTopics({ events, rollouts: lifecycle, broker, repository, logger, sharedBroker: config.broker.mode === 'external' })); // rollouts/{id}/progress, fleet/{id}/events
    const webhooks = await startWebhooks({
      prisma: db.prisma, events, updateOf: (deviceId) => attempts.ofDevice(deviceId), logger, clock: opts.webhookClock,
      policy: { allowHttp: config.webhookAllowHttp, allowPrivate: config.webhookAllowPrivate },
    });
    stack.push(() => webhooks.close());
    const history = new FleetHistory({ prisma: db.prisma, registry, logger, sampleMs: config.versionSampleMs });
    stack.push(history.start());

    const provisioning = new DeviceProvisioning({
      registry, certificates, prisma: db.prisma, brokerUrl: links.brokerUrl,
      trust: () => ({ commandKeyPem: commandKey?.publicPem ?? null, imageKeyDigests: signingKeys.list().filter((k) => !k.retiredAt).map((k) => k.keyDigest) }),
    });
    const claims = new ClaimService({
      prisma: db.prisma, certificates, provisioning, brokerUrl: links.brokerUrl, logger: logger.child({ component: 'provisioning' }),
      publish: (topic, payload) => broker.publish(topic, payload, { qos: 1 }),
    });
    broker.onClaimRequest((request) => claims.handleRequest(request));
    const services: Services = {
      config, logger, db, repository, catalog, registry, engine, rollouts: lifecycle, rejections, events, broker, pki: pki.paths, certificates,
      provisioning, claims, adminToken: adminToken.token, links, webhooks, history, signingKeys, commandKeyPem: commandKey?.publicPem ?? null, sharedCaches: caches, cluster,
    };
    let warm = () => {};
    const warmedUp = new Promise<void>((resolve) => { warm = resolve; });
    const app = await buildApp(services, { key, cert, clientCa }, { warmedUp: warm });
    await app.listen({ port: httpsPort, host: config.host });
    stack.push(() => app.close()); // the API stops first, then the broker, then the writes drain
    if (!cluster) lifecycle.start(); // with a cluster, the leader's
    return { services, httpsPort, mqttPort: broker.port, publicUrl, adminToken, pkiCreated: pki.created, fingerprints: pki.fingerprints, warmedUp, close };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}

async function loadClusterCode() {
  const [{ ChangeFeedWriter }, { startCluster }] = await Promise.all([import('./cluster/change-feed.js'), import('./cluster/cluster.js')]);
  return { ChangeFeedWriter, startCluster };
}

/** A free TCP port, for HTTPS_PORT=0 (tests): image links need the port before the app is built. */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
