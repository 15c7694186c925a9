// /api/claims and /api/provision-requests: provisioning by claim (src/fleet/claims.ts). Creating
// or revoking a claim is admin, like revoking certificates: it decides who may become a device.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ClaimError } from '../../../fleet/claims.js';
import { HttpError } from '../../errors.js';
import {
  ClaimCreateBody, ClaimCreated, ClaimParams, ClaimView, DeviceParams, errors, ProvisionRefuseBody, ProvisionRequestQuery, ProvisionRequestView, Revoked,
} from '../../schemas/index.js';

function claimError(err: unknown): never {
  throw err instanceof ClaimError ? new HttpError(err.status, err.message) : err;
}

export async function provisioningRoutes(fastify: FastifyInstance): Promise<void> {
  const { claims } = fastify.services;
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.post('/claims', {
    config: { role: 'admin' },
    schema: {
      tags: ['provisioning'], summary: 'Create a claim batch',
      description: 'A claim certificate shared by up to `maxDevices` new devices until `expiresAt`: with it a device may only send a CSR for the device id it asks for and receive its certificate (docs/provisioning.md). The claim key is returned once.',
      body: ClaimCreateBody, response: { 201: ClaimCreated, ...errors(400) },
    },
  }, async (req, reply) => {
    const created = await claims.create({ ...req.body, expiresAt: new Date(req.body.expiresAt), actor: req.principal.name }).catch(claimError);
    return reply.code(201).send(created);
  });

  app.get('/claims', {
    schema: { tags: ['provisioning'], summary: 'List claim batches', response: { 200: Type.Array(ClaimView) } },
  }, async () => claims.listClaims());

  app.post('/claims/:id/revoke', {
    config: { role: 'admin' },
    schema: {
      tags: ['provisioning'], summary: 'Revoke a claim certificate',
      description: 'No device of the batch can claim from now on; connections made with it are closed. Device certificates already issued stay valid.',
      params: ClaimParams, response: { 200: Revoked, ...errors(404, 409) },
    },
  }, async (req) => {
    const result = await claims.revokeClaim(req.params.id, req.principal.name).catch(claimError);
    if (!result.revoked.length) throw new HttpError(409, `claim ${req.params.id} is already revoked`);
    return result;
  });

  app.get('/provision-requests', {
    schema: {
      tags: ['provisioning'], summary: 'List provisioning requests', description: 'Oldest first, at most 1000.',
      querystring: ProvisionRequestQuery, response: { 200: Type.Array(ProvisionRequestView) },
    },
  }, async (req) => claims.listRequests(req.query));

  app.post('/provision-requests/:id/approve', {
    schema: {
      tags: ['provisioning'], summary: 'Approve a pending request',
      description: 'Issues the device certificate (counted against the claim\'s maximum) and sends it to the device; a device that is offline gets it when it asks again.',
      params: DeviceParams, response: { 200: ProvisionRequestView, ...errors(404, 409) },
    },
  }, async (req) => {
    const request = await claims.approve(req.params.id, req.principal.name).catch(claimError);
    req.log.info({ deviceId: request.deviceId, claimId: request.claimId, actor: req.principal.name }, 'provisioning request approved');
    return request;
  });

  app.post('/provision-requests/:id/refuse', {
    schema: {
      tags: ['provisioning'], summary: 'Refuse a pending request',
      params: DeviceParams, body: ProvisionRefuseBody, response: { 200: ProvisionRequestView, ...errors(404, 409) },
    },
  }, async (req) => {
    const request = await claims.refuse(req.params.id, req.principal.name, req.body?.reason).catch(claimError);
    req.log.warn({ deviceId: request.deviceId, claimId: request.claimId, actor: req.principal.name }, 'provisioning request refused');
    return request;
  });
}
