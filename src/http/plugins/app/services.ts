// The orchestrator's parts (src/services.ts, built by src/mqota.ts) as the `services` decorator:
// routes and plugins read `app.services` instead of receiving them as options.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../../services.js';

declare module 'fastify' {
  interface FastifyInstance {
    services: Services;
  }
}

export const servicesPlugin = fp(async (app: FastifyInstance, { services }: { services: Services }) => {
  app.decorate('services', services);
}, { name: 'mqota-services' });
