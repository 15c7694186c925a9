// How mqota reaches its devices: the embedded broker (broker/, the default) or an external broker
// it is a client of (external-broker.ts). The composition root uses only DeviceLink, and this is
// the one place that picks the implementation from the configuration.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createBroker, type Broker } from '../../broker/index.js';
import { normalizeSerial } from '../../certs/identity.js';
import { atomicWrite, type PkiPaths } from '../../certs/pki.js';
import type { CertificateLedger } from '../auth/certificate-ledger.js';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { certificateState, readBrokerConfigRequest, writeBrokerConfig } from './broker-config.js';

export type { ClaimRequest, DeviceMessage } from '../../broker/index.js';

export interface DeviceLink extends Pick<Broker, 'publish' | 'onDeviceMessage' | 'onClaimRequest' | 'onPresence' | 'connectedDevices' | 'statusTopicReaders' | 'disconnectCertificate'
  | 'handshakes' | 'awaitingConnect' | 'refusals' | 'listen' | 'close' | 'healthy'> {
  /** The MQTT port devices connect to. */
  readonly port: number;
  /** The mqtts:// URL devices are given, when it is not mqota's own host and port. */
  readonly publicUrl?: string;
}

export interface DeviceLinkDeps {
  /** mqota's server key and certificate, and the device CA. */
  tls: { key: string; cert: string; clientCa: string };
  pki: PkiPaths;
  certificates: CertificateLedger;
  logger: Logger;
}

/** The configured link, not listening yet (the orchestrator registers its handlers first). */
export async function createDeviceLink(config: Config, deps: DeviceLinkDeps): Promise<DeviceLink> {
  const logger = deps.logger.child({ component: 'mqtt' });
  const { broker } = config;
  if (broker.mode === 'embedded') {
    return createBroker({
      port: config.mqttPort, host: config.host, tls: deps.tls,
      plaintextPort: config.mqttPlaintextPort ?? undefined, maxPacketBytes: config.mqttMaxPacketBytes, connectTimeoutMs: config.mqttConnectTimeoutMs, logger,
      ...(config.mqttMaxConnections !== null ? { maxConnections: config.mqttMaxConnections } : {}),
      isRevoked: deps.certificates.isRevoked,
    });
  }
  const service = await ensureServiceCertificate(deps.pki, deps.certificates, broker.serviceId, logger);
  if (broker.configDir) await keepBrokerConfigCurrent(broker.configDir, deps, logger);
  // Loaded only here: mqtt.js is not part of an embedded start (bench/README.md, "Start-up and memory").
  const { connectExternalBroker } = await import('./external-broker.js');
  return connectExternalBroker({
    url: broker.url,
    ca: await readFile(broker.caFile ?? deps.pki.caCert, 'utf8'),
    cert: service.certPem, key: service.keyPem, clientId: broker.serviceId,
    sessionExpirySeconds: broker.sessionExpirySeconds, logger,
  });
}

/** Renewed this long before it expires. */
const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;

/**
 * mqota's own client certificate for the external broker (role service), kept in the certs folder
 * as service-{id}.crt/.key. Issued through the ledger (so it can be revoked and the broker's ACL
 * names it) when missing, revoked, unknown to the ledger, near its end, or from another device CA.
 */
export async function ensureServiceCertificate(pki: PkiPaths, ledger: CertificateLedger, serviceId: string, logger: Logger): Promise<{ certPem: string; keyPem: string }> {
  const certFile = path.join(pki.dir, `service-${serviceId}.crt`);
  const keyFile = path.join(pki.dir, `service-${serviceId}.key`);
  const existing = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]).catch(() => null);
  if (existing) {
    const [certPem, keyPem] = existing;
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(await readFile(pki.deviceCaCert, 'utf8'));
    const serial = normalizeSerial(cert.serialNumber) ?? '';
    // Only one the ledger knows: the broker's ACL names the service certificates on record.
    const recorded = (await ledger.list(serviceId, 'service')).some((c) => c.serial === serial && !c.revokedAt);
    if (recorded && cert.checkIssued(ca) && new Date(cert.validTo).getTime() - Date.now() > RENEW_BEFORE_MS) return { certPem, keyPem };
  }
  const issued = await ledger.issue(serviceId, 'service');
  await atomicWrite(keyFile, issued.keyPem, 0o600);
  await atomicWrite(certFile, issued.certPem, 0o644);
  logger.info({ serviceId, serial: issued.serial, certFile }, 'service certificate issued for the external broker');
  return issued;
}

/**
 * Rewrites the broker files `mqota broker config` put in `dir` now and after every certificate
 * issued or revoked, one rewrite at a time (the latest state wins).
 */
async function keepBrokerConfigCurrent(dir: string, deps: DeviceLinkDeps, logger: Logger): Promise<void> {
  const request = await readBrokerConfigRequest(dir);
  if (!request) throw new Error(`MQOTA_BROKER_CONFIG_DIR=${dir} was not written by \`mqota broker config\` (no mqota-broker.json there)`);
  const write = async () => writeBrokerConfig(dir, request, deps.pki, await certificateState(deps.certificates));
  await write();
  let running: Promise<void> | null = null;
  let again = false;
  const rewrite = (): void => {
    if (running) { again = true; return; }
    running = write().then(() => logger.info({ dir, kind: request.kind }, 'broker configuration rewritten (ACL and CRL)'),
      (err: Error) => logger.error({ err, dir }, 'broker configuration not rewritten'))
      .finally(() => {
        running = null;
        if (again) { again = false; rewrite(); }
      });
  };
  deps.certificates.onChange(rewrite);
}
