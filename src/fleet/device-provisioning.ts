// Making devices known: a device certificate (for a key mqota makes, or for the device's own key
// from a CSR), recorded in the certificate ledger, and the device registered. One device
// (`mqota device add`), a whole batch at once (`mqota device import`: all or nothing), or a
// device that claimed its identity with a batch's claim certificate (src/fleet/claims.ts).
import type * as x509 from '@peculiar/x509';
import { checkCsr, CsrError } from '../../certs/csr.js';
import { DEVICE_ID_PATTERN } from '../../certs/identity.js';
import type { CertificateLedger } from '../auth/certificate-ledger.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { DeviceRegistry } from './device-registry.js';

/** A device certificate and what a device needs with it. `keyPem` is null when the device made its own key. */
export interface DeviceBundle {
  deviceId: string;
  type: string | null;
  brokerUrl: string;
  certPem: string;
  keyPem: string | null;
  caPem: string;
  fingerprint: string;
  notAfter: Date;
  commandKeyPem: string | null;
  imageKeyDigests: string[];
}

/**
 * What a device is told to trust besides the device CA: the public command key (null when commands
 * are not signed) and the digests of the active image signing keys.
 */
export interface DeviceTrust {
  commandKeyPem: string | null;
  imageKeyDigests: string[];
}

/** Why a provisioning request is refused: `status` 400 for bad input, 409 for an id already in use. */
export class ProvisioningError extends Error {
  constructor(readonly status: 400 | 409, message: string) { super(message); }
}

export interface DeviceRequest {
  id: string;
  type?: string | null;
  tags?: string[];
  /** PEM CSR of the device's own key; without it mqota makes the key and returns it once. */
  csrPem?: string;
}

/** At most this many devices per import request. */
export const MAX_IMPORT_DEVICES = 1000;

export class DeviceProvisioning {
  /** Ids being provisioned right now, so two requests for one id cannot both pass the check. */
  private readonly reserved = new Set<string>();

  constructor(private readonly deps: {
    registry: DeviceRegistry;
    certificates: CertificateLedger;
    prisma: PrismaClient;
    brokerUrl: () => string;
    trust: () => DeviceTrust;
  }) {}

  /** The trust anchors every bundle carries (a device bundle, a claim bundle). */
  trust(): DeviceTrust {
    return this.deps.trust();
  }

  /** Why `id` cannot be a new device, or null. */
  async idTaken(id: string): Promise<string | null> {
    if (this.deps.registry.get(id) || this.reserved.has(id)) return `device ${id} already exists`;
    if (await this.deps.prisma.operatorCertificate.findUnique({ where: { name: id }, select: { name: true } })) {
      return `${id} is the name of an operator certificate; a device needs another id`;
    }
    return null;
  }

  /** One new device. */
  async provision(request: DeviceRequest): Promise<DeviceBundle> {
    const [bundle] = await this.importAll([request]);
    return bundle!;
  }

  /** A new certificate for a known device: rotation, or a replacement after revocation; for its own key when `csrPem` is given. */
  async reissue(id: string, csrPem?: string): Promise<DeviceBundle> {
    const device = this.deps.registry.get(id);
    if (!device) throw new ProvisioningError(400, `device ${id} does not exist`);
    const publicKey = csrPem === undefined ? undefined : await this.csrKey(csrPem, id, '');
    const [issued] = await this.deps.certificates.issueAll([{ commonName: id, role: 'device', publicKey }]);
    return this.bundle(id, device.type, issued!);
  }

  /**
   * Every device of `requests`, or none: every row is checked first (a bad one is named by its
   * index), the certificates are signed and recorded in one write, then the devices are
   * registered; if that fails, the certificates are discarded again.
   */
  async importAll(requests: DeviceRequest[]): Promise<DeviceBundle[]> {
    if (requests.length > MAX_IMPORT_DEVICES) throw new ProvisioningError(400, `at most ${MAX_IMPORT_DEVICES} devices per request`);
    const where = (i: number) => (requests.length > 1 ? `devices[${i}] (${requests[i]!.id}): ` : '');
    const seen = new Map<string, number>();
    requests.forEach((r, i) => {
      if (!DEVICE_ID_PATTERN.test(r.id)) throw new ProvisioningError(400, `${where(i)}invalid device id`);
      const first = seen.get(r.id);
      if (first !== undefined) throw new ProvisioningError(400, `${where(i)}the same id as devices[${first}]`);
      seen.set(r.id, i);
    });
    for (const [i, r] of requests.entries()) {
      const taken = await this.idTaken(r.id);
      if (taken) throw new ProvisioningError(409, `${where(i)}${taken}`);
    }
    const keys: (x509.PublicKey | undefined)[] = [];
    for (const [i, r] of requests.entries()) keys.push(r.csrPem === undefined ? undefined : await this.csrKey(r.csrPem, r.id, where(i)));

    for (const r of requests) this.reserved.add(r.id);
    try {
      const issued = await this.deps.certificates.issueAll(requests.map((r, i) => ({ commonName: r.id, role: 'device' as const, publicKey: keys[i] })));
      try {
        await Promise.all(requests.map((r) => this.deps.registry.register(r.id, r.type ?? null)));
        for (const r of requests) if (r.tags?.length) await this.deps.registry.setLabels(r.id, { tags: r.tags });
      } catch (err) {
        await this.deps.certificates.discard(issued.map((c, i) => ({ commonName: requests[i]!.id, role: 'device' as const, serial: c.serial })));
        throw err;
      }
      return issued.map((c, i) => this.bundle(requests[i]!.id, requests[i]!.type ?? null, c));
    } finally {
      for (const r of requests) this.reserved.delete(r.id);
    }
  }

  private async csrKey(csrPem: string, id: string, where: string): Promise<x509.PublicKey> {
    try {
      return (await checkCsr(csrPem, id)).publicKey;
    } catch (err) {
      if (err instanceof CsrError) throw new ProvisioningError(400, `${where}${err.message}`);
      throw err;
    }
  }

  private bundle(id: string, type: string | null, c: { certPem: string; keyPem: string | null; caPem: string; fingerprint: string; notAfter: Date }): DeviceBundle {
    return {
      deviceId: id, type, brokerUrl: this.deps.brokerUrl(),
      certPem: c.certPem, keyPem: c.keyPem, caPem: c.caPem, fingerprint: c.fingerprint, notAfter: c.notAfter,
      ...this.deps.trust(),
    };
  }
}
