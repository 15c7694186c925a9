// /api/operators: client certificates for monitoring clients (OU=monitor), which may subscribe to
// the status topics and publish nothing (broker/acl.ts). Like device keys, the private key is
// returned once and never stored; the database keeps the name, fingerprint and serial, and the
// certificate ledger lets an admin revoke it (DELETE).
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { MONITOR_FILTERS } from '../../../topics.js';
import { HttpError } from '../../errors.js';
import { DeviceId, errors, OperatorCreateBody, OperatorIssued, OperatorView, Revoked } from '../../schemas/index.js';

const UNIQUE_VIOLATION = 'P2002';

export async function operatorRoutes(fastify: FastifyInstance): Promise<void> {
  const { services } = fastify;
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const prisma = services.db.prisma;

  // Admin, like API tokens: a certificate is a credential, and one that cannot be revoked before it expires.
  app.post('/operators', {
    config: { role: 'admin' },
    schema: {
      tags: ['monitoring'], summary: 'Issue an operator certificate',
      description: 'A client certificate (OU=monitor) for the MQTT status topics; the answer carries its key, shown this once. The name must not be a device id.',
      body: OperatorCreateBody, response: { 201: OperatorIssued, ...errors(400, 409) },
    },
  }, async (req, reply) => {
    const { name, role } = req.body;
    // One namespace for CNs: the CN is the MQTT client id, and a second connection with the same
    // client id takes over the first one's session [MQTT-3.1.4-2].
    if (services.registry.get(name)) throw new HttpError(409, `${name} is a device id; an operator needs another name`);
    if (await prisma.operatorCertificate.findUnique({ where: { name }, select: { name: true } })) throw new HttpError(409, `operator ${name} already exists`);
    const issued = await services.certificates.issue(name, role);
    const operator = await prisma.operatorCertificate.create({
      data: { name, role, fingerprint: issued.fingerprint, serial: issued.serial, notAfter: issued.notAfter },
    }).catch((err: { code?: string }) => {
      throw err.code === UNIQUE_VIOLATION ? new HttpError(409, `operator ${name} already exists`) : err;
    });
    req.log.info({ operator: name, role, fingerprint: issued.fingerprint, notAfter: issued.notAfter }, 'operator certificate issued');
    return reply.code(201).send({
      operator,
      bundle: {
        name, role, brokerUrl: services.links.brokerUrl(), topics: [...MONITOR_FILTERS],
        certPem: issued.certPem, keyPem: issued.keyPem, caPem: issued.caPem, fingerprint: issued.fingerprint, notAfter: issued.notAfter,
      },
    });
  });

  app.get('/operators', {
    schema: { tags: ['monitoring'], summary: 'List operator certificates', response: { 200: Type.Array(OperatorView) } },
  }, async () => prisma.operatorCertificate.findMany({ orderBy: { name: 'asc' } }));

  app.delete('/operators/:name', {
    config: { role: 'admin' },
    schema: {
      tags: ['monitoring'], summary: 'Revoke an operator certificate',
      description: 'The broker refuses it from now on and closes a live connection made with it; the name may be issued again.',
      params: Type.Object({ name: DeviceId }), response: { 200: Revoked, ...errors(404) },
    },
  }, async (req) => {
    const { name } = req.params;
    const operator = await prisma.operatorCertificate.findUnique({ where: { name } });
    if (!operator) throw new HttpError(404, `operator ${name} not found`);
    const result = await services.certificates.revoke({ commonName: name, role: 'monitor', actor: req.principal.name, reason: 'operator removed' });
    await prisma.operatorCertificate.delete({ where: { name } });
    req.log.warn({ operator: name, serials: result.revoked.map((c) => c.serial), disconnected: result.disconnected }, 'operator certificate revoked');
    return result;
  });
}
