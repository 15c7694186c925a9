// Third-party plugins, each wrapped with mqota's settings. Not encapsulated: the whole app sees them.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { multipartPlugin } from './multipart.js';
import { rateLimitPlugin } from './rate-limit.js';
import { staticPlugin } from './static.js';
import { swaggerPlugin } from './swagger.js';

export const externalPlugins = fp(async (app: FastifyInstance) => {
  await app.register(multipartPlugin);
  await app.register(staticPlugin);
  await app.register(rateLimitPlugin);
  await app.register(swaggerPlugin); // before the routes: it documents those registered after it
}, { name: 'mqota-external-plugins' });
