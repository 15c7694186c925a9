// /api/tokens: API tokens and their roles. Admin only; a token's secret is in the creation
// answer and nowhere else (the store keeps its SHA-256).
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { BuiltInTokenError, DuplicateTokenError, UnknownTokenError } from '../../../auth/token-store.js';
import { HttpError } from '../../errors.js';
import { errors, NoContent, TokenCreateBody, TokenCreated, TokenParams, TokenView } from '../../schemas/index.js';

export async function tokenRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const tokens = app.apiTokens;
  const config = { role: 'admin' } as const;

  app.post('/tokens', {
    config,
    schema: {
      tags: ['tokens'], summary: 'Create a token', description: 'The answer carries the token; it is shown this once.',
      body: TokenCreateBody, response: { 201: TokenCreated, ...errors(400, 409) },
    },
  }, async (req, reply) => {
    try {
      const created = await tokens.create(req.body.name, req.body.role);
      req.log.info({ tokenName: created.name, role: created.role }, 'API token created');
      return reply.code(201).send(created);
    } catch (err) {
      if (err instanceof DuplicateTokenError) throw new HttpError(409, err.message);
      throw err;
    }
  });

  // Any role: who the presented token is, so a client (the dashboard) can offer only what it may do.
  app.get('/whoami', {
    schema: { tags: ['tokens'], summary: 'The caller\'s token name and role', response: { 200: Type.Object({ name: Type.String(), role: Type.String() }) } },
  }, async (req) => ({ name: req.principal.name, role: req.principal.role }));

  app.get('/tokens', {
    config,
    schema: { tags: ['tokens'], summary: 'List tokens', description: 'Names, roles and use; never the secrets.', response: { 200: Type.Array(TokenView) } },
  }, async () => tokens.list());

  app.delete('/tokens/:name', {
    config,
    schema: { tags: ['tokens'], summary: 'Revoke a token', description: 'At once: its next request is a 401.', params: TokenParams, response: { 204: NoContent('revoked'), ...errors(404, 409) } },
  }, async (req, reply) => {
    try {
      await tokens.revoke(req.params.name);
    } catch (err) {
      if (err instanceof UnknownTokenError) throw new HttpError(404, err.message);
      if (err instanceof BuiltInTokenError) throw new HttpError(409, err.message);
      throw err;
    }
    req.log.info({ tokenName: req.params.name }, 'API token revoked');
    return reply.code(204).send();
  });
}
