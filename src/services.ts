// What the HTTP routes and the CLI-facing API need, assembled once by src/mqota.ts.
import type { PkiPaths } from '../certs/pki.js';
import type { CertificateLedger } from './auth/certificate-ledger.js';
import type { Cluster } from './cluster/cluster.js';
import type { SharedCaches } from './cluster/shared-caches.js';
import type { Config } from './config.js';
import type { Database } from './db/database.js';
import type { DeviceLink } from './device-link/index.js';
import type { FleetRepository } from './db/fleet-repository.js';
import type { FirmwareCatalog } from './firmware/catalog.js';
import type { SigningKeys } from './firmware/signing-keys.js';
import type { DeviceRegistry } from './fleet/device-registry.js';
import type { DeviceProvisioning } from './fleet/device-provisioning.js';
import type { ClaimService } from './fleet/claims.js';
import type { FleetEvents } from './events.js';
import type { Logger } from './logger.js';
import type { DeviceMessageRejections } from './protocol/rejections.js';
import type { RolloutLifecycle } from './rollouts/lifecycle.js';
import type { UpdateEngine } from './rollouts/update-engine.js';
import type { WebhookService } from './webhooks/index.js';
import type { FleetHistory } from './monitoring/fleet-history.js';

export interface Links {
  /** HTTPS link of an image, as devices download it. */
  imageUrl(sha256: string): string;
  /** mqtts:// URL devices connect to. */
  brokerUrl(): string;
}

export interface Services {
  config: Config;
  logger: Logger;
  db: Database;
  /** Devices, rollouts and attempts in the database, with the group commit. */
  repository: FleetRepository;
  catalog: FirmwareCatalog;
  registry: DeviceRegistry;
  /** Device messages in, commands out. */
  engine: UpdateEngine;
  /** Rollouts: creation, operator commands, waves, thresholds, the read model of active ones. */
  rollouts: RolloutLifecycle;
  rejections: DeviceMessageRejections;
  events: FleetEvents;
  /** The embedded broker or the connection to an external one. */
  broker: DeviceLink;
  pki: PkiPaths;
  certificates: CertificateLedger;
  /** New devices and their certificates (one, a CSR, an import). */
  provisioning: DeviceProvisioning;
  /** Claim batches and the requests of devices that claim their identity. */
  claims: ClaimService;
  adminToken: string;
  links: Links;
  /** Webhook receivers and their delivery logs. */
  webhooks: WebhookService;
  /** Rollout timelines and sampled versions per type, for the dashboard's charts. */
  history: FleetHistory;
  /** Public keys that sign firmware images (Secure Boot v2). */
  signingKeys: SigningKeys;
  /** Public half of the command key (certs/command-key.ts), for device bundles; null when commands are not signed. */
  commandKeyPem: string | null;
  /** In-memory tables kept equal across instances. */
  sharedCaches: SharedCaches;
  /** The other instances over the same PostgreSQL; null on PGlite. */
  cluster: Cluster | null;
}
