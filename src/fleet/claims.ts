// Provisioning by claim (docs/provisioning.md): a batch of devices leaves the factory with one
// shared claim certificate (role `claim`, valid until the batch expires). On first boot each
// device makes its own key, connects with the claim certificate as `{claimId}:{deviceId}` and sends
// a CSR on `provision/{claimId}/request`; the answer comes on `provision/{claimId}/response/{deviceId}`:
//   {"status":"issued","deviceId":…,"certPem":…}   reconnect as the device with it
//   {"status":"pending"}                            an operator must approve; ask again later
//   {"status":"refused","error":…,"reason":…}       error: claim-expired | claim-exhausted |
//                                                   device-id-taken | invalid-request | unknown-claim
// The batch's expiry and maximum count are enforced here (and the expiry by the certificate's
// own notAfter); a device id that exists, or that another key asked for, is refused. A repeated
// request with the same key gets the same answer, so a device that lost the answer just asks again.
import { randomBytes, X509Certificate } from 'node:crypto';
import { checkCsr, CsrError } from '../../certs/csr.js';
import { normalizeSerial } from '../../certs/identity.js';
import type { CertificateLedger } from '../auth/certificate-ledger.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { provisionTopics } from '../topics.js';
import { DeviceProvisioning, ProvisioningError } from './device-provisioning.js';

export const CLAIM_REFUSALS = ['claim-expired', 'claim-exhausted', 'device-id-taken', 'invalid-request', 'unknown-claim', 'refused-by-operator'] as const;
export type ClaimRefusal = (typeof CLAIM_REFUSALS)[number];

export const PROVISION_REQUEST_STATES = ['pending', 'issued', 'refused'] as const;
export type ProvisionRequestState = (typeof PROVISION_REQUEST_STATES)[number];

export type ClaimAnswer =
  | { status: 'issued'; deviceId: string; certPem: string }
  | { status: 'pending'; deviceId: string }
  | { status: 'refused'; deviceId: string; error: ClaimRefusal; reason: string };

export interface ClaimBatchView {
  id: string; serial: string; type: string | null; maxDevices: number; issued: number; expiresAt: Date;
  requireApproval: boolean; createdAt: Date; createdBy: string;
}

export interface ProvisionRequestView {
  deviceId: string; claimId: string; state: string; certSerial: string | null; reason: string | null;
  createdAt: Date; decidedAt: Date | null; decidedBy: string | null;
}

export class ClaimError extends Error {
  constructor(readonly status: 400 | 404 | 409, message: string) { super(message); }
}

/** Longest a claim may live: a claim certificate is a shared secret, so it should not outlive its batch by much. */
export const MAX_CLAIM_DAYS = 366;
export const MAX_CLAIM_DEVICES = 100_000;

const REQUEST_SELECT = { deviceId: true, claimId: true, state: true, certSerial: true, reason: true, createdAt: true, decidedAt: true, decidedBy: true } as const;

export class ClaimService {
  constructor(private readonly deps: {
    prisma: PrismaClient;
    certificates: CertificateLedger;
    provisioning: DeviceProvisioning;
    /** Publishes as the server (QoS 1). */
    publish: (topic: string, payload: string) => Promise<void>;
    brokerUrl: () => string;
    logger: Logger;
    now?: () => Date;
  }) {}

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** A new batch and its claim certificate (returned once; mqota keeps no key). */
  async create(q: { maxDevices: number; expiresAt: Date; type?: string | null; requireApproval?: boolean; actor: string }) {
    const now = this.now();
    if (!(q.expiresAt > now)) throw new ClaimError(400, `expiresAt ${q.expiresAt.toISOString()} is not in the future`);
    if (q.expiresAt.getTime() - now.getTime() > MAX_CLAIM_DAYS * 86_400_000) throw new ClaimError(400, `a claim lives at most ${MAX_CLAIM_DAYS} days`);
    if (!Number.isInteger(q.maxDevices) || q.maxDevices < 1 || q.maxDevices > MAX_CLAIM_DEVICES) throw new ClaimError(400, `maxDevices must be 1-${MAX_CLAIM_DEVICES}`);
    const id = `claim-${randomBytes(6).toString('hex')}`;
    const issued = await this.deps.certificates.issue(id, 'claim', { notAfter: q.expiresAt });
    const claim = await this.deps.prisma.claimBatch.create({
      data: {
        id, serial: normalizeSerial(issued.serial)!, type: q.type ?? null, maxDevices: q.maxDevices,
        expiresAt: q.expiresAt, requireApproval: q.requireApproval ?? false, createdBy: q.actor,
      },
    });
    this.deps.logger.info({ claimId: id, maxDevices: q.maxDevices, expiresAt: q.expiresAt, requireApproval: claim.requireApproval }, 'claim created');
    return {
      claim,
      bundle: {
        claimId: id, type: claim.type, brokerUrl: this.deps.brokerUrl(), certPem: issued.certPem, keyPem: issued.keyPem!, caPem: issued.caPem,
        fingerprint: issued.fingerprint, expiresAt: q.expiresAt, maxDevices: q.maxDevices,
        ...this.deps.provisioning.trust(),
      },
    };
  }

  listClaims(): Promise<ClaimBatchView[]> {
    return this.deps.prisma.claimBatch.findMany({ orderBy: { createdAt: 'desc' } });
  }

  async revokeClaim(id: string, actor: string) {
    const claim = await this.deps.prisma.claimBatch.findUnique({ where: { id } });
    if (!claim) throw new ClaimError(404, `claim ${id} not found`);
    return this.deps.certificates.revoke({ commonName: id, role: 'claim', actor, reason: 'claim revoked' });
  }

  listRequests(q: { claimId?: string; state?: ProvisionRequestState }): Promise<ProvisionRequestView[]> {
    return this.deps.prisma.provisionRequest.findMany({
      where: { ...(q.claimId ? { claimId: q.claimId } : {}), ...(q.state ? { state: q.state } : {}) },
      orderBy: { createdAt: 'asc' }, select: REQUEST_SELECT, take: 1000,
    });
  }

  /**
   * A device's request, from the broker (before it acknowledges it). Always answers on the
   * device's response topic; throws only when the answer could not be decided (the database), so
   * the request stays unacknowledged and the device sends it again.
   */
  async handleRequest(r: { claimId: string; deviceId: string; serial: string; payload: Buffer }): Promise<void> {
    const answer = await this.decide(r);
    const log = { claimId: r.claimId, deviceId: r.deviceId, status: answer.status, ...(answer.status === 'refused' ? { error: answer.error, reason: answer.reason } : {}) };
    if (answer.status === 'refused') this.deps.logger.warn(log, 'provisioning request refused');
    else this.deps.logger.info(log, `provisioning request ${answer.status}`);
    await this.deps.publish(provisionTopics.response(r.claimId, r.deviceId), JSON.stringify(answer));
  }

  /** An operator lets a pending request through: the certificate is issued and sent (a device asking again gets it too). */
  async approve(deviceId: string, actor: string): Promise<ProvisionRequestView> {
    const request = await this.deps.prisma.provisionRequest.findUnique({ where: { deviceId }, include: { claim: true } });
    if (!request) throw new ClaimError(404, `no provisioning request for device ${deviceId}`);
    if (request.state !== 'pending') throw new ClaimError(409, `the request of ${deviceId} is ${request.state}, not pending`);
    if (!(request.claim.expiresAt > this.now())) throw new ClaimError(409, `claim ${request.claimId} expired at ${request.claim.expiresAt.toISOString()}`);
    const answer = await this.issue(request.claim, deviceId, request.csrPem, request.keyId, actor);
    if (answer.status === 'refused') throw new ClaimError(409, answer.reason);
    await this.deps.publish(provisionTopics.response(request.claimId, deviceId), JSON.stringify(answer)).catch((err) =>
      this.deps.logger.warn({ err, deviceId }, 'approved certificate not sent now; the device gets it when it asks again'));
    return (await this.deps.prisma.provisionRequest.findUnique({ where: { deviceId }, select: REQUEST_SELECT }))!;
  }

  async refuse(deviceId: string, actor: string, reason?: string): Promise<ProvisionRequestView> {
    const updated = await this.deps.prisma.provisionRequest.updateMany({
      where: { deviceId, state: 'pending' }, data: { state: 'refused', reason: reason ?? 'refused by an operator', decidedAt: this.now(), decidedBy: actor },
    });
    const request = await this.deps.prisma.provisionRequest.findUnique({ where: { deviceId }, select: REQUEST_SELECT });
    if (!request) throw new ClaimError(404, `no provisioning request for device ${deviceId}`);
    if (!updated.count) throw new ClaimError(409, `the request of ${deviceId} is ${request.state}, not pending`);
    const answer: ClaimAnswer = { status: 'refused', deviceId, error: 'refused-by-operator', reason: request.reason ?? 'refused' };
    await this.deps.publish(provisionTopics.response(request.claimId, deviceId), JSON.stringify(answer)).catch(() => undefined);
    return request;
  }

  private async decide(r: { claimId: string; deviceId: string; serial: string; payload: Buffer }): Promise<ClaimAnswer> {
    const refused = (error: ClaimRefusal, reason: string): ClaimAnswer => ({ status: 'refused', deviceId: r.deviceId, error, reason });
    const claim = await this.deps.prisma.claimBatch.findUnique({ where: { id: r.claimId } });
    if (!claim || claim.serial !== r.serial) return refused('unknown-claim', `claim ${r.claimId} is not known for this certificate`);
    if (!(claim.expiresAt > this.now())) return refused('claim-expired', `claim ${claim.id} expired at ${claim.expiresAt.toISOString()}`);

    let csrPem: unknown;
    try {
      csrPem = (JSON.parse(r.payload.toString('utf8')) as { csr?: unknown }).csr;
    } catch {
      return refused('invalid-request', 'the request is not JSON {"csr": "<PEM>"}');
    }
    if (typeof csrPem !== 'string') return refused('invalid-request', 'the request has no "csr" string');
    let keyId: string;
    try {
      keyId = (await checkCsr(csrPem, r.deviceId)).keyId;
    } catch (err) {
      if (err instanceof CsrError) return refused('invalid-request', err.message);
      throw err;
    }

    const previous = await this.deps.prisma.provisionRequest.findUnique({ where: { deviceId: r.deviceId } });
    if (previous) {
      if (previous.claimId !== claim.id || previous.keyId !== keyId) return refused('device-id-taken', `device id ${r.deviceId} was already asked for with another key`);
      // The same device asking again (it lost the answer, or waits for approval): the same answer.
      if (previous.state === 'issued') return { status: 'issued', deviceId: r.deviceId, certPem: previous.certPem! };
      if (previous.state === 'pending') return { status: 'pending', deviceId: r.deviceId };
      return refused('refused-by-operator', previous.reason ?? 'refused');
    }
    const taken = await this.deps.provisioning.idTaken(r.deviceId);
    if (taken) return refused('device-id-taken', taken);

    if (claim.requireApproval) {
      try {
        await this.deps.prisma.provisionRequest.create({ data: { deviceId: r.deviceId, claimId: claim.id, keyId, csrPem, state: 'pending' } });
      } catch (err) {
        if ((err as { code?: string }).code === 'P2002') return this.decide(r); // a concurrent request of the same id was first
        throw err;
      }
      return { status: 'pending', deviceId: r.deviceId };
    }
    return this.issue(claim, r.deviceId, csrPem, keyId, null);
  }

  /** Takes one of the claim's devices (atomically: never more than maxDevices), issues the certificate and records the request. */
  private async issue(claim: { id: string; type: string | null; maxDevices: number }, deviceId: string, csrPem: string, keyId: string, actor: string | null): Promise<ClaimAnswer> {
    const refused = (error: ClaimRefusal, reason: string): ClaimAnswer => ({ status: 'refused', deviceId, error, reason });
    const taken = await this.deps.prisma.claimBatch.updateMany({ where: { id: claim.id, issued: { lt: claim.maxDevices } }, data: { issued: { increment: 1 } } });
    if (!taken.count) return refused('claim-exhausted', `claim ${claim.id} has issued all of its ${claim.maxDevices} device certificates`);
    let bundle;
    try {
      bundle = await this.deps.provisioning.provision({ id: deviceId, type: claim.type, csrPem });
    } catch (err) {
      await this.deps.prisma.claimBatch.update({ where: { id: claim.id }, data: { issued: { decrement: 1 } } });
      if (err instanceof ProvisioningError) return refused(err.status === 409 ? 'device-id-taken' : 'invalid-request', err.message);
      throw err;
    }
    const serial = normalizeSerial(new X509Certificate(bundle.certPem).serialNumber);
    const decided = { state: 'issued', certPem: bundle.certPem, certSerial: serial, decidedAt: this.now(), decidedBy: actor ?? 'claim' };
    await this.deps.prisma.provisionRequest.upsert({
      where: { deviceId }, update: decided, create: { deviceId, claimId: claim.id, keyId, csrPem, ...decided },
    });
    return { status: 'issued', deviceId, certPem: bundle.certPem };
  }
}
