// Bearer-token authentication for the operator API.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { tokenMatches } from '../auth/admin-token.js';
import type { Services } from '../services.js';

export const authPlugin = fp(async (app: FastifyInstance, { services }: { services: Services }) => {
  app.addHook('onRequest', async (req, reply) => {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match || !tokenMatches(match[1], services.adminToken)) {
      req.log.warn({ ip: req.ip, url: req.url }, 'API request without a valid token');
      return reply.code(401).header('www-authenticate', 'Bearer realm="mqota"').send({ statusCode: 401, error: 'Unauthorized', message: 'a valid Authorization: Bearer <token> header is required' });
    }
  });
}, { name: 'mqota-auth', encapsulate: false });
