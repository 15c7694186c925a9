// The client-certificate ledger: every certificate mqota issued (devices and operators) and
// every one revoked. The device CA still vouches for a revoked certificate, so the TLS handshake
// succeeds; the broker asks `isRevoked` at CONNECT and refuses it. The revoked serials are held
// in memory for that (CONNECT must not wait on a query); the table is the truth at start-up.
import { normalizeSerial, type ClientRole } from '../../certs/identity.js';
import type * as x509 from '@peculiar/x509';
import { issueClientCertificate, type IssuedClientCertificate, type PkiPaths } from '../../certs/pki.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { SharedCaches } from '../cluster/shared-caches.js';

export interface CertificateRecord {
  serial: string;
  commonName: string;
  role: string;
  fingerprint: string | null;
  notAfter: Date | null;
  createdAt: Date;
  revokedAt: Date | null;
  revokedBy: string | null;
  reason: string | null;
}

export class InvalidSerialError extends Error {}

/** Ends a live connection made with this certificate; says whether there was one. */
export type Disconnect = (commonName: string, serial: string) => boolean;

export class CertificateLedger {
  private readonly revoked = new Set<string>();
  private disconnect: Disconnect = () => false;
  private readonly changeListeners: (() => void)[] = [];

  constructor(private readonly prisma: PrismaClient, private readonly pki: PkiPaths, private readonly shared?: SharedCaches) {
    shared?.register('certificates', () => this.reloadRevoked());
  }

  /** Another instance revoked certificates: refuse them here too, and cut their connections. */
  private async reloadRevoked(): Promise<void> {
    const before = new Set(this.revoked);
    const rows = await this.prisma.clientCertificate.findMany({ where: { revokedAt: { not: null } }, select: { serial: true, commonName: true } });
    for (const { serial, commonName } of rows) {
      this.revoked.add(serial);
      if (!before.has(serial)) this.disconnect(commonName, serial);
    }
    this.changed();
  }

  /** Who cuts off live connections when a certificate is revoked (the broker, once it runs). */
  onRevoke(disconnect: Disconnect): void {
    this.disconnect = disconnect;
  }

  /** Called after every issue and revocation (an external broker's ACL and CRL are rewritten from it). */
  onChange(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  /** Every revoked serial, normalized. */
  revokedSerials(): string[] {
    return [...this.revoked];
  }

  /** The names of one role holding at least one certificate not revoked, sorted. */
  async holders(role: ClientRole): Promise<string[]> {
    const rows = await this.prisma.clientCertificate.findMany({ where: { role, revokedAt: null }, select: { commonName: true }, distinct: ['commonName'] });
    return rows.map((r) => r.commonName).sort();
  }

  private changed(): void {
    for (const listener of this.changeListeners) listener();
  }

  async load(): Promise<void> {
    const rows = await this.prisma.clientCertificate.findMany({ where: { revokedAt: { not: null } }, select: { serial: true } });
    for (const { serial } of rows) this.revoked.add(serial);
  }

  /** For the broker, at every CONNECT: `serial` as normalizeSerial spells it. */
  isRevoked = (serial: string): boolean => this.revoked.has(serial);

  /**
   * Issues a client certificate (CN = commonName, OU = role) from the device CA and records it, so
   * it can be revoked. With `publicKey` (a checked CSR's) no key is made: `keyPem` is null.
   */
  async issue(commonName: string, role: ClientRole): Promise<IssuedClientCertificate & { keyPem: string }>;
  async issue(commonName: string, role: ClientRole, opts: { publicKey?: x509.PublicKey; notAfter?: Date }): Promise<IssuedClientCertificate>;
  async issue(commonName: string, role: ClientRole, opts: { publicKey?: x509.PublicKey; notAfter?: Date } = {}): Promise<IssuedClientCertificate> {
    const [issued] = await this.issueAll([{ commonName, role, ...opts }]);
    return issued!;
  }

  /**
   * Issues several certificates and records them in one write: all of them or, if the write
   * fails, none (the certificates signed in memory are dropped unseen).
   */
  async issueAll(requests: { commonName: string; role: ClientRole; publicKey?: x509.PublicKey; notAfter?: Date }[]): Promise<IssuedClientCertificate[]> {
    const issued: IssuedClientCertificate[] = [];
    for (const r of requests) issued.push(await issueClientCertificate(this.pki, { id: r.commonName, role: r.role, publicKey: r.publicKey, notAfter: r.notAfter }));
    await this.prisma.clientCertificate.createMany({
      data: issued.map((c, i) => ({ serial: this.serial(c.serial), commonName: requests[i]!.commonName, role: requests[i]!.role, fingerprint: c.fingerprint, notAfter: c.notAfter })),
    });
    this.changed();
    await this.shared?.changed('certificates');
    return issued;
  }

  /** Forgets certificates issued by issueAll whose bundles were never handed out (an import undone). Only unrevoked ones of this CN and role. */
  async discard(certs: { commonName: string; role: ClientRole; serial: string }[]): Promise<void> {
    await this.prisma.clientCertificate.deleteMany({
      where: { OR: certs.map((c) => ({ serial: this.serial(c.serial), commonName: c.commonName, role: c.role, revokedAt: null })) },
    });
  }

  /** The certificates of one device or operator, newest first. */
  list(commonName: string, role: ClientRole): Promise<CertificateRecord[]> {
    return this.prisma.clientCertificate.findMany({ where: { commonName, role }, orderBy: { createdAt: 'desc' } });
  }

  /**
   * Revokes one certificate by serial (recorded if mqota did not issue it, e.g. from your own
   * CA, or issued before the ledger existed), or every certificate of this CN and role that is not
   * revoked yet; a live connection made with one of them is closed. Returns the certificates
   * revoked by this call. A serial already revoked, or belonging to another CN, is not touched.
   */
  async revoke(q: { commonName: string; role: ClientRole; serial?: string; actor: string; reason?: string }): Promise<{ revoked: CertificateRecord[]; disconnected: boolean }> {
    const now = new Date();
    const mark = { revokedAt: now, revokedBy: q.actor, reason: q.reason ?? null };
    let revoked: CertificateRecord[];
    if (q.serial === undefined) {
      revoked = await this.prisma.$transaction(async (tx) => {
        const open = await tx.clientCertificate.findMany({ where: { commonName: q.commonName, role: q.role, revokedAt: null } });
        await tx.clientCertificate.updateMany({ where: { serial: { in: open.map((c) => c.serial) }, revokedAt: null }, data: mark });
        return open.map((c) => ({ ...c, ...mark }));
      });
    } else {
      const serial = this.serial(q.serial);
      revoked = await this.prisma.$transaction(async (tx) => {
        const known = await tx.clientCertificate.findUnique({ where: { serial } });
        if (known && (known.revokedAt || known.commonName !== q.commonName || known.role !== q.role)) return [];
        const row = known
          ? await tx.clientCertificate.update({ where: { serial }, data: mark })
          : await tx.clientCertificate.create({ data: { serial, commonName: q.commonName, role: q.role, ...mark } });
        return [row];
      });
    }
    let disconnected = false;
    for (const c of revoked) {
      this.revoked.add(c.serial);
      if (this.disconnect(c.commonName, c.serial)) disconnected = true;
    }
    if (revoked.length) {
      this.changed();
      await this.shared?.changed('certificates');
    }
    return { revoked, disconnected };
  }

  private serial(serial: string): string {
    const normalized = normalizeSerial(serial);
    if (!normalized) throw new InvalidSerialError(`serial ${JSON.stringify(serial)} is not a certificate serial number (1-20 bytes of hex)`);
    return normalized;
  }
}
