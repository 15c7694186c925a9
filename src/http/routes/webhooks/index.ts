// /api/webhooks: event receivers (admin: mqota sends to the URL from inside its network) and their
// delivery logs. The signing secret is in the creation answer only.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { TargetRefused } from '../../../webhooks/index.js';
import type { WebhookRecord } from '../../../webhooks/store.js';
import { HttpError, notFound } from '../../errors.js';
import { DeliveryQuery, DeliveryView, errors, NoContent, WebhookCreateBody, WebhookCreated, WebhookParams, WebhookView } from '../../schemas/index.js';

const view = ({ secret: _secret, ...w }: WebhookRecord) => w;

export async function webhookRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { webhooks } = app.services;

  app.post('/webhooks', {
    config: { role: 'admin' },
    schema: {
      tags: ['webhooks'], summary: 'Add a webhook',
      description: 'Events are POSTed as JSON signed with HMAC-SHA256 (X-Mqota-Signature: t=<unix seconds>,v1=<hex of HMAC(secret, "<t>.<body>")>), retried with exponential back-off. See docs/webhooks.md.',
      body: WebhookCreateBody, response: { 201: WebhookCreated, ...errors(400) },
    },
  }, async (req, reply) => {
    const { secret, ...rest } = req.body;
    req.auditDetails = { ...rest, secret: secret ? 'given' : 'generated' }; // never the secret itself
    try {
      const created = await webhooks.create({ ...rest, secret, createdBy: req.principal.name });
      req.log.info({ webhookId: created.id, url: created.url, events: created.events }, 'webhook added');
      return reply.code(201).send(created);
    } catch (err) {
      if (err instanceof TargetRefused) throw new HttpError(400, `url: ${err.message}`);
      throw err;
    }
  });

  app.get('/webhooks', {
    schema: { tags: ['webhooks'], summary: 'List webhooks', description: 'Never the secrets.', response: { 200: Type.Array(WebhookView) } },
  }, async () => (await webhooks.list()).map(view));

  app.delete('/webhooks/:id', {
    config: { role: 'admin' },
    schema: { tags: ['webhooks'], summary: 'Remove a webhook', description: 'Its queued deliveries and its delivery log go with it.', params: WebhookParams, response: { 204: NoContent('removed'), ...errors(404) } },
  }, async (req, reply) => {
    if (!await webhooks.remove(req.params.id)) throw notFound(`webhook ${req.params.id}`);
    req.log.info({ webhookId: req.params.id }, 'webhook removed');
    return reply.code(204).send();
  });

  app.get('/webhooks/:id/deliveries', {
    schema: {
      tags: ['webhooks'], summary: 'A webhook\'s delivery log', description: 'Newest first: each event, its state, tries, the last answer or error, the next try.',
      params: WebhookParams, querystring: DeliveryQuery, response: { 200: Type.Array(DeliveryView), ...errors(404) },
    },
  }, async (req) => {
    if (!await webhooks.get(req.params.id)) throw notFound(`webhook ${req.params.id}`);
    return webhooks.deliveries(req.params.id, req.query.limit ?? 100);
  });
}
