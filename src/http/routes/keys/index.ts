// /api/keys: the public keys that sign firmware images. Adding and retiring are admin actions
// (a key decides what the fleet may install) and land in the audit log like every change.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { SigningKeyError } from '../../../firmware/signing-keys.js';
import { HttpError } from '../../errors.js';
import { errors, IdParams, SigningKeyCreateBody, SigningKeyRetireBody, SigningKeyView } from '../../schemas/index.js';

export async function keyRoutes(fastify: FastifyInstance): Promise<void> {
  const { services } = fastify;
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const keys = services.signingKeys;
  const translate = (err: unknown) => (err instanceof SigningKeyError ? new HttpError(err.status, err.message) : err);

  app.get('/keys', {
    schema: { tags: ['keys'], summary: 'List firmware signing keys', description: 'Oldest first, retired ones included.', response: { 200: Type.Array(SigningKeyView) } },
  }, async () => keys.list());

  app.post('/keys', {
    config: { role: 'admin' },
    schema: {
      tags: ['keys'], summary: 'Register a firmware signing key',
      description: 'An RSA-3072 or ECDSA P-256 public key whose Secure Boot v2 signatures uploads are checked against. Several may be active (a rotation).',
      body: SigningKeyCreateBody, response: { 201: SigningKeyView, ...errors(400, 409) },
    },
  }, async (req, reply) => {
    const key = await keys.add({ pem: req.body.publicKeyPem, name: req.body.name }).catch((err) => { throw translate(err); });
    req.log.info({ keyId: key.id, name: key.name, algorithm: key.algorithm, keyDigest: key.keyDigest }, 'signing key registered');
    return reply.code(201).send(key);
  });

  app.post('/keys/:id/retire', {
    config: { role: 'admin' },
    schema: {
      tags: ['keys'], summary: 'Retire a firmware signing key',
      description: 'Images it signed are no longer accepted for upload under MQOTA_REQUIRE_SIGNED_IMAGES, and new device bundles do not trust it. Final: a retired key cannot be added again.',
      params: IdParams, body: SigningKeyRetireBody, response: { 200: SigningKeyView, ...errors(404, 409) },
    },
  }, async (req) => {
    const key = await keys.retire(req.params.id, { actor: req.principal.name, reason: req.body.reason ?? null }).catch((err) => { throw translate(err); });
    req.log.warn({ keyId: key.id, name: key.name, keyDigest: key.keyDigest, by: key.retiredBy, reason: key.retireReason }, 'signing key retired');
    return key;
  });
}
