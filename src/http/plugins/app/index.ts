// mqota's own plugins that the whole app shares. The auth plugin is not here: it guards only the
// routes behind a token, so routes/index.ts registers it in their scope.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { metricsPlugin } from './metrics.js';

export const appPlugins = fp(async (app: FastifyInstance) => {
  await app.register(metricsPlugin); // its hooks count the responses of every route registered after it
}, { name: 'mqota-app-plugins' });
