// /api/audit: who changed what through the API, when, newest first. Entries are made by the
// auth plugin (src/http/plugins/app/auth.ts) for every change attempted with a valid token.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors, AuditEntryView, AuditQuery } from '../../schemas/index.js';

export async function auditRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.get('/audit', {
    schema: {
      tags: ['audit'], summary: 'Read the audit log',
      description: 'Every change attempted through the API with a valid token (done or refused): actor (token name), action (`<METHOD> <route>`), target, status code, and the request body without secrets.',
      querystring: AuditQuery, response: { 200: Type.Array(AuditEntryView), ...errors(400) },
    },
  }, async (req) => app.auditLog.list(req.query));
}
